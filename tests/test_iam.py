"""The generated IAM policies, proven on the requests the product really makes.

Three people share one account, as a team would: an IAM user, an IAM Identity Center (SSO) user and
a SageMaker notebook instance's role session, each with the execution role `amc iam-policy` describes
for them.  Each goes through the whole flow (connect, folder and zip upload, train, logs, metrics,
stop, download, deploy with autoscaling, invoke, undeploy, delete) against moto, with
tests/sagemaker_harness.py and tests/sagemaker_hosting.py playing SageMaker; every request is recorded
and evaluated (tests/iam_evaluation.py, with iam-simulate): all of the owner's
are allowed by the user policy, the same requests made by either of the others are denied, except
the account-wide reads listed in SHARED; the requests SageMaker makes with a job's execution role
are allowed by that user's role policy and denied by every other user's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from amc_widgets.backends import iam_policy
from amc_widgets.backends.aws_session import AwsCredentials, describe_connection
from amc_widgets.backends.sagemaker import SageMakerBackend
from amc_widgets.core.endpoints import IN_SERVICE, EndpointSpec, wait_until_settled
from amc_widgets.core.jobs import COMPLETED, STOPPED, JobSpec
from amc_widgets.core.storage import pack_tar_gz
from tests.conftest import wait_until, zip_folder
from tests.iam_evaluation import Authorization, Call, Identity, Question, Recorder, World, authorizations, evaluate
from tests.onnx_fakes import tiny_detector
from tests.sagemaker_harness import (
    ACCOUNT,
    REGION,
    FakePricing,
    FakeServiceQuotas,
    MotoServer,
    SageMakerEmulator,
    moto_client_factory,
    ok_response,
)
from tests.sagemaker_hosting import SERVE, HostingEmulator
from tests.test_sagemaker import FAKE_CONTAINER, FAKE_IMAGE, LONG_FAKE_IMAGE
from tests.test_serving_invocation import image_bytes

BUCKET = f"sagemaker-{REGION}-{ACCOUNT}"
FAST = {"model": "yolov5n", "imgsz": "96", "batch": "8", "workers": "0", "epochs": "3"}
# What any AMC user may do whoever owns the thing: who am I, which roles, quotas and prices exist, and the
# job logs (SageMaker writes every training job's log to one log group; see the README's threat model)
SHARED = {"sts:GetCallerIdentity", "iam:ListRoles", "iam:ListRoleTags", "servicequotas:ListServiceQuotas",
          "servicequotas:GetServiceQuota", "pricing:GetProducts", "logs:DescribeLogStreams", "logs:GetLogEvents",
          "logs:StartLiveTail",
          # autoscaling's alarms are named after the endpoint, and its service-linked role is the account's
          "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms",
          "iam:CreateServiceLinkedRole"}
# What SageMaker does with any execution role: the log group, whoever's job it is
SHARED_BY_ROLES = {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:CreateLogGroup"}
EVERY_REQUEST = {  # the flow below makes each of these (and the table maps each)
    ("sts", "GetCallerIdentity"), ("s3", "ListObjectsV2"), ("s3", "GetObject"), ("s3", "HeadObject"),
    ("s3", "PutObject"), ("s3", "CreateMultipartUpload"), ("s3", "UploadPart"), ("s3", "CompleteMultipartUpload"),
    ("s3", "DeleteObject"), ("s3", "DeleteObjects"), ("sagemaker", "CreateTrainingJob"),
    ("sagemaker", "DescribeTrainingJob"), ("sagemaker", "StopTrainingJob"), ("logs", "DescribeLogStreams"),
    ("logs", "GetLogEvents"), ("logs", "StartLiveTail"), ("iam", "ListRoles"), ("iam", "ListRoleTags"),
    ("service-quotas", "ListServiceQuotas"), ("service-quotas", "GetServiceQuota"), ("sagemaker", "Search"),
    ("pricing", "GetProducts"),
    ("sagemaker", "CreateModel"), ("sagemaker", "CreateEndpointConfig"), ("sagemaker", "CreateEndpoint"),
    ("sagemaker", "DescribeEndpoint"), ("sagemaker", "DeleteEndpoint"), ("sagemaker", "DeleteEndpointConfig"),
    ("sagemaker", "DeleteModel"), ("sagemaker-runtime", "InvokeEndpoint"),
    ("application-autoscaling", "RegisterScalableTarget"), ("application-autoscaling", "PutScalingPolicy"),
    ("application-autoscaling", "DeregisterScalableTarget"),
}


@dataclass
class Person:
    label: str
    name: str  # what the dashboard shows
    credentials: AwsCredentials
    identity: Identity
    role_arn: str  # their execution role
    role_identity: Identity  # SageMaker's session of that role, running their jobs
    calls: list[Call] | None = None
    job_names: tuple[str, ...] = ()


def _trust_anyone_in_the_account() -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                               "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]})


def _role_session(admin, role_name: str, path: str, session: str) -> tuple[AwsCredentials, dict]:
    role = admin("iam").create_role(RoleName=role_name, Path=path,
                                    AssumeRolePolicyDocument=_trust_anyone_in_the_account())["Role"]
    keys = admin("sts").assume_role(RoleArn=role["Arn"], RoleSessionName=session)["Credentials"]
    return AwsCredentials(access_key_id=keys["AccessKeyId"], secret_access_key=keys["SecretAccessKey"],
                          session_token=keys["SessionToken"], region=REGION), role


def _person(admin, moto, label: str, credentials: AwsCredentials, principal_arn: str, user_name: str | None) -> Person:
    credentials = AwsCredentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token,
                                 region=REGION, endpoint_url=moto.endpoint)
    caller = credentials.client_factory()("sts").get_caller_identity()
    key = caller["UserId"]
    role = admin("iam").create_role(RoleName=f"amc-execution-{label}", Path=iam_policy.ROLE_PATH,
                                    AssumeRolePolicyDocument=json.dumps(iam_policy.trust_policy()),
                                    Tags=iam_policy.execution_role_tags(key))["Role"]
    role_identity = Identity(arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{role['RoleName']}/SageMaker",
                             user_id=f"{role['RoleId']}:SageMaker", account=ACCOUNT, principal_arn=role["Arn"],
                             tags=tuple((t["Key"], t["Value"]) for t in iam_policy.execution_role_tags(key)))
    return Person(label, caller["Arn"].rsplit("/", 1)[-1], credentials,
                  Identity(caller["Arn"], key, ACCOUNT, principal_arn, user_name), role["Arn"], role_identity)


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def admin(moto):
    clients = moto_client_factory(moto.endpoint)
    clients("s3").create_bucket(Bucket=BUCKET)  # the administrator's: users may not create buckets
    return clients


@pytest.fixture(scope="module")
def people(admin, moto) -> dict[str, Person]:
    """An IAM user whose name has a '+', an SSO user (a session of the permission set's role, named by
    their email), and a notebook instance's role session (SageMaker names it 'SageMaker')."""
    iam = admin("iam")
    user = iam.create_user(UserName="alice+ops")["User"]
    access = iam.create_access_key(UserName="alice+ops")["AccessKey"]
    alice = _person(admin, moto, "iam-user", AwsCredentials(access["AccessKeyId"], access["SecretAccessKey"]),
                    user["Arn"], "alice+ops")
    sso, sso_role = _role_session(admin, "AWSReservedSSO_AmcUsers_0123456789abcdef",
                                  "/aws-reserved/sso.amazonaws.com/", "bob@corp.com")
    bob = _person(admin, moto, "sso-user", sso, sso_role["Arn"], None)
    notebook, notebook_role = _role_session(admin, "AmcNotebookCarol", "/service-role/", "SageMaker")
    carol = _person(admin, moto, "notebook", notebook, notebook_role["Arn"], None)
    return {p.label: p for p in (alice, bob, carol)}


