"""Tuning jobs on the SageMaker backend, over real HTTP against moto, with SageMaker's tuner played by
tests/sagemaker_tuner.py (children run as training jobs with the fast test container, whose scores
follow the 'mosaic' hyperparameter).  Two IAM users share the account, as a team would; every request
the owner's backend makes is recorded and evaluated against the generated policies at the end."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from botocore.exceptions import ClientError

from amc_widgets.backends import iam_policy
from amc_widgets.backends.aws_session import AwsCredentials, describe_connection
from amc_widgets.backends.base import TunesHyperparameters
from amc_widgets.backends.sagemaker import QuotaError, SageMakerBackend
from amc_widgets.core.jobs import COMPLETED, STOPPED, JobNotFoundError
from amc_widgets.core.metrics import metric_definitions
from amc_widgets.core.tuning import (
    EARLY_STOPPED_REASON,
    TuningSpec,
    TuningSpecError,
    parse_range,
    validate_tuning_spec,
)
from tests.conftest import wait_until
from tests.iam_evaluation import Call, Identity, Question, Recorder, World, authorizations, evaluate
from tests.sagemaker_harness import (
    ACCOUNT,
    REGION,
    FakePricing,
    FakeServiceQuotas,
    MotoServer,
    SageMakerEmulator,
    moto_client_factory,
)
from tests.sagemaker_tuner import TunerEmulator, check_request
from tests.test_capabilities import sagemaker_backend
from tests.test_sagemaker import FAKE_CONTAINER, FAKE_IMAGE, LONG_FAKE_IMAGE

BUCKET = f"sagemaker-{REGION}-{ACCOUNT}"
STATIC = {"model": "yolov5n", "imgsz": "96", "batch": "8", "workers": "0", "epochs": "3"}
SLOW_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/amc-fake:slow"  # 6 epochs, one every 0.4 s
QUOTA = 4  # ml.m5.large for training job usage
CHILD_NAME = re.compile(r"^(?P<tuning>.+)-(?P<number>\d{3})-[0-9a-f]{8}$")
# account-wide reads any user may make (tests/test_iam.py's SHARED, less what this flow does not make)
SHARED = {"sts:GetCallerIdentity", "iam:ListRoles", "iam:ListRoleTags", "servicequotas:ListServiceQuotas",
          "servicequotas:GetServiceQuota", "pricing:GetProducts"}


class Person:
    """An IAM user of the account with their own execution role, and a backend per image."""

    def __init__(self, admin, moto, name: str, emulator: SageMakerEmulator, tuner: TunerEmulator, home):
        iam = admin("iam")
        user = iam.create_user(UserName=name)["User"]
        keys = iam.create_access_key(UserName=name)["AccessKey"]
        credentials = AwsCredentials(keys["AccessKeyId"], keys["SecretAccessKey"], region=REGION,
                                     endpoint_url=moto.endpoint)
        self.recorder = Recorder()
        self.quotas = FakeServiceQuotas({"ml.m5.large for training job usage": QUOTA},
                                        on_request=lambda op, p: self.recorder.record("service-quotas", op, p))
        pricing = FakePricing({(REGION, "ml.m5.large"): 0.125},
                              on_request=lambda op, p: self.recorder.record("pricing", op, p))
        base, made = credentials.client_factory(), {}

        def client(service: str):  # one client per service, so the hooks are made once
            if service in ("service-quotas", "pricing"):
                return self.quotas if service == "service-quotas" else pricing
            if service not in made:
                made[service] = base(service)
            return made[service]

        self.client = self.recorder.client_factory(client)
        self.info = describe_connection(self.client, REGION)
        self.identity = Identity(user["Arn"], self.info.user_key, ACCOUNT, user["Arn"], name)
        role = iam.create_role(RoleName=f"amc-{name}", Path=iam_policy.ROLE_PATH,
                               AssumeRolePolicyDocument=json.dumps(iam_policy.trust_policy()),
                               Tags=iam_policy.execution_role_tags(self.info.user_key))["Role"]
        self.role_arn, self.home = role["Arn"], home
        # SageMaker's session of that role, running their jobs
        self.role_identity = Identity(f"arn:aws:sts::{ACCOUNT}:assumed-role/{role['RoleName']}/SageMaker",
                                      f"{role['RoleId']}:SageMaker", ACCOUNT, role["Arn"],
                                      tags=tuple((t["Key"], t["Value"])
                                                 for t in iam_policy.execution_role_tags(self.info.user_key)))
        self.backend = self.with_image(FAKE_IMAGE)
        emulator.attach(self.backend.sm)
        tuner.attach(self.backend.sm)

    def with_image(self, image: str) -> SageMakerBackend:
        return SageMakerBackend(self.client, self.info, self.role_arn, image_uri=image, min_poll_seconds=0,
                                home=self.home)


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def admin(moto):
    clients = moto_client_factory(moto.endpoint)
    clients("s3").create_bucket(Bucket=BUCKET)
    return clients


@pytest.fixture(scope="module")
def emulator(admin, tmp_path_factory):
    scored = ["env", "FAKE_SCORE_BY=mosaic"]  # the children's scores follow 'mosaic'
    images = {FAKE_IMAGE: [*scored, *FAKE_CONTAINER],
              LONG_FAKE_IMAGE: [*scored, "FAKE_EPOCHS=100000", *FAKE_CONTAINER],
              SLOW_IMAGE: [*scored, "FAKE_EPOCHS=6", "FAKE_EPOCH_SECONDS=0.4", *FAKE_CONTAINER]}
    harness = SageMakerEmulator(admin, tmp_path_factory.mktemp("tuning-sagemaker"), images)
    harness.role_calls = Recorder(actor=harness.job_of_this_thread)  # what SageMaker does with a job's role
    harness.role_calls.attach(harness.s3)
    harness.role_calls.attach(harness.logs)
    harness.start()
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def tuner(emulator):
    return TunerEmulator(emulator)


@pytest.fixture(scope="module")
def people(admin, moto, emulator, tuner, small_dataset, tmp_path_factory) -> dict[str, Person]:
    found = {name: Person(admin, moto, name, emulator, tuner, tmp_path_factory.mktemp(name))
             for name in ("alice", "bob")}
    for person in found.values():
        folder = tmp_path_factory.mktemp(f"{person.identity.user_name}-data") / "parts"
        shutil.copytree(small_dataset, folder)
        person.backend.store_dataset(folder, name="parts")
    return found


def test_the_sagemaker_backend_tunes_hyperparameters():
    assert isinstance(sagemaker_backend(), TunesHyperparameters)


def spec(**changes) -> TuningSpec:
    values = dict(dataset="parts", hyperparameters=dict(STATIC), strategy="Random", max_jobs=3, max_parallel=2,
                  ranges=[parse_range("lr0=1e-4:1e-1:log"), parse_range("mosaic=0:1"),
                          parse_range("optimizer=SGD,AdamW")], instance_type="ml.m5.large", seed=7)
    values.update(changes)
    return TuningSpec(**values)


def finished(backend: SageMakerBackend, name: str, timeout: float = 120):
    return wait_until(lambda: (d := backend.describe_tuning_job(name)).is_terminal and d, timeout=timeout,
                      what=f"the tuning job {name}", every=0.3)


@pytest.fixture(scope="module")
def tuned(people, tuner):
    """Alice's first tuning job: 3 jobs, 2 at a time, random search, followed to its end."""
    backend = people["alice"].backend
    started = backend.start_tuning_job(spec(name="parts-first"))
    assert started.status == "InProgress" and started.max_jobs == 3 and started.max_parallel == 2
    return finished(backend, started.name)


