"""The Jobs tab on the SageMaker backend after months of use: connect and list 0 or 200 finished jobs.

What the dashboard does when the Connection tab connects (or a page opens on a connected backend):
read the connection (STS, S3), build the backend, restore the job board (live cards for running jobs,
summaries of the finished ones) and fill the finished-jobs table.  The account is moto behind
``bench/latency_proxy.py`` (a real region's round trip, default 50 ms); the 200 jobs are created with the
backend's own CreateTrainingJob request.  Prints the median seconds of ``--opens`` runs with none and
with 200 finished jobs, their ratio (target <= 1.5, as for the local page), and the requests the 200-job
listing sent per operation (CloudWatch Logs: none).

    .venv/bin/python bench/sagemaker_open.py [--jobs 200] [--opens 3] [--rtt-ms 50]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amc_widgets.backends.aws_session import describe_connection  # noqa: E402
from amc_widgets.backends.sagemaker import JOB_MARKER, SageMakerBackend  # noqa: E402
from amc_widgets.core.jobs import JobSpec  # noqa: E402
from amc_widgets.ui.models.job_table import JobTable  # noqa: E402
from amc_widgets.ui.models.jobs import JobBoard  # noqa: E402
from tests.sagemaker_harness import REGION, MotoServer, moto_client_factory  # noqa: E402

RATIO_TARGET = 1.5
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/amc:bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_proxy(server_port: int, rtt_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proxy = subprocess.Popen([sys.executable, str(REPO / "bench" / "latency_proxy.py"), str(port),
                              str(server_port), str(rtt_ms)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proxy, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    proxy.kill()
    sys.exit("the latency proxy did not start")


def make_account(endpoint: str) -> str:
    """The execution role and the bucket; returns the role's ARN."""
    client = moto_client_factory(endpoint)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "sagemaker.amazonaws.com"}}]}
    role = client("iam").create_role(RoleName="AmcExecution", AssumeRolePolicyDocument=json.dumps(trust))
    client("s3").create_bucket(Bucket=describe_connection(client, REGION).bucket)
    return role["Role"]["Arn"]


def add_finished_jobs(endpoint: str, role_arn: str, count: int) -> None:
    """``count`` ended jobs, each made by the backend's own request (moto ends them at once)."""
    client = moto_client_factory(endpoint)
    backend = SageMakerBackend(client, describe_connection(client, REGION), role_arn, image_uri=IMAGE)
    sagemaker = client("sagemaker")
    for i in range(count):
        name = f"amc-old-{i:03d}"
        spec = JobSpec(dataset="solder", hyperparameters={"model": "yolov5n"}, instance_type="ml.m5.large")
        sagemaker.create_training_job(**backend.training_job_request(spec, name))
        backend.s3.put_object(Bucket=backend.bucket, Key=f"{backend.outputs_prefix}{name}/{JOB_MARKER}",
                              Body=json.dumps({"name": name, "dataset": "solder"}).encode())


def open_jobs_tab(endpoint: str, role_arn: str) -> tuple[float, int, Counter]:
    """Seconds from connecting to a filled finished-jobs table; the rows; the requests per operation."""
    calls: Counter = Counter()
    started = time.perf_counter()
    client = moto_client_factory(endpoint)
    backend = SageMakerBackend(client, describe_connection(client, REGION), role_arn, image_uri=IMAGE)
    for service in (backend.sm, backend.s3, backend.logs):
        service.meta.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
    cards, finished = JobBoard(lambda: backend).restore()
    table = JobTable(jobs=finished)
    return time.perf_counter() - started, table.matching + len(cards), calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--opens", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    args = parser.parse_args(argv)
    with MotoServer() as moto:
        proxy, endpoint = start_proxy(moto.port, args.rtt_ms)
        try:
            role_arn = make_account(moto.endpoint)
            empty = [open_jobs_tab(endpoint, role_arn) for _ in range(args.opens)]
            add_finished_jobs(moto.endpoint, role_arn, args.jobs)
            full = [open_jobs_tab(endpoint, role_arn) for _ in range(args.opens)]
        finally:
            proxy.kill()
    none_s = statistics.median(s for s, _, _ in empty)
    many_s = statistics.median(s for s, _, _ in full)
    rows, calls = full[-1][1], full[-1][2]
    assert rows == args.jobs, f"listed {rows} of {args.jobs} jobs"
    ratio = many_s / none_s
    print(f"SageMaker backend over moto at {args.rtt_ms:g} ms round trip, median of {args.opens}:")
    print(f"  connect + Jobs tab, 0 finished jobs:    {none_s:.2f} s")
    print(f"  connect + Jobs tab, {args.jobs} finished jobs:  {many_s:.2f} s")
    print(f"  ratio {args.jobs} / 0: {ratio:.2f} (target <= {RATIO_TARGET:g}: "
          f"{'met' if ratio <= RATIO_TARGET else 'MISSED'})")
    print("  requests with", args.jobs, "jobs:", ", ".join(f"{op} {n}" for op, n in sorted(calls.items())))
    logs = sum(n for op, n in calls.items() if op in ("GetLogEvents", "FilterLogEvents", "DescribeLogStreams"))
    print(f"  CloudWatch Logs requests: {logs}")
    return 0 if ratio <= RATIO_TARGET and logs == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
