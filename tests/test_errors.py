"""One error family and one way to say any error: what the CLI prints and the dashboard shows."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.parsers import ResponseParserError

import amc_widgets.backends.aws_session  # noqa: F401 - registers the botocore explainer
from amc_widgets import cli
from amc_widgets.backends.aws_session import AwsConnectionError
from amc_widgets.backends.sagemaker import QuotaError
from amc_widgets.core.archive import BadArchiveError, UnsafeArchiveError
from amc_widgets.core.dataset_check import DatasetError
from amc_widgets.core.errors import AmcError, is_expected, user_message
from amc_widgets.core.hyperparameters import HyperparameterError
from amc_widgets.core.jobs import JobNotFoundError
from amc_widgets.training.sagemaker_env import ContractError
from amc_widgets.ui.models.connection import NotConnectedError


@pytest.mark.parametrize("error", [DatasetError, HyperparameterError, JobNotFoundError, AwsConnectionError, QuotaError,
                                   BadArchiveError, UnsafeArchiveError, ContractError, NotConnectedError])
def test_every_error_a_user_can_fix_is_one_family(error):
    assert issubclass(error, AmcError)


def test_our_errors_say_their_own_words_on_one_line():
    not_ready = DatasetError("solder.zip is not ready:\n  No data.yaml\n")
    assert user_message(not_ready) == "solder.zip is not ready: No data.yaml"
    assert user_message(HyperparameterError({"epochs": "must be >= 1 (got 0)", "lr0": "must be a number"})) == (
        "epochs: must be >= 1 (got 0); lr0: must be a number")
    assert user_message(JobNotFoundError("No training job named 'x'")) == "No training job named 'x'"
    assert user_message(FileNotFoundError(2, "No such file or directory", "/data/x.zip")) == (
        "No such file or directory: /data/x.zip")
    assert user_message(KeyError("a.jpg is not in x.zip")) == "a.jpg is not in x.zip"  # no quotes around it
    assert user_message(DatasetError("two\nlines"), one_line=False) == "two\nlines"


def test_botocore_errors_become_a_sentence():
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")
    assert user_message(denied) == "Could not complete the request: you lack a permission (see `amc iam-policy`)"
    page = ResponseParserError("Unable to parse response: b'<html>...' ")
    assert "not an AWS response" in user_message(page) and "<html>" not in user_message(page)
    assert "Could not connect to the endpoint URL" in user_message(EndpointConnectionError(endpoint_url="http://x"))
    assert all(is_expected(e) for e in (denied, page))


def test_secrets_are_redacted_and_the_unexpected_is_named():
    refused = RuntimeError("key sekrit refused")
    assert user_message(refused, secrets=["sekrit", None, ""]) == "RuntimeError: key **** refused"
    assert user_message(ZeroDivisionError()) == "ZeroDivisionError"
    assert not is_expected(ZeroDivisionError()) and is_expected(DatasetError("x"))


def test_the_cli_ends_every_error_in_one_line(monkeypatch, capsys):
    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_jobs", broken)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert cli.main(["jobs"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["amc: internal error: ZeroDivisionError: division by zero (AMC_DEBUG=1 shows the traceback)"]
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["jobs"])