def test_a_tuning_job_trains_its_children_and_keeps_the_best(tuned, tuner):
    assert tuned.status == "Completed" and tuned.ended is not None
    assert len(tuned.children) == 3 and tuner.runs["parts-first"].peak_parallel == 2
    for child in tuned.children:
        found = CHILD_NAME.match(child.name)
        assert found and found["tuning"] == "parts-first", child.name
        assert child.status == COMPLETED and child.objective_status == "Succeeded" and not child.early_stopped
        assert 1e-4 <= float(child.tuned["lr0"]) <= 1e-1 and 0 <= float(child.tuned["mosaic"]) <= 1
        assert child.tuned["optimizer"] in ("SGD", "AdamW")
        # the fake container's last mAP50-95 is 0.6 x 0.98 x (0.2 + 0.8 x mosaic): the objective follows it
        assert child.objective == pytest.approx(0.6 * 0.9817 * (0.2 + 0.8 * float(child.tuned["mosaic"])), abs=2e-3)
    best = tuned.best
    assert best.objective == max(c.objective for c in tuned.children)
    assert best.tuned["mosaic"] == max((c.tuned["mosaic"] for c in tuned.children), key=float)
    assert tuned.status_counters() == {"Completed": 3, "InProgress": 0, "RetryableError": 0,
                                       "NonRetryableError": 0, "Stopped": 0}
    assert tuned.objective_counters() == {"Succeeded": 3, "Pending": 0, "Failed": 0}
    assert tuner.describe(tuner.runs["parts-first"])["BestTrainingJob"]["TrainingJobName"] == best.name


