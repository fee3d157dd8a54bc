"""Reading SageMaker's files (amc_widgets.training.sagemaker_env), called directly with fake files."""

from __future__ import annotations

import json

import pytest

from amc_widgets.core.container_contract import MLPaths
from amc_widgets.training.sagemaker_env import (
    ContractError,
    read_cluster,
    read_hyperparameters,
    read_input_channels,
    write_failure,
)


def ml_root(tmp_path, **configs) -> MLPaths:
    """An /opt/ml with the given config files (``resourceconfig={...}``; a str is written as is)."""
    paths = MLPaths(tmp_path / "ml")
    paths.config_dir.mkdir(parents=True)
    for name, content in configs.items():
        text = content if isinstance(content, str) else json.dumps(content)
        getattr(paths, name).write_text(text)
    return paths


def test_no_resourceconfig_is_one_host(tmp_path):
    cluster = read_cluster(ml_root(tmp_path))
    assert (cluster.hosts, cluster.current_host, cluster.node_rank, cluster.network_interface) == (
        ("algo-1",), "algo-1", 0, None)
    assert cluster.master_host == "algo-1"


def test_hosts_are_sorted_and_the_first_is_the_master(tmp_path):
    paths = ml_root(tmp_path, resourceconfig={"current_host": "algo-2", "hosts": ["algo-3", "algo-2", "algo-1"],
                                              "network_interface_name": "ens5f0"})
    cluster = read_cluster(paths)
    assert cluster.hosts == ("algo-1", "algo-2", "algo-3")
    assert cluster.master_host == "algo-1"
    assert cluster.node_rank == 1
    assert cluster.network_interface == "ens5f0"
    assert cluster.instance_type is None
    paths.resourceconfig.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"],
                                                "current_instance_type": "ml.g4dn.xlarge"}))
    assert read_cluster(paths).instance_type == "ml.g4dn.xlarge"
    for rank, host in enumerate(("algo-1", "algo-2", "algo-3")):
        paths.resourceconfig.write_text(json.dumps({"current_host": host, "hosts": ["algo-3", "algo-1", "algo-2"]}))
        assert read_cluster(paths).node_rank == rank
        assert read_cluster(paths).master_host == "algo-1"


@pytest.mark.parametrize("content, message", [
    ({"hosts": ["algo-1"]}, "resourceconfig.json needs 'current_host' and 'hosts'"),
    ({"current_host": "algo-1"}, "resourceconfig.json needs 'current_host' and 'hosts'"),
    ({"current_host": "algo-1", "hosts": None}, "resourceconfig.json needs 'current_host' and 'hosts'"),
    (["algo-1"], "resourceconfig.json needs 'current_host' and 'hosts'"),
    ({"current_host": "algo-9", "hosts": ["algo-1", "algo-2"]},
     "resourceconfig.json: current_host 'algo-9' is not among hosts ['algo-1', 'algo-2']"),
    ("{not json", "resourceconfig.json is not valid JSON"),
], ids=["no-current-host", "no-hosts", "hosts-null", "not-an-object", "stranger", "not-json"])
def test_a_bad_resourceconfig_says_what_is_wrong(tmp_path, content, message):
    with pytest.raises(ContractError) as caught:
        read_cluster(ml_root(tmp_path, resourceconfig=content))
    assert str(caught.value).startswith(message)


def test_hyperparameters_and_channels(tmp_path):
    paths = ml_root(tmp_path)
    assert read_hyperparameters(paths) == {} and read_input_channels(paths) == {}
    paths.hyperparameters.write_text(json.dumps({"epochs": "3"}))
    paths.inputdataconfig.write_text(json.dumps({"training": {"TrainingInputMode": "File"}}))
    assert read_hyperparameters(paths) == {"epochs": "3"}
    assert list(read_input_channels(paths)) == ["training"]
    paths.hyperparameters.write_text('["epochs", "3"]')
    with pytest.raises(ContractError, match="hyperparameters.json must be a JSON object"):
        read_hyperparameters(paths)
    paths.inputdataconfig.write_text('"training"')
    with pytest.raises(ContractError, match="inputdataconfig.json must be a JSON object"):
        read_input_channels(paths)


def test_the_first_failure_written_wins(tmp_path):
    paths = MLPaths(tmp_path / "ml")
    write_failure(paths, "Class ids too large: labels/a.txt line 4")
    write_failure(paths, "Training failed")
    assert paths.failure_file.read_text() == "Class ids too large: labels/a.txt line 4"
