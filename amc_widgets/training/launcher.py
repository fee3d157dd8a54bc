"""``container/train``: the program SageMaker runs in AMC's training image.

It validates everything first (bad input fails in seconds with a clear ``output/failure``),
then trains in this very process on one device, or starts ``torchrun`` for several GPUs and/or
several hosts, with the master and network interface taken from ``resourceconfig.json``.
SIGTERM (StopTrainingJob, spot interruption) stops training at the next batch and saves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from amc_widgets.core.container_contract import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_STOPPED, FAILURE_LIMIT, MLPaths
from amc_widgets.core.dataset_check import DatasetError
from amc_widgets.core.hyperparameters import HyperparameterError
from amc_widgets.core.processes import die_with_parent
from amc_widgets.training.plan import TrainingPlan, build_plan
from amc_widgets.training.sagemaker_env import ContractError, InstanceError, write_failure
from amc_widgets.training.worker import install_clean_streams

STOP_GRACE_SECONDS = 60  # after forwarding SIGTERM, wait this long before killing the workers


def torchrun_command(plan: TrainingPlan, plan_file: Path) -> list[str]:
    """The torchrun command that starts this host's training processes."""
    return [
        sys.executable, "-m", "torch.distributed.run",
        f"--nnodes={len(plan.hosts)}",
        f"--node_rank={plan.node_rank}",
        f"--nproc_per_node={max(plan.gpus_per_host, 1)}",
        f"--master_addr={plan.master_addr}",
        f"--master_port={plan.master_port}",
        "-m", "amc_widgets.training.worker", str(plan_file),
    ]


def torchrun_env(plan: TrainingPlan, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """torchrun's environment: ``base`` (this process's by default) with the cluster's network interface."""
    env = dict(os.environ if base is None else base)
    if plan.network_interface:
        env["NCCL_SOCKET_IFNAME"] = plan.network_interface
        env["GLOO_SOCKET_IFNAME"] = plan.network_interface
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_distributed(plan: TrainingPlan) -> int:
    """Start torchrun on this host and supervise it; SIGTERM is passed on to it."""
    command = torchrun_command(plan, plan.save())
    print(f"Distributed training: {len(plan.hosts)} host(s) x {max(plan.gpus_per_host, 1)} process(es), "
          f"master {plan.master_addr}:{plan.master_port}, this host rank {plan.node_rank}", flush=True)
    # torchrun ends with this process, however it ends, and takes its workers along
    child = subprocess.Popen(command, env=torchrun_env(plan), start_new_session=True,
                             preexec_fn=die_with_parent(signal.SIGTERM))
    stop_at: list[float] = []

    def forward(_signum, _frame):
        if not stop_at:
            stop_at.append(time.monotonic())
            os.killpg(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    while True:
        try:
            code = child.wait(timeout=1)
            break
        except subprocess.TimeoutExpired:
            if stop_at and time.monotonic() - stop_at[0] > STOP_GRACE_SECONDS:
                os.killpg(child.pid, signal.SIGKILL)
    if stop_at:
        return EXIT_STOPPED
    if code != 0:
        write_failure(plan.paths, f"Distributed training failed (torchrun exit code {code}); the log has the details.")
    return code


def run_single(plan: TrainingPlan) -> int:
    """Train in this process."""
    from amc_widgets.training.ultralytics_env import prepare_offline_ultralytics

    prepare_offline_ultralytics(Path(plan.work_dir) / "ultralytics-config")
    from amc_widgets.training.trainer import StopRequest
    from amc_widgets.training.worker import run

    stop = StopRequest()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return run(plan, stop)


def main() -> int:
    install_clean_streams()
    paths = MLPaths.from_env()
    print(f"AMC training container, ML root {paths.root}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(EXIT_STOPPED))  # before training starts: just leave
    try:
        plan = build_plan(paths)
    except (HyperparameterError, DatasetError, ContractError, InstanceError) as exc:
        message = str(exc)
        write_failure(paths, message[:FAILURE_LIMIT])
        print(f"ERROR: {message}", file=sys.stderr, flush=True)
        return EXIT_FAILED if isinstance(exc, InstanceError) else EXIT_BAD_INPUT
    print(f"Dataset: {plan.dataset_counts}; classes: {plan.class_names}", flush=True)
    try:
        if plan.distributed:
            return run_distributed(plan)
        return run_single(plan)
    finally:
        sys.stdout.close_line()
