"""The training plan (amc_widgets.training.plan) built directly from fake /opt/ml folders and fake
GPU counts: the single-device, multi-GPU and multi-host decisions without a GPU or a training."""

from __future__ import annotations

import json

import pytest

from amc_widgets.core.container_contract import MLPaths
from amc_widgets.core.dataset_check import DatasetError
from amc_widgets.training.plan import TrainingPlan, build_plan, choose_devices
from amc_widgets.training.sagemaker_env import ContractError, InstanceError
from amc_widgets.training.worker import trainer_overrides
from tests.conftest import make_ml_root

HP = {"model": "yolov5n", "epochs": 3, "batch": 32}


def no_gpu_query():
    raise AssertionError("the GPU count was asked for, but device is 'cpu'")


def gpus(count: int):
    return lambda: count


@pytest.mark.parametrize("device, count, expected", [
    ("auto", 0, ("cpu", 0)),
    ("auto", 1, ("cuda", 1)),
    ("auto", 4, ("cuda", 4)),
    ("0", 4, ("cuda", 1)),
    ("0,1", 4, ("cuda", 2)),
    ("2,3", 4, ("cuda", 2)),
])
def test_devices_from_the_device_parameter_and_the_gpu_count(device, count, expected):
    assert choose_devices(device, gpus(count)) == expected


def test_cpu_never_asks_for_gpus():
    assert choose_devices("cpu", no_gpu_query) == ("cpu", 0)


@pytest.mark.parametrize("device, count, message", [
    ("3", 2, "device: '3' asks for GPU 3, but this machine has 2 GPU(s)"),
    ("0,1", 1, "device: '0,1' asks for GPU 1, but this machine has 1 GPU(s)"),
    ("0", 0, "device: '0' asks for GPU 0, but this machine has 0 GPU(s)"),
])
def test_asking_for_gpus_that_are_not_there(device, count, message):
    with pytest.raises(ContractError) as caught:
        choose_devices(device, gpus(count))
    assert str(caught.value).startswith(message) and "'auto'" in str(caught.value)


def test_single_cpu_plan_trains_in_this_process(small_dataset, tmp_path):
    paths = MLPaths(make_ml_root(tmp_path / "ml", small_dataset, {**HP, "device": "cpu"}))
    plan = build_plan(paths, no_gpu_query)
    assert (plan.accelerator, plan.gpus_per_host, plan.world_size, plan.distributed) == ("cpu", 0, 1, False)
    assert plan.ultralytics_device == "cpu"
    assert (plan.hosts, plan.node_rank, plan.master_addr, plan.master_port) == (["algo-1"], 0, "127.0.0.1", 29500)
    assert plan.network_interface is None
    assert plan.class_names == ["good", "insufficient", "bridge"]
    assert plan.resume == "no" and plan.weights is None
    assert TrainingPlan.load(plan.save()) == plan  # what every torchrun worker reads


def test_auto_on_a_machine_without_gpus_is_cpu(small_dataset, tmp_path):
    plan = build_plan(MLPaths(make_ml_root(tmp_path / "ml", small_dataset, HP)), gpus(0))
    assert (plan.accelerator, plan.world_size, plan.distributed, plan.ultralytics_device) == ("cpu", 1, False, "cpu")


def test_one_gpu_trains_in_this_process(small_dataset, tmp_path):
    plan = build_plan(MLPaths(make_ml_root(tmp_path / "ml", small_dataset, HP)), gpus(1))
    assert (plan.accelerator, plan.gpus_per_host, plan.world_size, plan.distributed) == ("cuda", 1, 1, False)
    assert plan.ultralytics_device == "0"


def test_four_gpus_on_one_host(small_dataset, tmp_path):
    plan = build_plan(MLPaths(make_ml_root(tmp_path / "ml", small_dataset, HP)), gpus(4))
    assert (plan.accelerator, plan.gpus_per_host, plan.world_size, plan.distributed) == ("cuda", 4, 4, True)
    assert plan.ultralytics_device == "0,1,2,3"
    assert plan.master_addr == "127.0.0.1" and plan.node_rank == 0


