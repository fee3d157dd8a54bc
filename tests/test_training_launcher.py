"""The torchrun command and environment (amc_widgets.training.launcher) for fake plans: the
multi-GPU / multi-host branch that CI, without GPUs or hosts, otherwise never runs."""

from __future__ import annotations

import sys
from pathlib import Path

from amc_widgets.training.launcher import torchrun_command, torchrun_env
from amc_widgets.training.plan import TrainingPlan


def make_plan(hosts=("algo-1",), node_rank=0, gpus=0, master_addr="127.0.0.1", master_port=29500,
              network_interface=None) -> TrainingPlan:
    return TrainingPlan(
        ml_root="/opt/ml", work_dir="/opt/ml/amc-work", params={}, data_yaml="/opt/ml/amc-work/data.yaml",
        class_names=["good"], dataset_counts={}, sample_image=None, weights=None, resume="no",
        accelerator="cuda" if gpus else "cpu", gpus_per_host=gpus, hosts=list(hosts), node_rank=node_rank,
        master_addr=master_addr, master_port=master_port, network_interface=network_interface)


def test_four_gpus_on_the_second_of_two_hosts():
    plan = make_plan(hosts=("algo-1", "algo-2"), node_rank=1, gpus=4, master_addr="10.0.0.11", master_port=29611)
    assert plan.world_size == 8
    assert torchrun_command(plan, Path("/opt/ml/amc-work/plan.json")) == [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes=2", "--node_rank=1", "--nproc_per_node=4",
        "--master_addr=10.0.0.11", "--master_port=29611",  # static rendezvous at the first sorted host
        "-m", "amc_widgets.training.worker", "/opt/ml/amc-work/plan.json",
    ]


def test_cpu_hosts_start_one_process_each():
    command = torchrun_command(make_plan(hosts=("algo-1", "algo-2", "algo-3"), node_rank=2), Path("plan.json"))
    assert "--nnodes=3" in command and "--node_rank=2" in command and "--nproc_per_node=1" in command


def test_one_host_with_several_gpus():
    command = torchrun_command(make_plan(gpus=2), Path("plan.json"))
    assert command[3:8] == ["--nnodes=1", "--node_rank=0", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                            "--master_port=29500"]


def test_nccl_and_gloo_use_the_interface_sagemaker_names():
    base = {"PATH": "/usr/bin", "AMC_ML_ROOT": "/opt/ml"}
    for interface in ("eth0", "ens5f0"):
        env = torchrun_env(make_plan(hosts=("algo-1", "algo-2"), gpus=4, network_interface=interface), base)
        assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == interface
        assert env["PATH"] == "/usr/bin" and env["AMC_ML_ROOT"] == "/opt/ml" and env["PYTHONUNBUFFERED"] == "1"
    assert base == {"PATH": "/usr/bin", "AMC_ML_ROOT": "/opt/ml"}  # the caller's mapping is left alone


def test_no_interface_named_sets_none():
    env = torchrun_env(make_plan(hosts=("algo-1", "algo-2")), {"PATH": "/usr/bin"})
    assert "NCCL_SOCKET_IFNAME" not in env and "GLOO_SOCKET_IFNAME" not in env


def test_the_environment_defaults_to_this_process(monkeypatch):
    monkeypatch.setenv("AMC_TEST_MARKER", "kept")
    assert torchrun_env(make_plan(network_interface="lo"))["AMC_TEST_MARKER"] == "kept"
