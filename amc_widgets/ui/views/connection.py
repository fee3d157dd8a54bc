"""Connection panel: Local or AWS, credentials (secret in a password field), test, connect, close."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from amc_widgets.ui.models.connection import AWS, LOCAL, ConnectionModel
from amc_widgets.ui.views.common import Field, button, guarded, key_values, message, panel


def _roles(info: Any) -> tuple[str, ...]:
    """The IAM roles a connection test found SageMaker may assume."""
    return tuple(getattr(info, "roles", None) or ())


class ConnectionView:
    def __init__(self, model: ConnectionModel):
        self.model = model
        self.kind = w.ToggleButtons(options=[("Local (this machine)", LOCAL), ("AWS SageMaker", AWS)],
                                    description="Backend", style={"button_width": "180px"})
        self.kind.add_class("amc-backend-kind")
        self.access_key = Field("access-key", w.Text(description="Access key ID", placeholder="AKIA..."))
        self.secret = Field("secret", w.Password(description="Secret key"), "never shown, stored or logged")
        self.token = Field("token", w.Password(description="Session token"), "optional (temporary credentials)")
        self.profile = Field("profile", w.Text(description="or profile", placeholder="a profile in ~/.aws"),
                             "instead of keys: a named AWS CLI profile on this server")
        self.region = Field("region", w.Text(description="Region"))
        self.role = Field("role", w.Combobox(description="Role ARN", placeholder="arn:aws:iam::...:role/...",
                                            ensure_option=False, layout=w.Layout(width="520px")),
                          "the IAM role SageMaker trains with; Test connection lists the ones it may assume")
        for field in (self.access_key, self.secret, self.token, self.profile, self.region):
            field.input.layout.width = "420px"
        self.test_button = button("Test connection", icon="plug", css="amc-test-connection")
        self.connect_button = button("Connect", "primary", icon="link", css="amc-connect")
        self.close_button = button("Close connection", icon="unlink", css="amc-close-connection")
        self.status = w.HTML()
        self.status.add_class("amc-connection-status")
        self.details = w.HTML()
        self.details.add_class("amc-connection-details")
        self.aws_box = w.VBox()
        self.widget = panel("Connection", self.kind, self.aws_box,
                            w.HBox([self.test_button, self.connect_button, self.close_button]),
                            self.status, self.details, css="amc-connection")

        # The password fields are deliberately not linked: the secret is no trait, it is copied into the
        # kernel's memory when a button is pressed, and the fields are emptied right after.
        form = model.aws
        self.links = [
            w.link((model, "kind"), (self.kind, "value")),
            w.link((form, "access_key_id"), (self.access_key.input, "value")),
            w.link((form, "profile"), (self.profile.input, "value")),
            w.link((form, "region"), (self.region.input, "value")),
            w.link((form, "role_arn"), (self.role.input, "value")),
            w.dlink((model, "info"), (self.role.input, "options"), _roles),
            w.dlink((model, "backend"), (self.close_button, "disabled"), lambda backend: backend is None),
        ]
        model.observe(self._show_form, "kind")
        model.observe(self._show_status, ["error", "message", "backend"])
        model.observe(self._show_details, ["info", "backend"])
        guard = guarded(self.status)
        self.test_button.on_click(guard(self._on_test))
        self.connect_button.on_click(guard(self._on_connect))
        self.close_button.on_click(guard(self._on_close))
        self.render()

    def _take_secrets(self) -> None:
        """Copy typed secrets into the model; an empty field keeps the secret the model still holds."""
        form = self.model.aws
        if self.secret.input.value:
            form.secret_access_key = self.secret.input.value
        if self.token.input.value:
            form.session_token = self.token.input.value

    def _on_test(self, _button: w.Button) -> None:
        self._take_secrets()
        self.status.value = message("info", "Testing the connection...")
        try:
            self.model.test()
        finally:
            self._empty_secret_fields()

    def _on_connect(self, _button: w.Button) -> None:
        self._take_secrets()
        self.status.value = message("info", "Connecting...")
        try:
            self.model.connect()
        finally:
            self._empty_secret_fields()

    def _on_close(self, _button: w.Button) -> None:
        self.model.close()
        self._empty_secret_fields()

    def _empty_secret_fields(self) -> None:
        """The browser keeps no secret once it has been used, whether that worked or not (a tested
        one waits in the kernel's memory for Connect)."""
        self.secret.input.value = self.token.input.value = ""
        self.render()  # also when the model's state did not change: the same error twice, say

    # --- model -> widgets ---------------------------------------------------------------------
    def render(self) -> None:
        self._show_form()
        self._show_held_secrets()
        self._show_status()
        self._show_details()

    def _show_form(self, _change: dict | None = None) -> None:
        if self.model.kind == LOCAL:
            self.aws_box.children = [w.HTML(message("info", "The local backend needs no credentials: datasets and "
                                                             "jobs live in the workspace below."))]
            self.test_button.layout.display = "none"
        else:
            self.aws_box.children = [self.access_key.box, self.secret.box, self.token.box, self.profile.box,
                                     self.region.box, self.role.box]
            self.test_button.layout.display = None

    def _show_held_secrets(self) -> None:
        held = "entered and tested: kept in memory for Connect (type to replace)"
        self.secret.input.placeholder = held if self.model.holds_secret else ""
        self.token.input.placeholder = held if self.model.aws.session_token else ""

    def _show_status(self, _change: dict | None = None) -> None:
        model = self.model
        if model.error:
            self.status.value = message("error", model.error)
        else:
            self.status.value = message("ok" if model.connected else "info", model.message)

    def _show_details(self, _change: dict | None = None) -> None:
        model = self.model
        rows = model.summary()
        if model.info is not None and (not model.connected or model.is_local):  # the account just tested
            rows = {"Account": model.info.account, "User": model.info.user_name or model.info.arn,
                    "Bucket": model.info.bucket + ("" if model.info.bucket_exists else " (will be created)"),
                    "Your space": getattr(model.info, "space", "-")}
        self.details.value = key_values(rows)
