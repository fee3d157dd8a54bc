"""A job's Results view: per-class table, confusion matrix and PR curve (Plotly, from the card's
numbers), the validation gallery worst first with a confidence slider, and the model on your image.
Built only when the card's Results button is pressed."""

from __future__ import annotations

import html
import io
import json
import math

import ipywidgets as w
import plotly.graph_objects as go
import plotly.io as pio

from amc_widgets.core.results import QUALITY, confusion_matrix, pr_curves, side_by_side
from amc_widgets.ui.models.results import ResultsModel
from amc_widgets.ui.views.common import CHART_CONFIG, button, guarded, message

GALLERY_SHOWN = 12  # the worst images drawn at a time (each is a PNG sent to the page)


def per_class_html(model: ResultsModel) -> str:
    """The per-class table (escaped), 'all' first, '-' where a class has no validation instance."""
    frame = model.table()
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = [html.escape(str(row["class"])), str(int(row["images"])), str(int(row["instances"]))]
        cells += ["-" if math.isnan(row[c]) else f"{row[c]:.3f}" for c in QUALITY]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return f'<table class="amc-per-class"><tr>{head}</tr>{"".join(rows)}</table>'


def confusion_figure(card: dict) -> go.Figure:
    """Heatmap of the confusion matrix: each true class's column as shares, counts in the cells."""
    labels, counts = confusion_matrix(card)
    _, shares = confusion_matrix(card, normalise=True)
    entry = card["validation"]["confusion_matrix"]
    figure = go.Figure(go.Heatmap(z=shares.tolist(), x=labels, y=labels, colorscale="Blues", zmin=0, zmax=1,
                                  text=counts.astype(int).tolist(), texttemplate="%{text}",
                                  hovertemplate="true %{x}<br>predicted %{y}<br>%{text} object(s)<extra></extra>"))
    figure.update_layout(title="Confusion matrix",
                         xaxis_title=f"true (detections at confidence >= {entry['conf']}, IoU {entry['iou']})",
                         yaxis_title="predicted", yaxis_autorange="reversed",
                         width=460, height=400, margin=dict(l=90, r=10, t=40, b=60), template="plotly_white")
    return figure


def pr_figure(card: dict) -> go.Figure:
    """Precision against recall per class at IoU 0.5; the legend gives each class's mAP50."""
    rows = {row["class"]: row for row in card["validation"]["per_class"]}
    figure = go.Figure()
    for name, (recall, precision) in pr_curves(card).items():
        figure.add_scatter(x=recall, y=precision, mode="lines", name=f"{name} {rows[name]['mAP50']:.3f}")
    figure.update_layout(title="Precision-recall (IoU 0.5)", xaxis_title="recall", yaxis_title="precision",
                         xaxis_range=[0, 1], yaxis_range=[0, 1.02], width=520, height=400,
                         margin=dict(l=50, r=10, t=40, b=60), template="plotly_white")
    return figure


def figure_output(figure: go.Figure) -> w.Output:
    """A static Plotly figure (hover and zoom, rendered by plotly's mime renderer). A FigureWidget made
    after the page loaded renders empty in Voila when it already holds its data; this does not."""
    bundle = {"application/vnd.plotly.v1+json": {**json.loads(pio.to_json(figure)), "config": CHART_CONFIG}}
    output = w.Output()
    output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
    return output


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class ResultsView:
    """Thin view of a :class:`ResultsModel`; its parts are built when the model is ready."""

    def __init__(self, model: ResultsModel):
        self.model = model
        self.status = w.HTML()
        self.body = w.VBox()
        self.widget = w.VBox([w.HTML("<h3>Results on the validation split</h3>"), self.status, self.body])
        self.widget.add_class("amc-results")
        self.links: list = []
        model.observe(self._on_state, ["state", "error"])
        model.observe(lambda _c: self._draw_gallery(), "ranked")
        model.observe(lambda _c: self._draw_note(), "conf")  # a new threshold may leave the ranking as it was
        model.observe(self._on_user_image, ["user_image", "user_note"])
        self._on_state()

    def _on_state(self, _change: dict | None = None) -> None:
        state = self.model.state
        if state == "error":
            self.status.value = message("error", self.model.error)
        elif state == "loading":
            self.status.value = message("info", "Downloading the outputs and running the model on the gallery...")
        elif state == "ready" and not self.body.children:
            self.status.value = ""
            self._build()

    def _build(self) -> None:
        model = self.model
        self.table = w.HTML(per_class_html(model))
        self.confusion = figure_output(confusion_figure(model.card))
        self.pr = figure_output(pr_figure(model.card))
        self.conf = w.FloatSlider(min=0.05, max=0.95, step=0.05, value=model.conf, description="Confidence",
                                  continuous_update=False, readout_format=".2f")
        self.conf.add_class("amc-results-conf")
        self.links.append(w.link((model, "conf"), (self.conf, "value")))
        self.gallery_note = w.HTML()
        self.gallery = w.VBox()
        self.gallery.add_class("amc-gallery")
        self.path = w.Text(placeholder="/path/to/image.jpg", description="Image path")
        self.path.add_class("amc-results-path")
        self.run_button = button("Run model", icon="play", css="amc-results-run")
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Upload image")
        self.user_status = w.HTML()
        self.user_picture = w.Image(format="png", layout=w.Layout(display="none", max_width="640px"))
        self.user_picture.add_class("amc-results-user-image")
        guard = guarded(self.user_status)
        self.run_button.on_click(guard(lambda _b: model.predict(self.path.value.strip())))
        self.upload.observe(guard(self._on_upload), "value")
        self.body.children = [
            self.table, w.HBox([self.confusion, self.pr]),
            w.HTML("<b>Validation images</b>: ground truth left, the model's boxes right, worst first"),
            self.conf, self.gallery_note, self.gallery,
            w.HTML("<b>Your image</b> through the ONNX model"),
            w.HBox([self.path, self.run_button, self.upload]), self.user_status, self.user_picture,
        ]
        self._draw_gallery()

    def _draw_note(self) -> None:
        if not self.body.children:
            return
        ranked = self.model.ranked
        if not ranked:
            self.gallery_note.value = message("info", "The outputs hold no validation images.")
            return
        found = sum(item.matched for item in ranked)
        total = sum(len(item.image.truth) for item in ranked)
        self.gallery_note.value = message(
            "info", f"{min(len(ranked), GALLERY_SHOWN)} worst of {len(ranked)} validation images: {found} of "
                    f"{total} objects found at confidence >= {self.model.conf:.2f}")

    def _draw_gallery(self) -> None:
        if not self.body.children:
            return
        self._draw_note()
        names = self.model.names
        children = []
        for item in self.model.ranked[:GALLERY_SHOWN]:
            caption = (f"{item.image.path.name}: {item.matched} of {len(item.image.truth)} found, "
                       f"{item.missed} missed, {item.false} false")
            picture = w.Image(value=_png(side_by_side(item, names)), format="png",
                              layout=w.Layout(max_width="520px"))
            children.append(w.VBox([w.HTML(f'<div class="amc-msg amc-msg-info">{html.escape(caption)}</div>'),
                                    picture]))
        self.gallery.children = children

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if files:
            upload = files[0]
            self.model.predict(bytes(upload["content"]), label=upload["name"])

    def _on_user_image(self, _change: dict | None = None) -> None:
        if not self.body.children:
            return
        kind = "info" if self.model.user_image else "error"
        self.user_status.value = message(kind, self.model.user_note)
        if self.model.user_image:
            self.user_picture.value = self.model.user_image
            self.user_picture.layout.display = "block"
        else:
            self.user_picture.layout.display = "none"
