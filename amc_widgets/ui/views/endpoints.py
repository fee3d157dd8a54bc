"""The Endpoints tab: one card per endpoint (status, settings, cost), a "try it" area (an uploaded
image or a path: the boxes drawn, the JSON, the latency), a copyable snippet, and Delete with a
confirmation that names the endpoint."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import ipywidgets as w

from amc_widgets.ui.models.endpoints import EndpointCard, EndpointsModel, invoke_snippet
from amc_widgets.ui.views.common import button, facts, guarded, in_background, message

IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


class EndpointCardView:
    def __init__(self, model: EndpointsModel, card: EndpointCard, region: str = ""):
        self.model, self.card, self.region = model, card, region
        self.title, self.details, self.note = w.HTML(), w.HTML(), w.HTML()
        self.upload = w.FileUpload(accept=".jpg,.jpeg,.png", multiple=False, description="Upload image")
        self.path = w.Text(placeholder="or a path on this machine: /data/board.jpg", layout=w.Layout(width="420px"))
        self.path.add_class("amc-try-path")
        self.conf = w.FloatSlider(value=0.25, min=0.05, max=0.95, step=0.05, description="Confidence")
        self.try_button = button("Try it", "primary", icon="play", css="amc-try-endpoint")
        self.try_status = w.HTML()
        self.drawn = w.Image(format="png", layout=w.Layout(display="none", max_width="480px", height="auto",
                                                           object_fit="contain"))
        self.drawn.add_class("amc-try-image")
        self.answer = w.HTML()
        self.answer.add_class("amc-try-answer")
        self.snippet = w.Textarea(layout=w.Layout(width="760px", height="110px"))
        self.snippet.add_class("amc-endpoint-snippet")
        self.delete_button = button("Delete", "danger", icon="trash", css="amc-delete-endpoint")
        self.confirm_button = button(f"Yes, delete {card.name}", "danger", css="amc-confirm-delete")
        self.cancel_button = button("Cancel", css="amc-cancel-delete")
        self.confirm = w.HBox([w.HTML(f"Delete endpoint <b>{html.escape(card.name)}</b>? It stops serving at once."),
                               self.confirm_button, self.cancel_button], layout=w.Layout(display="none"))
        self.widget = w.VBox([self.title, self.details, self.note,
                              w.HBox([self.upload, self.path, self.conf, self.try_button]), self.try_status,
                              w.HBox([self.drawn, self.answer], layout=w.Layout(align_items="flex-start")),
                              w.HTML("<b>Invoke it from Python</b>"), self.snippet,
                              w.HBox([self.delete_button]), self.confirm])
        self.widget.add_class("amc-card")
        self.widget.add_class(f"amc-endpoint-{card.name}")
        guard = guarded(self.try_status)
        self.try_button.on_click(guard(lambda _b: self.try_it()))
        self.delete_button.on_click(lambda _b: setattr(self.confirm.layout, "display", "flex"))
        self.cancel_button.on_click(lambda _b: setattr(self.confirm.layout, "display", "none"))
        self.confirm_button.on_click(guard(lambda _b: self.delete()))
        card.observe(self.show, ["description", "error"])
        card.try_it.observe(self.show_try, ["running", "error", "drawn", "answer"])
        self.show()

    def show(self, _change: dict | None = None) -> None:
        card, endpoint = self.card, self.card.description
        status = endpoint.status if endpoint else "Creating"
        self.title.value = (f'<div style="display:flex;gap:12px;align-items:center">'
                            f'<b style="font-size:15px">{html.escape(card.name)}</b>'
                            f'<span class="amc-badge amc-badge-{html.escape(status)} amc-endpoint-status">'
                            f'{html.escape(status)}</span></div>')
        self.details.value = facts(card.settings(time.time()))
        reason = (endpoint.failure_reason if endpoint else "") or card.error
        self.note.value = (f'<div class="amc-failure"><b>Reason:</b> {html.escape(reason)}</div>' if reason else "")
        self.try_button.disabled = not self.model.ready(card.name)
        if endpoint is not None:
            self.snippet.value = invoke_snippet(endpoint, self.region)

    def show_try(self, _change: dict | None = None) -> None:
        state = self.card.try_it
        self.try_button.disabled = state.running or not self.model.ready(self.card.name)
        if state.error:
            self.try_status.value = message("error", state.error)
        elif state.running:
            self.try_status.value = message("info", "Sending the image...")
        elif state.answer:
            found = len(json.loads(state.answer)["detections"])
            self.try_status.value = message("ok", f"{found} object(s), {state.seconds * 1000:.0f} ms round trip")
            self.answer.value = f'<pre style="max-height:320px;overflow:auto">{html.escape(state.answer)}</pre>'
            self.drawn.value = state.drawn
            self.drawn.layout.display = "block"

    def image(self) -> tuple[bytes, str]:
        """The uploaded image, else the file at the typed path."""
        if self.upload.value:
            upload = self.upload.value[0]
            return bytes(upload["content"]), IMAGE_TYPES.get(Path(upload["name"]).suffix.lower(), "image/jpeg")
        path = Path(self.path.value.strip()).expanduser()
        if not self.path.value.strip():
            raise ValueError("Upload an image or type its path")
        kind = IMAGE_TYPES.get(path.suffix.lower())
        if kind is None:
            raise ValueError(f"{path.name}: not a .jpg, .jpeg or .png file")
        return path.read_bytes(), kind

    def try_it(self) -> None:
        body, kind = self.image()
        in_background(lambda: self.model.try_image(self.card.name, body, kind, self.conf.value),
                      f"amc-try-{self.card.name}")

    def delete(self) -> None:
        self.confirm.layout.display = "none"
        self.delete_button.disabled = True
        in_background(lambda: self.model.delete(self.card.name), f"amc-delete-{self.card.name}")


class EndpointsView:
    """The tab: a refresh button, the last action's message, the cards (newest first)."""

    def __init__(self, model: EndpointsModel, region=lambda: ""):
        self.model, self.region = model, region
        self.views: dict[str, EndpointCardView] = {}
        self.refresh_button = button("Find endpoints", icon="refresh", css="amc-find-endpoints")
        self.status = w.HTML()
        self.empty = w.HTML(message("info", "No endpoints: press Deploy on a completed job's card."))
        self.cards_box = w.VBox([self.empty])
        self.cards_box.add_class("amc-cards")
        self.widget = w.VBox([self.refresh_button, self.status, self.cards_box])
        self.widget.add_class("amc-endpoints")
        self.refresh_button.on_click(guarded(self.status)(lambda _b: self.model.refresh()))
        model.observe(self._layout, "names")
        model.observe(self._message, ["message", "error"])
        self._layout()  # the model may be older than the view (a tab is built when first shown)
        self._message()

    def _message(self, _change: dict | None = None) -> None:
        self.status.value = message("error", self.model.error) if self.model.error else message("info",
                                                                                                self.model.message)

    def _layout(self, _change: dict | None = None) -> None:
        for name in self.model.names:
            if name not in self.views:
                self.views[name] = EndpointCardView(self.model, self.model.card(name), self.region())
        for name in [n for n in self.views if n not in self.model.names]:
            del self.views[name]
        self.cards_box.children = [self.views[n].widget for n in self.model.names] or [self.empty]