def test_the_request_carries_the_training_jobs_definition(tuned, tuner, people):
    backend = people["alice"].backend
    sent = tuner.requests["parts-first"]
    job = backend.training_job_request(spec().training_spec(), "parts-first", 0)
    definition = sent["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == STATIC  # the tuned keys are not static
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()
    for key in ("RoleArn", "InputDataConfig", "OutputDataConfig", "StoppingCondition"):
        assert definition[key] == job[key], key
    assert definition["EnableNetworkIsolation"] is True and "VpcConfig" not in definition
    assert definition["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    config = sent["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "mAP50-95"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2}
    assert config["TrainingJobEarlyStoppingType"] == "Off" and config["RandomSeed"] == 7
    assert config["ParameterRanges"]["ContinuousParameterRanges"][0] == {
        "Name": "lr0", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}
    assert {"Key": "amc_user", "Value": people["alice"].info.user_key} in sent["Tags"]


def test_children_are_the_owners_jobs_and_name_their_tuning_job(tuned, people):
    backend = people["alice"].backend
    jobs = {job.name: job for job in backend.list_jobs()}
    assert {c.name for c in tuned.children} <= set(jobs)
    assert all(jobs[c.name].tuning_job == "parts-first" for c in tuned.children)
    child = tuned.children[0]
    assert backend.describe_job(child.name).tuning_job == "parts-first"
    assert backend.describe_job(child.name).hyperparameters["mosaic"] == child.tuned["mosaic"]
    assert {o.job_name for o in backend.list_outputs()} >= {c.name for c in tuned.children}  # their models
    listed = {t.name: t for t in backend.list_tuning_jobs()}
    assert {c.name: c.objective for c in listed["parts-first"].children} == {
        c.name: c.objective for c in tuned.children}
    assert listed["parts-first"].best.name == tuned.best.name


def test_a_name_taken_is_refused_and_nothing_is_overwritten(tuned, people, tuner):
    before = tuner.requests["parts-first"]
    with pytest.raises(FileExistsError, match="'parts-first' already exists"):
        people["alice"].backend.start_tuning_job(spec(name="parts-first", max_jobs=1, max_parallel=1))
    assert tuner.requests["parts-first"] is before and len(tuner.runs["parts-first"].children) == 3


def test_our_validation_refuses_first_with_the_field_named(people, tuner):
    backend = people["alice"].backend
    sent = len(tuner.requests) + len(tuner.refused)
    with pytest.raises(TuningSpecError, match="early stopping: Hyperband stops jobs early"):
        backend.start_tuning_job(spec(strategy="Hyperband", early_stopping=True))
    with pytest.raises(TuningSpecError, match="parallel jobs: cannot be more than max jobs"):
        backend.start_tuning_job(spec(max_parallel=5))
    with pytest.raises(TuningSpecError, match="name: .* not a valid tuning job name"):
        backend.start_tuning_job(spec(name="a-name-longer-than-thirty-two-chars"))
    assert len(tuner.requests) + len(tuner.refused) == sent  # SageMaker was never asked


def test_the_harness_refuses_what_sagemaker_refuses(people, tuner):
    """Requests our validation would never send, sent as they are: the tuner answers as AWS does."""
    backend = people["alice"].backend
    valid = backend.tuning.request(spec(), "parts-refused")

    def refused(change) -> str:
        request = json.loads(json.dumps(valid))
        change(request)
        with pytest.raises(ClientError) as caught:
            backend.sm.create_hyper_parameter_tuning_job(**request)
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        return caught.value.response["Error"]["Message"]

    assert "hyperParameterTuningJobName" in refused(lambda r: r.update(HyperParameterTuningJobName="x" * 33))
    config = lambda r: r["HyperParameterTuningJobConfig"]  # noqa: E731
    assert "Grid search strategy supports categorical" in refused(lambda r: config(r).update(Strategy="Grid"))
    assert "Member must satisfy enum" in refused(lambda r: config(r).update(Strategy="Genetic"))
    assert "Off with the Hyperband" in refused(lambda r: config(r).update(
        Strategy="Hyperband", TrainingJobEarlyStoppingType="Auto"))
    assert "needs MinValue greater than 0" in refused(lambda r: config(r)["ParameterRanges"][
        "ContinuousParameterRanges"][0].update(MinValue="0"))  # lr0, logarithmic
    assert "both static and tunable" in refused(lambda r: r["TrainingJobDefinition"]["StaticHyperParameters"].update(
        mosaic="0.5"))
    assert "less than or equal to the number" in refused(lambda r: config(r)["ResourceLimits"].update(
        MaxParallelTrainingJobs=4))
    assert "not one of the MetricDefinitions" in refused(lambda r: config(r)[
        "HyperParameterTuningJobObjective"].update(MetricName="accuracy"))
    assert re.search("length less than or equal to 30|exceeds the maximum of 30", refused(
        lambda r: config(r)["ParameterRanges"].update(
            CategoricalParameterRanges=[{"Name": f"p{i}", "Values": ["1", "2"]} for i in range(31)])))
    assert "parts-refused" not in tuner.requests


def test_hyperband_grid_and_spot_requests_are_ones_sagemaker_accepts(people, tuner):
    """Checked as the tuner checks a CreateHyperParameterTuningJob, without launching anything."""
    tuning = people["alice"].backend.tuning
    hyperband = tuning.request(spec(strategy="Hyperband", hyperparameters={**STATIC, "epochs": "30"}), "parts-hb")
    assert hyperband["HyperParameterTuningJobConfig"]["StrategyConfig"] == {
        "HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 30}}
    grid = tuning.request(validate_tuning_spec(spec(strategy="Grid", max_jobs=None, ranges=[  # imgsz no longer static
        parse_range("optimizer=SGD,AdamW,Adam"), parse_range("imgsz=320,416")])), "parts-grid")
    assert grid["HyperParameterTuningJobConfig"]["ResourceLimits"] == {"MaxParallelTrainingJobs": 2}
    spot = tuning.request(spec(spot=True, max_runtime_hours=2), "parts-spot")
    definition = spot["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert definition["CheckpointConfig"]["S3Uri"].endswith("/training-jobs/parts-spot/checkpoints/")
    for request in (hyperband, grid, spot):
        sent = json.loads(json.dumps(request))
        check_request("CreateHyperParameterTuningJob", sent)
        tuner.check_create_request(sent)
    with pytest.raises(ClientError, match="MaxResource"):  # no epochs to infer it from
        del hyperband["HyperParameterTuningJobConfig"]["StrategyConfig"]
        hyperband["TrainingJobDefinition"]["StaticHyperParameters"].pop("epochs")
        tuner.check_create_request(hyperband)


@pytest.mark.slow
def test_early_stopping_stops_a_clearly_worse_child(people, tuner, emulator):
    """Grid over mosaic 1 then 0, one at a time: the second scores a fifth of the first at every epoch."""
    backend = people["alice"].with_image(SLOW_IMAGE)
    started = backend.start_tuning_job(spec(name="parts-early", strategy="Grid", max_jobs=None, max_parallel=1,
                                            early_stopping=True, ranges=[parse_range("mosaic=1.0,0.0")]))
    assert tuner.requests["parts-early"]["HyperParameterTuningJobConfig"]["TrainingJobEarlyStoppingType"] == "Auto"
    assert "MaxNumberOfTrainingJobs" not in tuner.requests["parts-early"]["HyperParameterTuningJobConfig"][
        "ResourceLimits"]
    done = finished(backend, started.name)
    good, bad = sorted(done.children, key=lambda c: c.name)
    assert (good.tuned, bad.tuned) == ({"mosaic": "1.0"}, {"mosaic": "0.0"})
    assert good.status == COMPLETED and not good.early_stopped
    assert bad.status == STOPPED and bad.early_stopped and bad.status_reason == EARLY_STOPPED_REASON
    assert len(emulator.epoch_metrics[bad.name]) < 6  # stopped before its last epoch
    assert bad.objective is not None and bad.objective < good.objective  # its objective is kept
    assert done.status == "Completed" and done.best.name == good.name
    assert done.status_counters()["Stopped"] == 1 and done.status_counters()["Completed"] == 1


@pytest.mark.slow
def test_stopping_a_tuning_job_stops_its_children(people, tuner, emulator):
    backend = people["alice"].with_image(LONG_FAKE_IMAGE)
    started = backend.start_tuning_job(spec(name="parts-stopped", max_jobs=4, max_parallel=2))

    def both_training():
        children = backend.describe_tuning_job(started.name).children
        return len(children) == 2 and all(emulator.epoch_metrics.get(c.name) for c in children)

    wait_until(both_training, timeout=60, what="two children training")
    with pytest.raises(TuningSpecError, match="warm start: the tuning job 'parts-stopped' has not ended"):
        backend.start_tuning_job(spec(name="parts-too-soon", warm_start_from=(started.name,)))
    assert backend.stop_tuning_job(started.name).status in ("Stopping", "Stopped")
    done = finished(backend, started.name)
    assert done.status == "Stopped" and len(done.children) == 2  # nothing new started
    assert all(c.status == STOPPED and not c.early_stopped for c in done.children)
    assert backend.stop_tuning_job(started.name).status == "Stopped"  # once ended, a no-op


def test_quota_refused_before_launch_and_the_whole_cost(people, tuner):
    backend = people["alice"].backend
    sent = len(tuner.requests)
    with pytest.raises(QuotaError, match=f"may run {QUOTA} x ml.m5.large"):
        backend.start_tuning_job(spec(max_jobs=6, max_parallel=QUOTA + 1))
    assert len(tuner.requests) == sent
    cost = backend.tuning_cost(spec(max_jobs=12, max_runtime_hours=2, spot=True))
    assert cost.on_demand == pytest.approx(12 * 2 * 0.125)  # max jobs x max hours x the region's price
    assert cost.spot is not None and cost.spot < cost.on_demand


@pytest.fixture(scope="module")
def bobs_tuning(people):
    """Bob's own tuning job, of one child."""
    bob = people["bob"].backend
    return finished(bob, bob.start_tuning_job(spec(name="bob-tuning", max_jobs=1, max_parallel=1)).name)


@pytest.mark.slow
def test_warm_start_sends_the_parents_of_the_same_user(tuned, bobs_tuning, people, tuner):
    alice = people["alice"].backend
    with pytest.raises(JobNotFoundError, match="bob-tuning"):  # another user's tuning job is not there
        alice.start_tuning_job(spec(name="parts-warm", warm_start_from=("bob-tuning",)))
    started = alice.start_tuning_job(spec(name="parts-warm", max_jobs=1, max_parallel=1,
                                          warm_start_from=("parts-first",)))
    assert tuner.requests["parts-warm"]["WarmStartConfig"] == {
        "WarmStartType": "IdenticalDataAndAlgorithm",
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "parts-first"}]}
    assert finished(alice, started.name).warm_start_from == ("parts-first",)


def test_another_user_sees_none_of_it_and_iam_denies_them(tuned, bobs_tuning, people, admin, tuner):
    alice, bob = people["alice"], people["bob"]
    assert {t.name for t in bob.backend.list_tuning_jobs()} == {"bob-tuning"}
    alices = {run.body["HyperParameterTuningJobName"] for run in tuner.runs.values()
              if {"Key": "amc_user", "Value": alice.info.user_key} in run.body["Tags"]}
    assert "parts-first" in alices and {t.name for t in alice.backend.list_tuning_jobs()} == alices
    with pytest.raises(JobNotFoundError, match="bob-tuning"):  # a warm start from it, say
        alice.backend.describe_tuning_job("bob-tuning")
    with pytest.raises(JobNotFoundError):
        bob.backend.describe_tuning_job("parts-first")
    with pytest.raises(JobNotFoundError):
        bob.backend.stop_tuning_job("parts-first")
    assert all(c.tuning_job != "parts-first" for c in bob.backend.list_jobs())

    world = World(admin, "aws", REGION, ACCOUNT)
    # Alice asked for Bob's tuning job (moto answers anyone): IAM denies her that
    bobs = [c for c in alice.recorder.calls if c.params.get("HyperParameterTuningJobName") == "bob-tuning"]
    assert {c.operation for c in bobs} == {"DescribeHyperParameterTuningJob"}
    assert [a.result for a in evaluate({"user": iam_policy.user_policy(BUCKET, "aws", REGION, ACCOUNT)}, [
        Question(alice.identity, "user", auth) for auth in authorizations(bobs[0], world)])] == ["ImplicitlyDenied"]
    calls = [c for c in alice.recorder.calls if c.status in (None, 200) and c not in bobs]
    # the stop test's request (marked slow: it may not have run), as the backend makes it
    calls.append(Call("sagemaker", "StopHyperParameterTuningJob", {"HyperParameterTuningJobName": "parts-first"}))
    made = {(c.service, c.operation) for c in calls}
    assert {("sagemaker", op) for op in ("CreateHyperParameterTuningJob", "DescribeHyperParameterTuningJob",
                                         "ListTrainingJobsForHyperParameterTuningJob",
                                         "StopHyperParameterTuningJob", "Search")} <= made
    policies = {"user": iam_policy.user_policy(BUCKET, "aws", REGION, ACCOUNT)}
    auths = list({json.dumps([a.action, a.resource, a.context], sort_keys=True): a
                  for call in calls for a in authorizations(call, world)}.values())
    questions = [Question(alice.identity, "user", a) for a in auths] + [
        Question(bob.identity, "user", a) for a in auths]
    answers = evaluate(policies, questions)
    owner, other = answers[:len(auths)], answers[len(auths):]
    refused = [(a, r) for a, r in zip(auths, owner) if r.result != "Allowed" or r.ignored or r.errors]
    assert not refused, refused[:5]
    wrong = [(a, r.result) for a, r in zip(auths, other) if (r.result == "Allowed") != (a.action in SHARED)]
    assert not wrong, wrong[:5]
    denied = {a.action for a, r in zip(auths, other) if r.result != "Allowed"}
    assert {"sagemaker:CreateHyperParameterTuningJob", "sagemaker:DescribeHyperParameterTuningJob",
            "sagemaker:ListTrainingJobsForHyperParameterTuningJob", "sagemaker:StopHyperParameterTuningJob",
            "sagemaker:CreateTrainingJob", "sagemaker:AddTags", "iam:PassRole", "sagemaker:Search"} <= denied


def test_children_reach_their_owners_space_only(tuned, bobs_tuning, people, admin, emulator):
    """The children's downloads, uploads and logs, made with the owner's execution role: allowed by the
    execution-role policy for the owner's role, denied for another user's (the shared log group aside)."""
    alice, bob = people["alice"], people["bob"]
    children = {c.name for c in tuned.children}
    calls = [c for c in emulator.role_calls.calls if c.actor in children]
    assert {(c.service, c.operation) for c in calls} >= {("s3", "ListObjectsV2"), ("s3", "GetObject"),
                                                          ("s3", "PutObject"), ("logs", "PutLogEvents")}
    world = World(admin, "aws", REGION, ACCOUNT)
    auths = list({json.dumps([a.action, a.resource, a.context], sort_keys=True): a
                  for call in calls for a in authorizations(call, world)}.values())
    policies = {"role": iam_policy.execution_role_policy(BUCKET, "aws", REGION, ACCOUNT)}
    answers = evaluate(policies, [Question(alice.role_identity, "role", a) for a in auths]
                       + [Question(bob.role_identity, "role", a) for a in auths])
    owner, other = answers[:len(auths)], answers[len(auths):]
    assert not [(a, r) for a, r in zip(auths, owner) if r.result != "Allowed" or r.errors]
    shared = {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:CreateLogGroup"}
    assert not [(a, r.result) for a, r in zip(auths, other) if (r.result == "Allowed") != (a.action in shared)]