@pytest.fixture(scope="module")
def emulator(admin, tmp_path_factory):
    images = {FAKE_IMAGE: FAKE_CONTAINER, LONG_FAKE_IMAGE: ["env", "FAKE_EPOCHS=100000", *FAKE_CONTAINER]}
    harness = SageMakerEmulator(admin, tmp_path_factory.mktemp("iam-sagemaker"), images)
    harness.start()
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def hosting(admin, tmp_path_factory):
    emulator = HostingEmulator(admin, tmp_path_factory.mktemp("iam-hosting"), {FAKE_IMAGE: SERVE})
    yield emulator
    emulator.close()


@pytest.fixture(scope="module")
def role_calls(emulator) -> Recorder:
    """What SageMaker does with each job's execution role (the emulator's S3 and log requests per job)."""
    recorder = Recorder(actor=emulator.job_of_this_thread)
    recorder.attach(emulator.s3)
    recorder.attach(emulator.logs)
    return recorder


@pytest.fixture(scope="module")
def world(admin) -> World:
    return World(admin, "aws", REGION, ACCOUNT)


def run_flow(person: Person, emulator: SageMakerEmulator, hosting: HostingEmulator, world: World, dataset: Path,
             work: Path) -> list[Call]:
    """Connect, upload a folder and a zip and weights, train, follow logs and metrics, stop, download,
    deploy with autoscaling, invoke, undeploy, delete."""
    recorder = Recorder()
    def record_quota(operation, params):
        recorder.record("service-quotas", operation, params)

    def record_price(operation, params):
        recorder.record("pricing", operation, params)

    quotas = FakeServiceQuotas({"ml.m5.large for training job usage": 20}, on_request=record_quota)
    pricing = FakePricing({(REGION, "ml.m5.large"): 0.125}, on_request=record_price)
    factory = person.credentials.client_factory()
    runtime = AwsCredentials(person.credentials.access_key_id, person.credentials.secret_access_key,
                             person.credentials.session_token, region=REGION,
                             endpoint_url=hosting.runtime_url).client_factory()
    doubles = {"service-quotas": quotas, "pricing": pricing}
    client = recorder.client_factory(lambda service: doubles.get(service) or (
        runtime if service == "sagemaker-runtime" else factory)(service))

    info = describe_connection(client, REGION)
    assert (info.user_key, info.user_name, info.bucket_exists) == (person.identity.user_id, person.name, True)
    assert info.roles[0] == person.role_arn  # their own execution role first
    backend = SageMakerBackend(client, info, info.roles[0], image_uri=FAKE_IMAGE, min_poll_seconds=0, home=work)
    assert backend.instance_price("ml.m5.large").per_hour == 0.125
    emulator.attach(backend.sm)
    backend.datasets.config = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    folder = work / "folder"
    shutil.copytree(dataset, folder)
    (folder / "notes.bin").write_bytes(b"\0" * (6 * 2**20))  # one multipart upload
    backend.store_dataset(folder, name="folder")
    backend.store_dataset(folder, name="folder", overwrite=True)  # the manifest deleted, nothing sent again
    archive = work / "zipped.zip"
    zip_folder(dataset, archive).close()
    backend.store_dataset(archive)

    weights = work / "start.pt"
    weights.write_bytes(b"weights")  # the check before upload is not what this test is about
    stored = backend.store_weights(weights, "0" * 64)
    assert backend.store_weights(weights, "0" * 64) == stored  # once: listed, not sent again
    done = backend.start_job(JobSpec(dataset="folder", hyperparameters={**FAST, "weights": stored},
                                     instance_type="ml.m5.large", name=f"amc-{person.label}-done"))
    wait_until(lambda: backend.describe_job(done.name).is_terminal, timeout=120, what="the job")
    assert backend.describe_job(done.name).status == COMPLETED
    assert backend.read_logs(done.name).lines and len(backend.read_metrics(done.name)) == 3
    backend.logs.meta.events.register("before-call.logs.StartLiveTail",  # moto has no Live Tail
                                      lambda **_: (ok_response()[0], {"responseStream": iter([])}))
    backend.tail_logs(done.name, lambda line: None)

    long = SageMakerBackend(client, info, info.roles[0], image_uri=LONG_FAKE_IMAGE, min_poll_seconds=0)
    emulator.attach(long.sm)
    stopped = long.start_job(JobSpec(dataset="zipped", hyperparameters=FAST, instance_type="ml.m5.large",
                                     name=f"amc-{person.label}-stopped"))
    wait_until(lambda: not long.read_metrics(stopped.name).empty, timeout=120, what="a first epoch")
    long.stop_job(stopped.name)
    wait_until(lambda: long.describe_job(stopped.name).status == STOPPED, timeout=120, what="the stop")

    assert {job.name for job in backend.list_jobs()} == {done.name, stopped.name}
    assert {o.job_name for o in backend.list_outputs()} == {done.name, stopped.name}
    assert backend.download_outputs(done.name, work / "downloads").files

    # the fake container's model is no ONNX model: the administrator puts a tiny detector in its place
    tiny_detector(work / "best.onnx", [[32, 32, 20, 10, 0.1, 0.9]])
    (work / "packed").mkdir()
    (work / "best.onnx").rename(work / "packed" / "best.onnx")
    emulator.s3.upload_file(str(pack_tar_gz(work / "packed", work / "model.tar.gz")), BUCKET,
                            f"{backend.outputs_prefix}{done.name}/output/model.tar.gz")
    hosting.attach(backend.sm, backend.endpoints.scaling)
    name = f"amc-{person.label}-ep"
    backend.deploy(EndpointSpec(done.name, name=name, instance_type="ml.c5.large", min_instances=1,
                                max_instances=2, target_invocations=50))
    assert wait_until_settled(lambda: backend.describe_endpoint(name), lambda e: None, 60).status == IN_SERVICE
    backend.set_scaling(name)
    answer = backend.invoke_endpoint(name, image_bytes("PNG", size=(64, 64)), "image/png")
    assert json.loads(answer.body)["detections"]
    assert [e.name for e in backend.list_endpoints()] == [name]
    target = f"endpoint/{name}/variant/AllTraffic"  # read while they exist: the flow deletes them
    world.remember("scalable target tags", target, hosting.requests["RegisterScalableTarget"][-1]["Tags"])
    world.scalable_target(target)
    for kind in ("model", "endpoint-config", "endpoint"):
        world.sagemaker_tags(kind, name)
    backend.delete_endpoint(name)
    assert backend.list_endpoints() == []
    backend.delete_dataset("folder")
    backend.delete_dataset("zipped")
    person.job_names = (done.name, stopped.name)
    return recorder.calls


