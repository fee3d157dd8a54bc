"""Which backend the dashboard talks to: the local workspace, or an AWS account through SageMaker."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import traitlets as tl

from amc_widgets.backends.base import Backend, RunsJobsHere
from amc_widgets.core.errors import AmcError, redact, user_message

LOCAL, AWS = "local", "aws"
CONTAINER_COMMAND_ENV = "AMC_CONTAINER_COMMAND"  # tests only: JSON list, a stand-in for container/train


def local_backend_from_env() -> Backend:
    """The local backend on ``$AMC_HOME``; ``$AMC_CONTAINER_COMMAND`` (JSON list) swaps the container."""
    from amc_widgets.backends.local import LocalBackend

    command = os.environ.get(CONTAINER_COMMAND_ENV)
    return LocalBackend(container_command=json.loads(command) if command else None)


def load_aws_module() -> ModuleType:
    """The SageMaker backend module, imported only when AWS is chosen."""
    return importlib.import_module("amc_widgets.backends.sagemaker")


class AwsForm(tl.HasTraits):
    """What the user types to reach an AWS account. The secret key and the session token are plain
    attributes, not traits: no widget can link to them, so they never enter the browser's widget
    state. They stay here, in this kernel's memory, and nowhere else."""

    access_key_id = tl.Unicode("")
    profile = tl.Unicode("")
    region = tl.Unicode("us-east-1")
    role_arn = tl.Unicode("")

    def __init__(self, secret_access_key: str = "", session_token: str = "", **traits: Any):
        super().__init__(**traits)
        self.secret_access_key = secret_access_key
        self.session_token = session_token

    def secrets(self) -> tuple[str, str]:
        return self.secret_access_key, self.session_token

    def forget_secrets(self) -> None:
        self.secret_access_key = self.session_token = ""


class NotConnectedError(AmcError):
    """An action needs a backend and none is connected."""


class ConnectionModel(tl.HasTraits):
    """The backend in use, how it was reached, and what the user should see about it."""

    kind = tl.Enum((LOCAL, AWS), LOCAL, help="the backend the user chose")
    aws = tl.Instance(AwsForm, args=())
    backend = tl.Any(None, allow_none=True, help="the backend in use; None when not connected")
    info = tl.Any(None, allow_none=True, help="the account Test connection found (SageMaker's ConnectionInfo)")
    message = tl.Unicode("", help="how the connection stands")
    error = tl.Unicode("", help="what went wrong, secrets redacted")

    def __init__(self, local_factory: Callable[[], Backend] = local_backend_from_env,
                 aws_loader: Callable[[], ModuleType] = load_aws_module):
        super().__init__()
        self._local_factory = local_factory
        self._aws_loader = aws_loader

    def aws_module(self) -> ModuleType:
        """The SageMaker backend module, imported when AWS is first used (boto3 is slow to import)."""
        return self._aws_loader()

    def credentials(self, module: ModuleType) -> Any:
        form = self.aws
        return module.AwsCredentials(
            access_key_id=form.access_key_id.strip() or None,
            secret_access_key=form.secret_access_key or None,
            session_token=form.session_token or None,
            profile=form.profile.strip() or None,
            region=form.region.strip() or "us-east-1",
        )

    # --- actions ------------------------------------------------------------------------------
    def set_kind(self, kind: str) -> None:
        if kind not in (LOCAL, AWS):
            raise ValueError(f"Unknown backend {kind!r}")
        self.kind, self.error = kind, ""

    @tl.observe("kind")
    def _kind_changed(self, change: tl.Bunch) -> None:
        self.error = ""  # an error about the other backend no longer applies

    def test(self) -> Any:
        """Check the AWS credentials without connecting; returns the ConnectionInfo (None on error)."""
        module = self.aws_module()
        try:
            info = module.SageMakerBackend.test_connection(self.credentials(module))
        except Exception as exc:  # noqa: BLE001 - any AWS error is shown, secrets removed
            return self._fail("Connection test failed: " + user_message(exc), forget_secrets=True)
        # a secret that worked stays in this kernel's memory for Connect (the form itself is emptied)
        if not self.aws.role_arn and getattr(info, "roles", None):
            self.aws.role_arn = info.roles[0]
        with self.hold_trait_notifications():
            self.info, self.error = info, ""
            self.message = "Credentials work. " + (
                "" if info.bucket_exists else f"Bucket {info.bucket} will be created.")
        return info

    def connect(self) -> Backend | None:
        """Connect to the chosen backend: it replaces the current one, which is dropped when this fails
        (and kept until then, so nothing announces a change before the outcome). AWS secrets are dropped
        once used."""
        if self.kind == LOCAL:
            try:
                backend = self._local_factory()
            except Exception:
                self.backend = None
                raise
            message = "Connected to this machine"
        else:
            module = self.aws_module()
            if not self.aws.role_arn.strip():
                return self._fail("Choose the IAM role SageMaker runs the training jobs with "
                                  "(Test connection lists them)",
                                  drop_backend=True)
            try:
                creds = self.credentials(module)
                if self.info is None:
                    self.info = module.SageMakerBackend.test_connection(creds)
                backend = module.SageMakerBackend.connect(creds, self.aws.role_arn.strip(),
                                                          create_bucket=not self.info.bucket_exists)
            except Exception as exc:  # noqa: BLE001
                return self._fail("Could not connect: " + user_message(exc), forget_secrets=True, drop_backend=True)
            self.aws.forget_secrets()
            message = "Connected to AWS"
        with self.hold_trait_notifications():
            self.backend, self.message, self.error = backend, message, ""
        return self.backend

    def close(self) -> None:
        """Forget the backend, and the secret with it."""
        self.aws.forget_secrets()
        with self.hold_trait_notifications():
            self.backend, self.info = None, None
            self.message = "Not connected"

    def _fail(self, message: str, forget_secrets: bool = False, drop_backend: bool = False) -> None:
        """Show ``message`` (secrets redacted); a secret that failed is dropped: the user types it again."""
        with self.hold_trait_notifications():
            if drop_backend:
                self.backend = None
            self.error = redact(message, self.aws.secrets())
        if forget_secrets:
            self.aws.forget_secrets()
        return None

    @property
    def holds_secret(self) -> bool:
        """A tested secret waits in memory for Connect."""
        return bool(self.aws.secret_access_key)

    # --- what the panel shows -----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.backend is not None

    @property
    def is_local(self) -> bool:
        return self.backend is None or isinstance(self.backend, RunsJobsHere)

    def require_backend(self) -> Backend:
        if self.backend is None:
            raise NotConnectedError("Not connected: open the Connection tab and connect first")
        return self.backend

    def summary(self) -> dict[str, str]:
        """Label -> value rows describing the connection (never a secret)."""
        if self.backend is None:
            return {"Status": "Not connected"}
        if self.is_local:
            home = getattr(self.backend, "home", None)
            return {"Backend": "Local (this machine)", "User": self.backend.user,
                    "Workspace": str(Path(home)) if home else "-"}
        info = self.info
        return {"Backend": "AWS SageMaker", "Account": getattr(info, "account", "-"),
                "User": getattr(info, "user_name", "") or getattr(info, "arn", "-"),
                "Bucket": getattr(info, "bucket", "-"), "Region": self.aws.region, "Role": self.aws.role_arn}
