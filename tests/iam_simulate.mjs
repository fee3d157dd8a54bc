// Evaluates a batch of IAM requests with @cloud-copilot/iam-simulate (a test-only tool, AGPL-3.0;
// never shipped with the package).  stdin: {"policies": {name: [policy, ...]}, "requests": [{"policies":
// name, "principal", "action", "resource", "account", "context"}, ...]}; stdout: one result per request,
// {"result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied", "ignored": [context keys that do not
// apply to the action], "errors": validation errors or null}.  One process per batch keeps it fast.
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const batch = JSON.parse(Buffer.concat(chunks).toString('utf8'))

const results = []
for (const request of batch.requests) {
  const identityPolicies = batch.policies[request.policies].map((policy, i) => ({ name: `policy-${i}`, policy }))
  const response = await runSimulation(
    {
      request: {
        principal: request.principal,
        action: request.action,
        resource: { resource: request.resource, accountId: request.account },
        contextVariables: request.context,
      },
      identityPolicies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    { simulationMode: 'Strict' },
  )
  if (response.resultType === 'error') {
    results.push({ result: 'Error', ignored: [], errors: response.errors })
  } else if (response.resultType === 'single') {
    results.push({ result: response.overallResult, ignored: response.result.ignoredContextKeys ?? [], errors: null })
  } else {
    results.push({ result: 'Error', ignored: [], errors: { message: `a wildcard resource: ${request.resource}` } })
  }
}
process.stdout.write(JSON.stringify(results))