@pytest.fixture(scope="module")
def flows(people, emulator, hosting, role_calls, world, small_dataset, tmp_path_factory) -> dict[str, Person]:
    for person in people.values():
        person.calls = run_flow(person, emulator, hosting, world, small_dataset, tmp_path_factory.mktemp(person.label))
    return people


@pytest.fixture(scope="module")
def policies(people) -> dict[str, dict]:
    return {"user": iam_policy.user_policy(BUCKET, "aws", REGION, ACCOUNT),
            "role": iam_policy.execution_role_policy(BUCKET, "aws", REGION, ACCOUNT)}


def test_each_identity_gets_its_own_space_named_by_its_aws_userid(people):
    alice, bob, carol = people["iam-user"], people["sso-user"], people["notebook"]
    assert (alice.name, bob.name, carol.name) == ("alice+ops", "bob@corp.com", "SageMaker")
    assert bob.identity.user_id.endswith(":bob@corp.com") and carol.identity.user_id.endswith(":SageMaker")
    assert ":" not in alice.identity.user_id  # an IAM user's key is its unique id
    assert len({p.identity.user_id for p in people.values()}) == 3


def test_every_request_of_the_owner_is_allowed(flows, world, policies):
    questions, made = [], set()
    for person in flows.values():
        for call in person.calls:
            made.add((call.service, call.operation))
            missing_key_read = call.service == "s3" and call.operation in ("GetObject", "HeadObject")
            assert not (missing_key_read and call.status == 404), (
                f"a GET of a missing key ({call.params['Key']}) is AccessDenied under the user policy, not 404")
            questions += [Question(person.identity, "user", auth) for auth in authorizations(call, world)]
            if call.service == "s3":  # every key in the space named by the key exactly as AWS gives it
                keys = [o["Key"] for o in call.params.get("Delete", {}).get("Objects", [])] or [
                    call.params.get("Key") or call.params.get("Prefix") or ""]
                assert all(key.startswith(f"users/{person.identity.user_id}/") for key in keys), keys
    assert made == EVERY_REQUEST
    answers = evaluate(policies, questions)
    refused = [(q.identity.user_id, q.authorization, a) for q, a in zip(questions, answers)
               if a.result != "Allowed" or a.ignored or a.errors]
    assert not refused, refused[:5]


