"""Dataset upload time: S3DatasetStore.upload beside `aws s3 sync`, same files, same loopback S3 server.

Two cases, each side uploading to its own fresh prefix so that nothing is skipped:

- folder: ``store.upload(name, folder_items(folder), ...)`` against ``aws s3 sync FOLDER s3://bench/...``
  (target: ours <= 0.35x aws);
- zip: ours streams the members straight from the archive (``open_safe_zip`` + ``zip_items``) against
  unpacking it to a temporary folder (zipfile's extractall) and ``aws s3 sync`` of that folder, both
  steps timed (target: ours <= 0.4x).

Beside each side's time the table prints its limit, the least time the upload could take here, and
what sets it: the round trips (files x round trips per file x round trip / requests in flight; the
CLI's PUTs wait for "100 Continue", a second round trip, ours do not) or the CPU that the three
processes (client, proxy, server) used, shared by the machine's cores.  Each side's CPU seconds, per
process, are printed as it runs and, as medians, under the table.

The data is made here, deterministically: a YOLO dataset from ``make_demo_dataset`` (``--images``
jpgs of ``--size`` px, 80% train / 20% val, a label file each, data.yaml) plus ``--large`` files of
24 MiB of random bytes, which both sides send in multipart uploads.  The zip is ZIP_DEFLATED, as the
desktop "compress" commands write it (the jpgs barely shrink; both sides inflate the same bytes).

Each repeat runs both sides of both cases, alternating which side goes first; the table shows
medians.  After every upload the keys under its prefix are listed (list_objects_v2) and must be
exactly the dataset's files (ours adds its manifest), so both sides did the same work.  The aws
times include starting the CLI, as a user running it pays that too.

Concurrency: the CLI runs with its default ``max_concurrent_requests = 10`` (written to its config
file here); ours sends ``UPLOAD_THREADS`` small files at once, big ones in parts
(amc_widgets/backends/s3_datasets.py).  The CLI lives in its own venv, ``bench/.venv-awscli``, made
on first use (``pip install awscli``), so its botocore pin never touches ours.

Server: s3rver (node, ``npm ci`` installs it) by default, a process of its own on 127.0.0.1, its
objects in /dev/shm where there is one (on this machine's ext4 disk its file work varied from run to
run more than anything measured).
moto's ThreadedMotoServer inside this process was tried first and rejected: it shares the GIL with
our upload threads (not with the CLI, a separate process), which made ours about 1.5x slower than
the same upload against a moto server in its own process.  ``--server moto`` runs moto in its own
process instead; its per-request CPU cost is about s3rver's.  Either way the server needs CPU for
every PUT: on a small machine it can set a floor under both sides (the table prints its CPU
seconds per upload beside each side's own) and pull the ratio towards 1.

Network: loopback answers at once, while a real bucket is tens of milliseconds away, and for many
small files that wait, not CPU, is what an upload spends its time on.  ``--rtt MS`` (default 50,
about a factory in Europe to eu-central-1 over a VPN) puts bench/latency_proxy.py, a process of
its own, between both clients and the server: each direction's bytes arrive RTT/2 later.
``--rtt 0`` talks to the server directly.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amc_widgets.backends.aws_session import AwsCredentials  # noqa: E402
from amc_widgets.backends.s3_datasets import (  # noqa: E402
    MANIFEST,
    TRANSFER_CONFIG,
    UPLOAD_THREADS,
    S3DatasetStore,
    folder_items,
    zip_items,
)
from amc_widgets.core.archive import open_safe_zip  # noqa: E402
from amc_widgets.core.demo_dataset import make_demo_dataset  # noqa: E402
from amc_widgets.core.storage import iter_files  # noqa: E402

AWSCLI_VENV = REPO / "bench" / ".venv-awscli"
AWS = AWSCLI_VENV / "bin" / "aws"
S3RVER = REPO / "node_modules" / ".bin" / "s3rver"
BUCKET = "bench"
KEY = "S3RVER"  # s3rver accepts only this access key / secret; moto takes any
AWS_CONCURRENCY = 10  # the CLI's default max_concurrent_requests
LARGE_FILE = 24 * 1024 * 1024
TARGETS = {"folder": 0.35, "zip": 0.4}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_awscli() -> None:
    if AWS.exists():
        return
    print(f"Installing awscli into {AWSCLI_VENV.relative_to(REPO)} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True)
    subprocess.run([str(AWSCLI_VENV / "bin" / "pip"), "install", "-q", "awscli"], check=True)


def start_proxy(listen_port: int, server_port: int, rtt_ms: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "bench" / "latency_proxy.py"), str(listen_port),
                             str(server_port), str(rtt_ms)])


def start_server(kind: str, storage: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ)
    if kind == "s3rver":
        if not S3RVER.exists():
            sys.exit("s3rver is missing: run `npm ci` in the repository root (or pass --server moto)")
        # its ListObjectsV2 continuation tokens use DES, which Node >= 17 (OpenSSL 3) only has in the legacy provider
        env["NODE_OPTIONS"] = f"{env.get('NODE_OPTIONS', '')} --openssl-legacy-provider".strip()
        command = [str(S3RVER), "-d", str(storage), "--address", "127.0.0.1", "--port", str(port),
                   "--silent", "--configure-bucket", BUCKET]
    else:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def server_storage_root() -> str | None:
    """Where the S3 server keeps its objects: in memory (/dev/shm) where the machine has it, as a
    real bucket's disks are not this machine's; else the temporary folder."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def wait_for_bucket(s3, server: subprocess.Popen, kind: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if kind == "moto":
                s3.create_bucket(Bucket=BUCKET)
            s3.head_bucket(Bucket=BUCKET)
            return
        except Exception:  # noqa: BLE001 - not up yet, whatever the answer
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the {kind} server did not start") from None
            time.sleep(0.2)