def hosts_at(**addresses: str):
    """A ``find_hosts`` that knows ``algo_1='10.0.0.11'``, ... and records what it was asked."""
    asked = []

    def find(hosts):
        asked.append(list(hosts))
        return {host: addresses[host.replace("-", "_")] for host in hosts}

    find.asked = asked
    return find


def test_four_gpus_on_each_of_two_hosts(small_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("AMC_MASTER_PORT", "29611")
    resourceconfig = {"current_host": "algo-2", "hosts": ["algo-2", "algo-1"], "network_interface_name": "ens5f0"}
    find = hosts_at(algo_1="10.0.0.11", algo_2="10.0.0.12")
    plan = build_plan(MLPaths(make_ml_root(tmp_path / "ml", small_dataset, HP, resourceconfig)), gpus(4), find)
    assert find.asked == [["algo-1", "algo-2"]]  # every host, the master first
    assert (plan.accelerator, plan.gpus_per_host, plan.world_size, plan.distributed) == ("cuda", 4, 8, True)
    assert plan.hosts == ["algo-1", "algo-2"] and plan.node_rank == 1
    assert (plan.master_addr, plan.master_port) == ("10.0.0.11", 29611)  # the first sorted host, resolved
    assert plan.network_interface == "ens5f0"
    overrides = trainer_overrides(plan)
    # the batch is over every process; ultralytics divides it by the world size (32 / 8 = 4 per GPU)
    assert (overrides["device"], overrides["batch"]) == ("0,1,2,3", 32)


def test_two_cpu_hosts_run_one_process_each(small_dataset, tmp_path):
    resourceconfig = {"current_host": "algo-1", "hosts": ["algo-1", "algo-2"], "network_interface_name": "lo"}
    plan = build_plan(MLPaths(make_ml_root(tmp_path / "ml", small_dataset, {**HP, "device": "cpu"}, resourceconfig)),
                      no_gpu_query, hosts_at(algo_1="127.0.0.1", algo_2="127.0.0.1"))
    assert (plan.accelerator, plan.gpus_per_host, plan.world_size, plan.distributed) == ("cpu", 0, 2, True)
    assert plan.node_rank == 0 and plan.ultralytics_device == "cpu"
    assert trainer_overrides(plan)["device"] == "cpu"


def test_bad_input_fails_before_waiting_for_hosts(small_dataset, tmp_path):
    resourceconfig = {"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}
    paths = MLPaths(make_ml_root(tmp_path / "ml", small_dataset, {**HP, "device": "cpu", "weights": "start.pt"},
                                 resourceconfig))
    find = hosts_at(algo_1="127.0.0.1", algo_2="127.0.0.1")
    with pytest.raises(ContractError, match="no 'weights' channel"):
        build_plan(paths, no_gpu_query, find)
    assert find.asked == []


@pytest.mark.parametrize("instance_type, count, expected", [
    ("ml.g4dn.xlarge", 1, ("cuda", 1)),
    ("ml.g4dn.12xlarge", 4, ("cuda", 4)),
    ("ml.m5.large", 0, ("cpu", 0)),  # a CPU instance type
    ("ml.x9.future", 0, ("cpu", 0)),  # a type the catalog does not know: no promise to check
    (None, 0, ("cpu", 0)),  # no resourceconfig (the local backend)
])
def test_auto_takes_what_the_instance_type_has(instance_type, count, expected):
    assert choose_devices("auto", gpus(count), instance_type) == expected


@pytest.mark.parametrize("instance_type, count", [("ml.g4dn.xlarge", 0), ("ml.g5.12xlarge", 2), ("ml.p3.16xlarge", 7)])
def test_auto_on_a_gpu_instance_without_usable_gpus_fails(instance_type, count):
    with pytest.raises(InstanceError) as caught:
        choose_devices("auto", gpus(count), instance_type)
    assert str(caught.value).startswith(f"{instance_type} has ")
    assert f"but CUDA can use {count}: the job stops here rather than train without them" in str(caught.value)
    assert "NVIDIA driver of 525.60.13 or newer" in str(caught.value)
    assert choose_devices("cpu", no_gpu_query, instance_type) == ("cpu", 0)  # asked for, explicitly


def test_a_gpu_instance_that_cuda_cannot_use_fails_the_plan(small_dataset, tmp_path):
    resourceconfig = {"current_host": "algo-1", "hosts": ["algo-1"], "current_instance_type": "ml.g4dn.xlarge"}
    paths = MLPaths(make_ml_root(tmp_path / "ml", small_dataset, HP, resourceconfig))
    with pytest.raises(InstanceError, match="ml.g4dn.xlarge has 1 GPU"):
        build_plan(paths, gpus(0))


def test_gpus_asked_for_on_a_machine_without_them_fail_the_plan(small_dataset, tmp_path):
    with pytest.raises(ContractError, match="asks for GPU 1, but this machine has 0 GPU"):
        build_plan(MLPaths(make_ml_root(tmp_path / "ml", small_dataset, {**HP, "device": "0,1"})), gpus(0))


def test_channels_and_weights(small_dataset, tmp_path):
    paths = MLPaths(make_ml_root(tmp_path / "ml", small_dataset, {**HP, "weights": "start.pt"}))
    with pytest.raises(ContractError, match="weights: 'start.pt' was asked for, but the job has no 'weights' channel"):
        build_plan(paths, gpus(0))
    paths.channel("weights").mkdir()
    (paths.channel("weights") / "other.pt").write_bytes(b"w")
    with pytest.raises(ContractError, match=r"'start.pt' is not in the weights channel \(it has: other.pt\)"):
        build_plan(paths, gpus(0))
    (paths.channel("weights") / "start.pt").write_bytes(b"w")
    assert build_plan(paths, gpus(0)).weights == str(paths.channel("weights") / "start.pt")
    for elsewhere in ("https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov5nu.pt", "/tmp/start.pt"):
        paths.hyperparameters.write_text(json.dumps({**HP, "weights": elsewhere}))
        with pytest.raises(ContractError, match="must name a file in the 'weights' channel; the training "
                                                "container downloads nothing"):
            build_plan(paths, gpus(0))
    paths.hyperparameters.write_text(json.dumps({**HP, "weights": "start.pt"}))
    paths.inputdataconfig.write_text(json.dumps({"data": {}}))
    with pytest.raises(ContractError, match="The job has no 'training' input channel \\(it has: data\\)"):
        build_plan(paths, gpus(0))


def test_no_dataset_is_a_dataset_error(tmp_path):
    paths = MLPaths(tmp_path / "ml")
    paths.config_dir.mkdir(parents=True)
    with pytest.raises(DatasetError, match="The 'training' channel .* is missing"):
        build_plan(paths, gpus(0))


@pytest.mark.parametrize("state, expected", [
    ({"epoch": 2, "epochs": 3, "finished": False}, "resume"),
    ({"epoch": 3, "epochs": 3, "finished": True}, "finished"),
    ("{broken", "no"),
])
def test_checkpoints_decide_the_resume(small_dataset, tmp_path, state, expected):
    paths = MLPaths(make_ml_root(tmp_path / "ml", small_dataset, HP))
    paths.checkpoints.mkdir()
    (paths.checkpoints / "state.json").write_text(state if isinstance(state, str) else json.dumps(state))
    assert build_plan(paths, gpus(0)).resume == "no"  # no last.pt: nothing to resume from
    (paths.checkpoints / "last.pt").write_bytes(b"w")
    assert build_plan(paths, gpus(0)).resume == expected