def test_the_same_requests_by_another_user_are_denied(flows, world, policies):
    questions = []
    for owner in flows.values():
        auths = {json.dumps([a.action, a.resource, a.context], sort_keys=True): a  # each once
                 for call in owner.calls for a in authorizations(call, world)}.values()
        for other in flows.values():
            if other is not owner:
                questions += [Question(other.identity, "user", auth) for auth in auths]
    answers = evaluate(policies, questions)
    wrong = [(q.identity.user_id, q.authorization, a.result) for q, a in zip(questions, answers)
             if (a.result == "Allowed") != (q.authorization.action in SHARED)]
    assert not wrong, wrong[:5]
    denied = {q.authorization.action for q, a in zip(questions, answers) if a.result != "Allowed"}
    assert {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "sagemaker:CreateTrainingJob",
            "sagemaker:AddTags", "iam:PassRole", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
            "sagemaker:CreateModel", "sagemaker:CreateEndpointConfig", "sagemaker:CreateEndpoint",
            "sagemaker:InvokeEndpoint", "sagemaker:DeleteEndpoint", "sagemaker:DeleteModel",
            "application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy",
            "sagemaker:Search"} <= denied


def test_each_execution_role_reaches_its_users_space_only(flows, emulator, role_calls, world, policies):
    people_by_role = {p.role_arn: p for p in flows.values()}
    questions, expected = [], []
    for call in role_calls.calls:
        owner = people_by_role[emulator.requests[call.actor]["RoleArn"]]
        for auth in authorizations(call, world):
            for person in flows.values():  # the owner's role, then every other user's role, doing the same
                questions.append(Question(person.role_identity, "role", auth))
                expected.append(person is owner or auth.action in SHARED_BY_ROLES)
    assert {call.actor for call in role_calls.calls} == {name for p in flows.values() for name in p.job_names}
    assert {(c.service, c.operation) for c in role_calls.calls} >= {("s3", "ListObjectsV2"), ("s3", "GetObject"),
                                                                     ("s3", "PutObject"), ("logs", "PutLogEvents")}
    answers = evaluate(policies, questions)
    wrong = [(q.identity.arn, q.authorization, a.result) for q, a, want in zip(questions, answers, expected)
             if (a.result == "Allowed") != want or a.errors]
    assert not wrong, wrong[:5]