def limit(files: int, rtt_ms: float, round_trips: int, in_flight: int, cpu: Cpu) -> tuple[float, str]:
    """The least time an upload of ``files`` can take, and what sets it: the round trips, ``in_flight``
    at a time, or the CPU of the three processes on this machine's cores (the server, a node process,
    does its file work on threads of its own, so its CPU alone is no bound)."""
    bounds = {"round trips": files * round_trips * rtt_ms / 1000 / in_flight,
              "CPU": (cpu.server + cpu.proxy + cpu.client) / (os.cpu_count() or 1)}
    reason = max(bounds, key=bounds.get)
    return bounds[reason], reason


def make_data(work: Path, args) -> tuple[Path, Path, set[str], int]:
    """The dataset folder, its zip, its relative file names and total bytes."""
    folder = work / "dataset"
    train = round(args.images * 0.8)
    make_demo_dataset(folder, train=train, val=args.images - train, size=args.size, seed=0)
    rng = np.random.default_rng(0)
    for index in range(args.large):
        (folder / "extras").mkdir(exist_ok=True)
        (folder / "extras" / f"blob_{index}.bin").write_bytes(rng.bytes(LARGE_FILE))
    files = sorted(iter_files(folder))
    archive = work / "dataset.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, path.relative_to(folder).as_posix())
    return folder, archive, {p.relative_to(folder).as_posix() for p in files}, sum(p.stat().st_size for p in files)


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of the S3 server, the latency proxy and the uploading client."""

    server: float
    proxy: float
    client: float

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.server - other.server, self.proxy - other.proxy, self.client - other.client)


class Bench:
    def __init__(self, s3, endpoint: str, server: subprocess.Popen, proxy: subprocess.Popen | None, work: Path):
        self.s3, self.endpoint, self.work = s3, endpoint, work
        self.server = psutil.Process(server.pid)
        self.proxy = psutil.Process(proxy.pid) if proxy else None
        self.store = S3DatasetStore(s3, BUCKET, "ours")
        config = work / "aws-config"
        config.write_text(f"[default]\nregion = us-east-1\ns3 =\n    max_concurrent_requests = {AWS_CONCURRENCY}\n"
                          "    addressing_style = path\n")
        self.aws_env = {**os.environ, "AWS_CONFIG_FILE": str(config),
                        "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-credentials"),
                        "AWS_EC2_METADATA_DISABLED": "true"}

    def _cpu(self) -> Cpu:
        """CPU seconds so far of the server, the proxy and the client (this process and the CLI runs)."""
        def total(process: psutil.Process | None) -> float:
            if process is None:
                return 0.0
            return sum(sum(p.cpu_times()[:2]) for p in [process, *process.children(recursive=True)])

        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        client = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        return Cpu(server=total(self.server), proxy=total(self.proxy), client=client)

    def run(self, case: str, side: str, source: Path, run: int) -> tuple[str, float, Cpu]:
        """One timed upload: (the prefix it went to, wall seconds, CPU seconds each process used)."""
        cpu = self._cpu()
        start = time.perf_counter()
        prefix = self._upload(case, side, source, f"{case}-{run}")
        seconds = time.perf_counter() - start
        return prefix, seconds, self._cpu() - cpu

    def _upload(self, case: str, side: str, source: Path, name: str) -> str:
        if side == "ours" and case == "folder":
            self.store.upload(name, folder_items(source), source.name, overwrite=False)
        elif side == "ours":
            with open_safe_zip(source) as opened:
                self.store.upload(name, zip_items(opened), source.name, overwrite=False)
        elif case == "folder":
            self._sync(source, f"aws/{name}/")
        else:
            with tempfile.TemporaryDirectory(dir=self.work) as unpacked:
                with zipfile.ZipFile(source) as zf:
                    zf.extractall(unpacked)
                self._sync(Path(unpacked), f"aws/{name}/")
        return self.store.dataset_prefix(name) if side == "ours" else f"aws/{name}/"

    def _sync(self, folder: Path, prefix: str) -> None:
        subprocess.run([str(AWS), "s3", "sync", str(folder), f"s3://{BUCKET}/{prefix}", "--endpoint-url",
                        self.endpoint, "--only-show-errors", "--no-progress"], check=True, env=self.aws_env)

    def check_and_clear(self, prefix: str, expected: set[str]) -> None:
        """Every expected key, and nothing else, arrived under ``prefix``; then free the server's space."""
        keys = [obj["Key"] for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
                for obj in page.get("Contents", [])]
        found = {key[len(prefix):] for key in keys}
        if found != expected:
            raise RuntimeError(f"{prefix}: {len(expected - found)} keys missing, {len(found - expected)} unexpected")
        for start in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                          "Quiet": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images in the dataset (each has a label file)")
    parser.add_argument("--size", type=int, default=160, help="image width and height in pixels")
    parser.add_argument("--large", type=int, default=2, help="24 MiB files added to the dataset")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the table shows medians")
    parser.add_argument("--server", choices=("s3rver", "moto"), default="s3rver")
    parser.add_argument("--rtt", type=float, default=50.0, help="network round trip to emulate, ms (0: none)")
    args = parser.parse_args()
    ensure_awscli()
    os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=KEY, AWS_DEFAULT_REGION="us-east-1")

    with (tempfile.TemporaryDirectory(prefix="amc-bench-upload-") as tmp,
          tempfile.TemporaryDirectory(prefix="amc-bench-s3-", dir=server_storage_root()) as storage):
        work = Path(tmp)
        print("Making the dataset ...", flush=True)
        folder, archive, names, total = make_data(work, args)
        port = free_port()
        server = start_server(args.server, Path(storage), port)
        proxy = None
        if args.rtt > 0:
            proxy_port = free_port()
            proxy = start_proxy(proxy_port, port, args.rtt)
        endpoint = f"http://127.0.0.1:{proxy_port if proxy else port}"
        try:
            credentials = AwsCredentials(access_key_id=KEY, secret_access_key=KEY, s3_endpoint_url=endpoint)
            s3 = credentials.client_factory()("s3")
            wait_for_bucket(s3, server, args.server)
            bench = Bench(s3, endpoint, server, proxy, work)
            sources = {"folder": folder, "zip": archive}
            expected = {"ours": names | {MANIFEST}, "aws": names}
            times: dict[tuple[str, str], list[tuple[float, Cpu]]] = {
                (case, side): [] for case in sources for side in ("ours", "aws")}
            for run in range(args.repeat):
                order = ("ours", "aws") if run % 2 == 0 else ("aws", "ours")
                for case, source in sources.items():
                    for side in order:
                        prefix, seconds, cpu = bench.run(case, side, source, run)
                        bench.check_and_clear(prefix, expected[side])
                        times[case, side].append((seconds, cpu))
                        print(f"  run {run + 1}/{args.repeat} {case:<6} {side:<4} {seconds:7.2f} s  CPU s: server "
                              f"{cpu.server:.1f}, proxy {cpu.proxy:.1f}, client {cpu.client:.1f}", flush=True)
        finally:
            for process in (proxy, server):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=10)

    print(f"\n{len(names)} files, {total / 2**20:.1f} MiB ({args.images} images of {args.size} px + labels, "
          f"{args.large} x {LARGE_FILE >> 20} MiB), {args.server} on 127.0.0.1, "
          f"{f'{args.rtt:g} ms round trip added' if args.rtt > 0 else 'no latency added'}, median of {args.repeat}, "
          f"{os.cpu_count()} CPUs")
    print(f"ours: {UPLOAD_THREADS} small files at once, {TRANSFER_CONFIG.max_concurrency} parts of big ones; "
          f"aws s3 sync: max_concurrent_requests {AWS_CONCURRENCY}")
    print(f"{'case':<8}{'ours s':>9}{'limit':>8}{'aws s':>9}{'limit':>8}{'ratio':>8}{'target':>8}  result  "
          "limits set by ours / aws")
    for case, target in TARGETS.items():
        ours, aws = (statistics.median(t for t, _ in times[case, side]) for side in ("ours", "aws"))
        cpu_ours, cpu_aws = (median_cpu([c for _, c in times[case, side]]) for side in ("ours", "aws"))
        ratio = ours / aws
        ours_limit, ours_reason = limit(len(names), args.rtt, 1, UPLOAD_THREADS, cpu_ours)
        aws_limit, aws_reason = limit(len(names), args.rtt, 2, AWS_CONCURRENCY, cpu_aws)
        print(f"{case:<8}{ours:>9.2f}{ours_limit:>8.2f}{aws:>9.2f}{aws_limit:>8.2f}{ratio:>8.2f}"
              f"{'<= ' + str(target):>8}  {'PASS' if ratio <= target else 'MISS':<8}{ours_reason} / {aws_reason}")
    print("median CPU s (server / proxy / client): " + "; ".join(
        f"{case} {side} {c.server:.1f} / {c.proxy:.1f} / {c.client:.1f}"
        for (case, side) in times for c in [median_cpu([c for _, c in times[case, side]])]))


def median_cpu(runs: list[Cpu]) -> Cpu:
    return Cpu(*(statistics.median(getattr(c, field) for c in runs) for field in ("server", "proxy", "client")))


if __name__ == "__main__":
    main()
