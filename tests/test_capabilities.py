"""Backend capabilities: what a backend can do is asked with isinstance, never by its name."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from amc_widgets import cli
from amc_widgets.backends.aws_session import ConnectionInfo
from amc_widgets.backends.base import ChecksQuotas, RunsJobsHere, TailsLogs, WatchesLogs
from amc_widgets.backends.local import LocalBackend
from amc_widgets.backends.sagemaker import SageMakerBackend
from amc_widgets.core.instances import THIS_MACHINE, validate_instance_count


def sagemaker_backend() -> SageMakerBackend:
    info = ConnectionInfo(account="123456789012", arn="arn:aws:iam::123456789012:user/ana", user_name="ana",
                          user_key="AIDAEXAMPLEANA", region="us-east-1", bucket="sagemaker-us-east-1-123456789012",
                          bucket_exists=True, roles=[])
    return SageMakerBackend(lambda service: SimpleNamespace(service=service), info,
                            "arn:aws:iam::123456789012:role/AmcExecution")


def test_each_backend_has_its_capabilities(tmp_path):
    local, remote = LocalBackend(home=tmp_path, user="ana"), sagemaker_backend()
    assert isinstance(local, RunsJobsHere) and not isinstance(remote, RunsJobsHere)
    assert isinstance(remote, TailsLogs) and not isinstance(local, TailsLogs)
    assert isinstance(remote, ChecksQuotas) and not isinstance(local, ChecksQuotas)
    assert isinstance(local, WatchesLogs) and not isinstance(remote, WatchesLogs)  # SageMaker's cards only poll


def test_live_tail_on_a_backend_without_it_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AMC_HOME", str(tmp_path))
    assert cli.main(["logs", "amc-some-job", "--follow", "--live-tail"]) == cli.EXIT_ERROR
    assert capsys.readouterr().err.strip() == (
        "amc: error: --live-tail needs a backend that streams logs (--backend sagemaker)")


def test_one_machine_is_one_instance_and_cpu_types_run_alone():
    validate_instance_count(THIS_MACHINE, 1)
    with pytest.raises(ValueError, match="This machine is one machine"):
        validate_instance_count(THIS_MACHINE, 2)
    validate_instance_count("ml.g4dn.12xlarge", 2)
    with pytest.raises(ValueError, match="need a GPU instance type"):
        validate_instance_count("ml.m5.large", 2)
    with pytest.raises(ValueError, match="at least 1"):
        validate_instance_count("ml.g4dn.xlarge", 0)