def test_a_job_with_another_users_role_or_data_is_refused(flows, world, policies):
    """Requests the product never makes, asked directly: starting a job tagged for someone else,
    passing their role, tagging their job, or listing the bucket without a prefix (a HeadBucket)."""
    alice, bob = flows["iam-user"], flows["sso-user"]
    job = world.job("amc-not-mine")
    questions = [
        Question(alice.identity, "user", auth) for auth in [
            *authorizations(Call("sagemaker", "CreateTrainingJob", {
                "TrainingJobName": "amc-not-mine", "RoleArn": bob.role_arn,
                "ResourceConfig": {"InstanceType": "ml.m5.large"}, "StoppingCondition": {"MaxRuntimeInSeconds": 60},
                "Tags": [{"Key": "amc_user", "Value": alice.identity.user_id}]}), world),
            *authorizations(Call("sagemaker", "CreateTrainingJob", {
                "TrainingJobName": "amc-not-mine", "RoleArn": alice.role_arn,
                "ResourceConfig": {"InstanceType": "ml.m5.large"}, "StoppingCondition": {"MaxRuntimeInSeconds": 60},
                "Tags": [{"Key": "amc_user", "Value": bob.identity.user_id}]}), world),
        ]]
    tagging = Question(alice.identity, "user", Authorization(
        "sagemaker:AddTags", job, {"aws:RequestTag/amc_user": alice.identity.user_id, "aws:TagKeys": ["amc_user"]}))
    head_bucket = Question(alice.identity, "user", authorizations(Call("s3", "ListObjectsV2", {"Bucket": BUCKET}),
                                                                  world)[0])
    answers = evaluate(policies, [*questions, tagging, head_bucket])
    results = [(q.authorization.action, a.result) for q, a in zip([*questions, tagging, head_bucket], answers)]
    assert results == [
        ("sagemaker:CreateTrainingJob", "Allowed"), ("sagemaker:AddTags", "Allowed"),
        ("iam:PassRole", "ImplicitlyDenied"),  # Bob's role, tagged with Bob's key
        ("sagemaker:CreateTrainingJob", "ImplicitlyDenied"), ("sagemaker:AddTags", "ImplicitlyDenied"),
        ("iam:PassRole", "Allowed"),  # a job tagged for Bob
        ("sagemaker:AddTags", "ImplicitlyDenied"),  # tagging an existing job (to take it over)
        ("s3:ListBucket", "ImplicitlyDenied"),  # no prefix: what a HeadBucket asks
    ]


