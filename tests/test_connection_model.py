"""The connection model, headless (a stand-in SageMaker module), and the Connection panel's handling of
the secret fields."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from amc_widgets.ui.models import connection as connection_module
from amc_widgets.ui.models.connection import AWS, LOCAL, ConnectionModel, NotConnectedError
from tests.dashboard_fakes import SECRET, TOKEN, assert_imports_no_widgets

if TYPE_CHECKING:  # widgets are imported only by the tests that use them
    from amc_widgets.ui.views.connection import ConnectionView


def aws_stub(test_error: Exception | None = None, connect_error: Exception | None = None,
             bucket_exists: bool = False) -> SimpleNamespace:
    """A stand-in for amc_widgets.backends.sagemaker recording how it was called."""
    info = SimpleNamespace(account="123456789012", arn="arn:aws:iam::123456789012:user/ana", user_name="ana",
                           region="eu-west-1", bucket="sagemaker-eu-west-1-123456789012",
                           bucket_exists=bucket_exists, roles=["arn:aws:iam::123456789012:role/SageMaker"])
    calls = []

    class SageMakerBackend:
        name = "sagemaker"

        def __init__(self, creds, role):
            self.user, self.creds, self.role = "ana", creds, role

        @staticmethod
        def test_connection(creds):
            calls.append(("test", creds))
            if test_error:
                raise test_error
            return info

        @classmethod
        def connect(cls, creds, role_arn, create_bucket=False):
            calls.append(("connect", creds, role_arn, create_bucket))
            if connect_error:
                raise connect_error
            return cls(creds, role_arn)

    return SimpleNamespace(AwsCredentials=lambda **kw: SimpleNamespace(**kw), SageMakerBackend=SageMakerBackend,
                           info=info, calls=calls)


def aws_model(module) -> ConnectionModel:
    model = ConnectionModel(local_factory=lambda: pytest.fail("local backend not expected"),
                            aws_loader=lambda: module)
    model.set_kind(AWS)
    model.aws.access_key_id, model.aws.secret_access_key, model.aws.session_token = " AKIAEXAMPLE ", SECRET, TOKEN
    model.aws.region = "eu-west-1"
    return model


def everything_shown(model: ConnectionModel) -> str:
    return " ".join([model.error, model.message, json.dumps(model.summary())])


def test_local_connect_summary_has_the_workspace_and_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("AMC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AMC_USER", "ana")
    monkeypatch.delenv(connection_module.CONTAINER_COMMAND_ENV, raising=False)
    model = ConnectionModel()
    model.aws.secret_access_key = SECRET
    assert model.summary() == {"Status": "Not connected"}
    heard = []
    model.observe(heard.append, "backend")
    backend = model.connect()
    assert [change.new for change in heard] == [backend] and model.message == "Connected to this machine"
    assert model.connected and model.is_local and model.require_backend() is backend and model.kind == LOCAL
    assert model.summary() == {"Backend": "Local (this machine)", "User": "ana", "Workspace": str(tmp_path / "home")}
    assert SECRET not in everything_shown(model)


def test_failed_aws_test_never_shows_the_secret():
    module = aws_stub(test_error=RuntimeError(f"SignatureDoesNotMatch for {SECRET} (token {TOKEN})"))
    model = aws_model(module)
    heard = []
    model.observe(heard.append)
    assert model.test() is None
    assert model.error.startswith("Connection test failed") and "SignatureDoesNotMatch" in model.error
    assert "****" in model.error and SECRET not in model.error and TOKEN not in model.error
    assert [change.name for change in heard] == ["error"]
    _, creds = module.calls[0]
    assert creds.access_key_id == "AKIAEXAMPLE" and creds.region == "eu-west-1"


def test_failed_aws_connect_never_shows_the_secret():
    module = aws_stub(connect_error=RuntimeError(f"AccessDenied: key {SECRET} may not assume the role"))
    model = aws_model(module)
    model.aws.role_arn = module.info.roles[0]
    assert model.connect() is None and not model.connected
    assert "AccessDenied" in model.error and SECRET not in everything_shown(model)


def test_aws_test_then_connect_clears_the_secret_from_the_form():
    module = aws_stub(bucket_exists=False)
    model = aws_model(module)
    info = model.test()
    assert info is module.info and model.aws.role_arn == module.info.roles[0]
    assert module.info.bucket in model.message and model.error == ""
    backend = model.connect()
    assert backend is model.backend and model.connected and not model.is_local
    _, creds, role, create_bucket = module.calls[-1]
    assert (creds.secret_access_key, role, create_bucket) == (SECRET, module.info.roles[0], True)
    assert model.aws.secret_access_key == "" and model.aws.session_token == ""
    assert model.aws.access_key_id.strip() == "AKIAEXAMPLE"
    summary = model.summary()
    assert summary["Account"] == "123456789012" and summary["Bucket"] == module.info.bucket
    assert SECRET not in everything_shown(model) and TOKEN not in everything_shown(model)


def connection_form(module) -> ConnectionView:
    """The Connection panel on an AWS model, with the secrets typed into its password fields."""
    from amc_widgets.ui.views.connection import ConnectionView

    view = ConnectionView(aws_model(module))
    view.model.aws.forget_secrets()  # as the user sees it: nothing typed yet
    view.access_key.input.value, view.region.input.value = "AKIAEXAMPLE", "eu-west-1"
    view.secret.input.value, view.token.input.value = SECRET, TOKEN
    return view


def test_a_failed_test_empties_the_secret_fields_and_forgets_the_secret():
    module = aws_stub(test_error=RuntimeError(f"SignatureDoesNotMatch for {SECRET}"))
    view = connection_form(module)
    view.test_button.click()
    assert module.calls[-1][1].secret_access_key == SECRET  # it was used
    assert (view.secret.input.value, view.token.input.value) == ("", "")
    assert not view.model.holds_secret and view.model.aws.session_token == ""
    assert "SignatureDoesNotMatch" in view.status.value and SECRET not in view.status.value


def test_a_successful_test_empties_the_fields_and_connect_uses_the_tested_secret():
    module = aws_stub()
    view = connection_form(module)
    view.test_button.click()
    assert (view.secret.input.value, view.token.input.value) == ("", "")
    assert view.model.holds_secret and "kept in memory" in view.secret.input.placeholder
    view.connect_button.click()  # the fields are empty now: the secret held in memory is used
    _, creds, role, _ = module.calls[-1]
    assert (creds.secret_access_key, creds.session_token, role) == (SECRET, TOKEN, module.info.roles[0])
    assert view.model.connected and not view.model.holds_secret and view.secret.input.placeholder == ""
    assert (view.secret.input.value, view.token.input.value) == ("", "")


def test_the_panel_says_connecting_until_the_outcome_and_a_failure_drops_the_backend():
    module = aws_stub()
    view = connection_form(module)
    model = view.model
    model.backend = old = SimpleNamespace(name="local", user="ana")  # connected somewhere already
    view.role.input.value = module.info.roles[0]
    during = []
    connect = module.SageMakerBackend.connect

    def slow_connect(creds, role_arn, create_bucket=False):
        during.append((view.status.value, model.backend))
        return connect(creds, role_arn, create_bucket)

    module.SageMakerBackend.connect = slow_connect
    view.connect_button.click()
    (status, backend), = during
    assert "Connecting" in status and backend is old  # nothing announced before the outcome
    assert model.connected and model.backend is not old and "Connected to AWS" in view.status.value
    model.aws.role_arn = ""
    assert model.connect() is None and model.backend is None and "IAM role" in model.error


def test_a_failed_connect_empties_the_secret_fields():
    module = aws_stub(connect_error=RuntimeError("AccessDenied"))
    view = connection_form(module)
    view.role.input.value = module.info.roles[0]
    view.connect_button.click()
    assert not view.model.connected and "AccessDenied" in view.status.value
    assert (view.secret.input.value, view.token.input.value) == ("", "") and not view.model.holds_secret


def test_close_forgets_backend_and_secret():
    module = aws_stub()
    model = aws_model(module)
    model.aws.role_arn = module.info.roles[0]
    model.connect()
    model.aws.secret_access_key = SECRET  # typed again after connecting
    heard = []
    model.observe(heard.append, "backend")
    model.close()
    assert model.backend is None and model.info is None and not model.connected
    assert model.aws.secret_access_key == "" and model.aws.session_token == ""
    assert model.summary() == {"Status": "Not connected"} and [change.new for change in heard] == [None]
    with pytest.raises(NotConnectedError, match="Not connected"):
        model.require_backend()


def test_missing_role_arn_is_a_clear_message():
    module = aws_stub()
    model = aws_model(module)
    assert model.connect() is None
    assert "IAM role" in model.error and not model.connected
    assert not any(call[0] == "connect" for call in module.calls)


def test_an_unknown_backend_kind_is_refused():
    model = ConnectionModel(local_factory=lambda: None)
    with pytest.raises(ValueError, match="Unknown backend"):
        model.set_kind("azure")


def test_the_secret_is_no_trait_and_never_reaches_a_widget():
    """Views link widgets to traits; the secret and the token are plain attributes, so none can."""
    module = aws_stub()
    view = connection_form(module)
    view.test_button.click()
    model = view.model
    assert model.holds_secret and model.aws.session_token == TOKEN
    for owner in (model, model.aws):
        assert not {"secret_access_key", "session_token"} & set(owner.trait_names())
        assert SECRET not in repr(owner.trait_values()) and TOKEN not in repr(owner.trait_values())
    for field in (view.secret, view.token):
        assert SECRET not in repr(field.input.get_state()) and TOKEN not in repr(field.input.get_state())


def test_the_form_is_linked_to_the_model_and_a_new_kind_clears_the_error():
    module = aws_stub(connect_error=RuntimeError("AccessDenied"))
    view = connection_form(module)
    model = view.model
    assert model.aws.access_key_id == "AKIAEXAMPLE" and model.aws.region == "eu-west-1"  # typed into the form
    view.test_button.click()
    assert view.role.input.options == tuple(module.info.roles) and view.role.input.value == module.info.roles[0]
    assert "Credentials work" in view.status.value and module.info.bucket in view.details.value
    view.connect_button.click()
    assert "AccessDenied" in view.status.value and view.close_button.disabled
    view.kind.value = LOCAL
    assert model.kind == LOCAL and model.error == "" and "AccessDenied" not in view.status.value
    assert view.test_button.layout.display == "none"
    model.set_kind(AWS)
    assert view.kind.value == AWS and view.test_button.layout.display is None


def test_the_connection_model_imports_no_widgets():
    assert_imports_no_widgets("amc_widgets.ui.models.connection")