# parliament (the dev extra) still imports pkg_resources, which setuptools >= 81 no longer has: it runs in
# its own process, with the one function it uses from there
PARLIAMENT = """
import importlib.resources, json, sys, types
try:
    import pkg_resources
except ModuleNotFoundError:
    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = lambda package, name: str(importlib.resources.files(package) / name)
    sys.modules["pkg_resources"] = shim
import parliament
print(json.dumps([[(f.issue, str(f.detail), str(f.location)) for f in parliament.analyze_policy_string(
    json.dumps(document)).findings] for document in json.load(sys.stdin)]))
"""


def test_generated_policies_pass_parliament():
    documents = [iam_policy.user_policy(BUCKET, "aws", REGION, ACCOUNT), iam_policy.user_policy(BUCKET),
                 iam_policy.user_policy("sagemaker-cn-north-1-111122223333", "aws-cn", "cn-north-1", "111122223333"),
                 iam_policy.execution_role_policy(BUCKET, "aws", REGION, ACCOUNT),
                 iam_policy.execution_role_policy(BUCKET)]
    done = subprocess.run([sys.executable, "-c", PARLIAMENT], input=json.dumps(documents), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # CreateEndpoint authorizes the endpoint (tagged in the request) and the config it names (tagged
    # already) separately, so the policy grants each ARN in its own statement with its own condition;
    # parliament wants both resource types in every statement that names the action.
    findings = [[f for f in found if not (f[0] == "RESOURCE_MISMATCH" and "'sagemaker:CreateEndpoint'" in f[1]
                                          and f[1].count("'action'") == 1)]
                for found in json.loads(done.stdout)]
    assert findings == [[]] * len(documents)
