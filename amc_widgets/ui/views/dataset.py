"""Dataset panel: check a folder or zip in any recognised export format (server path or small browser
upload), the report with the format, split and a class histogram, a gallery of labelled images, store
it with a progress bar, list / delete stored datasets."""

from __future__ import annotations

import contextlib
import html

import ipywidgets as w

from amc_widgets.core.dataset_check import DatasetReport
from amc_widgets.core.text import human_bytes
from amc_widgets.ui.models.dataset import UPLOAD_LIMIT_BYTES, DatasetModel
from amc_widgets.ui.views.common import Field, button, chart, guarded, in_background, message, panel

FEW_CLASSES = 12  # more are not listed in the report, only in the chart
BAR_PX = 22  # height of one class in the chart; it scrolls past HISTOGRAM_MAX_PX
HISTOGRAM_MAX_PX = 420


def report_html(report: DatasetReport) -> str:
    """Counts per split, then problems and warnings, every text escaped."""
    verdict = ('<div class="amc-msg amc-msg-ok">Ready for training</div>' if report.ok else
               '<div class="amc-msg amc-msg-error">Not ready: fix the problems below and check again</div>')
    rows = "".join(
        f"<tr><td>{html.escape(split)}</td><td>{c.images}</td><td>{c.labelled}</td><td>{c.background}</td>"
        f"<td>{c.instances}</td></tr>" for split, c in report.splits.items())
    table = ('<table class="amc-kv amc-report-counts"><tr><td></td><td>images</td><td>labelled</td>'
             f'<td>without objects</td><td>objects</td></tr>{rows}</table>') if rows else ""
    many = len(report.names) > FEW_CLASSES  # then the chart beside lists them, by count
    classes = (f"<div>{len(report.names)} classes" + (" (objects per class in the chart)" if many else
                                                       f": {html.escape(', '.join(report.names))}") + "</div>"
               if report.names else "")
    if report.source_format:
        classes = f'<div class="amc-dataset-format">Format: {html.escape(report.source_format)}</div>' + classes
    if report.split_note:
        classes += f'<div class="amc-dataset-split">Split: {html.escape(report.split_note)}</div>'
    classes += "".join(f"<div>Note: {html.escape(note)}</div>" for note in report.notes)
    errors = "".join(f"<li>{html.escape(e)}</li>" for e in report.errors)
    warnings = "".join(f"<li>{html.escape(w_)}</li>" for w_ in report.warnings)
    return (verdict + classes + table
            + (f'<div class="amc-msg-error">Problems</div><ul class="amc-problems amc-msg-error">{errors}</ul>'
               if errors else "")
            + (f'<div style="color:#92400e;font-weight:600">Warnings</div><ul class="amc-problems" '
               f'style="color:#92400e">{warnings}</ul>' if warnings else ""))


def histogram_figure(bars: list[tuple[str, int]]) -> w.DOMWidget:
    """Labelled objects per class, as horizontal bars, most at the top; one bar height a class."""
    names, counts = [n for n, _c in reversed(bars)], [c for _n, c in reversed(bars)]  # plotly draws bottom-up
    figure = chart(title=dict(text="Objects per class", x=0, xanchor="left"), height=BAR_PX * len(bars) + 70,
                   template="plotly_white", margin=dict(l=10, r=30, t=36, b=30), bargap=0.25,
                   yaxis=dict(automargin=True, tickfont=dict(size=11), dtick=1), xaxis=dict(side="top"))
    figure.add_bar(x=counts, y=names, orientation="h", marker_color="#0f3d5e", text=counts, textposition="outside",
                   cliponaxis=False)
    return figure


def empty_classes_html(names: list[str]) -> str:
    """The classes without a single object, set apart from the chart (escaped)."""
    if not names:
        return ""
    return (f'<div class="amc-empty-classes amc-msg" style="max-height:96px;overflow-y:auto;font-size:12px">'
            f'<b>{len(names)} class{"es" if len(names) > 1 else ""} without any object:</b> '
            f'{html.escape(", ".join(names))}</div>')


def gallery_item(class_name: str, image_name: str, png: bytes) -> w.VBox:
    """One labelled image of the preview with its class and file name."""
    caption = w.HTML(f"<b>{html.escape(class_name)}</b><br><small>{html.escape(image_name)}</small>")
    return w.VBox([w.Image(value=png, format="png", layout=w.Layout(width="200px")), caption],
                  layout=w.Layout(margin="0 8px 8px 0"))


class DatasetView:
    def __init__(self, model: DatasetModel):
        self.model = model
        self.path = Field("dataset-path", w.Text(description="Folder or .zip",
                                                 placeholder="/data/solder or /data/solder.zip",
                                                 layout=w.Layout(width="560px")),
                          "a path on this server (any size); or upload a small .zip from your computer")
        self.check_button = button("Check dataset", "primary", icon="search", css="amc-check-dataset")
        self.file_upload = w.FileUpload(accept=".zip", multiple=False,
                                        description=f"Upload .zip (< {UPLOAD_LIMIT_BYTES >> 20} MB)",
                                        layout=w.Layout(width="260px"))
        self.val_fraction = w.BoundedFloatText(min=0.05, max=0.5, step=0.05, description="Val share",
                                               layout=w.Layout(width="170px"))
        self.split_seed = w.IntText(description="Split seed", layout=w.Layout(width="170px"))
        self.split_row = w.HBox([self.val_fraction, self.split_seed, w.HTML(
            "<small>used only when the export has no validation split</small>")])
        self.check_status = w.HTML()
        self.report = w.HTML()
        self.report.add_class("amc-dataset-report")
        self.histogram_box = w.VBox([], layout=w.Layout(max_height=f"{HISTOGRAM_MAX_PX}px", overflow="hidden auto"))
        self.histogram_box.add_class("amc-histogram")
        self.empty_classes = w.HTML()
        classes = w.VBox([self.histogram_box, self.empty_classes], layout=w.Layout(flex="1 1 340px", min_width="0"))

        self.store_name = Field("store-name", w.Text(description="Store as", layout=w.Layout(width="360px")))
        self.overwrite = w.Checkbox(description="replace a stored dataset of that name", indent=False)
        self.store_button = button("Upload to backend", "success", icon="upload", css="amc-store-dataset")
        self.store_progress = w.FloatProgress(min=0, max=1, description="Upload", layout=w.Layout(width="420px"))
        self.store_status = w.HTML()
        self.store_box = w.VBox([w.HBox([self.store_name.box, self.overwrite]), w.HBox([self.store_button,
                                 self.store_progress]), self.store_status], layout=w.Layout(display="none"))

        self.gallery = w.Box([], layout=w.Layout(flex_flow="row wrap", width="100%"))
        self.gallery.add_class("amc-gallery")
        self.image_name = w.Text(description="Image", placeholder="file name, e.g. board_0007.jpg",
                                 layout=w.Layout(width="360px"))
        self.show_image_button = button("Show", icon="picture-o", css="amc-show-image")
        self.picked_caption = w.HTML()
        self.picked_image = w.Image(format="png", layout=w.Layout(display="none", width="480px"))
        self.picked_status = w.HTML()
        self.preview_box = panel("Labelled images (a few per class, rarest first)", self.gallery,
                                 w.HBox([self.image_name, self.show_image_button]), self.picked_status,
                                 self.picked_caption, self.picked_image, css="amc-dataset-preview")
        self.preview_box.layout.display = "none"

        self.stored = w.Select(options=[], rows=6, layout=w.Layout(width="560px"))
        self.stored.add_class("amc-stored-datasets")
        self.refresh_button = button("Refresh", icon="refresh")
        self.delete_button = button("Delete...", "danger", icon="trash", css="amc-delete-dataset")
        self.confirm_text = w.HTML()
        self.confirm_yes = button("Yes, delete it", "danger", css="amc-confirm-delete")
        self.confirm_no = button("Cancel")
        self.confirm_box = w.HBox([self.confirm_text, self.confirm_yes, self.confirm_no],
                                  layout=w.Layout(display="none"))
        self.list_status = w.HTML()

        self.widget = w.VBox([
            panel("1. Check a dataset", w.HBox([self.path.box, self.check_button]), self.split_row, self.file_upload,
                  self.check_status, w.HBox([self.report, classes], layout=w.Layout(flex_flow="row wrap")),
                  self.store_box,
                  css="amc-dataset-check"),
            self.preview_box,
            panel("Stored datasets", self.stored, w.HBox([self.refresh_button, self.delete_button]),
                  self.confirm_box, self.list_status, css="amc-dataset-list"),
        ])
        self.check_button.on_click(guarded(self.check_status)(self._on_check))
        self.file_upload.observe(guarded(self.check_status)(self._on_file), "value")
        self.store_button.on_click(guarded(self.store_status)(self._on_store))
        self.refresh_button.on_click(guarded(self.list_status)(lambda _b: self.model.refresh()))
        self.delete_button.on_click(guarded(self.list_status)(self._on_delete))
        self.confirm_yes.on_click(guarded(self.list_status)(self._on_confirm))
        self.confirm_no.on_click(lambda _b: self._hide_confirm())
        self.show_image_button.on_click(guarded(self.picked_status)(self._on_show_image))
        upload = model.upload
        self.links = [
            w.link((model, "store_name"), (self.store_name.input, "value")),
            w.link((model, "val_fraction"), (self.val_fraction, "value")),
            w.link((model, "split_seed"), (self.split_seed, "value")),
            w.dlink((upload, "fraction"), (self.store_progress, "value")),
            w.dlink((upload, "running"), (self.store_button, "disabled")),
        ]
        upload.observe(self._show_upload, ["running", "error", "stored"])
        model.observe(self._show_report, "report")
        model.observe(self._show_gallery, "gallery")
        model.observe(self._show_picked, "picked")
        model.observe(self._show_datasets, "datasets")
        for show in (self._show_upload, self._show_report, self._show_gallery, self._show_picked, self._show_datasets):
            show()  # the view may be made long after its model (a tab is built when first shown)

    # --- checking -----------------------------------------------------------------------------
    def _on_check(self, _button: w.Button) -> None:
        self._check(self.path.input.value)

    def _on_file(self, change: dict) -> None:
        if not change["new"]:
            return
        upload = change["new"][0]
        path = self.model.save_browser_upload(upload["name"], bytes(upload["content"]))
        self.path.input.value = str(path)
        self._check(str(path))

    def _check(self, path: str) -> None:
        self.check_status.value = message("info", "Checking every image and label...")
        self.path.show_error(None)
        try:
            report = self.model.check(path)
        except ValueError as exc:
            self.path.show_error(str(exc))
            self.check_status.value = ""
            return
        self.check_status.value = ""
        self.path.show_error(None if report.ok or report.splits else report.errors[0])

    def _show_report(self, _change: dict | None = None) -> None:
        report = self.model.report
        if report is None:
            return
        self.report.value = report_html(report)
        bars, empty = self.model.class_bars()
        self.histogram_box.children = [histogram_figure(bars)] if bars else []
        self.empty_classes.value = empty_classes_html(empty)
        self.store_box.layout.display = "flex" if report.ok else "none"

    # --- preview ------------------------------------------------------------------------------
    def _show_gallery(self, _change: dict | None = None) -> None:
        self.gallery.children = [gallery_item(*entry) for entry in self.model.gallery]
        self.preview_box.layout.display = "flex" if self.model.gallery else "none"
        self.picked_status.value = ""

    def _on_show_image(self, _widget: w.Widget) -> None:
        self.picked_status.value = ""
        self.model.show_image(self.image_name.value)

    def _show_picked(self, _change: dict | None = None) -> None:
        picked = self.model.picked
        if picked:
            self.picked_caption.value = f"<b>{html.escape(picked[0])}</b>"
            self.picked_image.value = picked[1]
        else:
            self.picked_caption.value = ""
        self.picked_image.layout.display = "block" if picked else "none"

    # --- storing ------------------------------------------------------------------------------
    def _on_store(self, _button: w.Button) -> None:
        name, overwrite = self.model.store_name, self.overwrite.value
        self.store_button.disabled = True  # at once: a second click must not start a second upload
        self.store_status.value = message("info", "Uploading...")

        def work() -> None:
            with contextlib.suppress(Exception):  # the model keeps the error in upload.error
                self.model.store(name, overwrite=overwrite)

        in_background(work, "amc-store-dataset")

    def _show_upload(self, _change: dict | None = None) -> None:
        upload = self.model.upload
        if upload.error:
            self.store_status.value = message("error", upload.error)
        elif upload.stored is not None:
            info = upload.stored
            self.store_status.value = message("ok", f"Stored '{info.name}': {info.files} files, "
                                                    f"{human_bytes(info.bytes)}")
        else:
            self.store_status.value = message("info", "Uploading...") if upload.running else ""

    # --- stored datasets ----------------------------------------------------------------------
    def _on_delete(self, _button: w.Button) -> None:
        if not self.stored.value:
            raise ValueError("Select a dataset to delete")
        self.confirm_text.value = message("error", f"Delete '{self.stored.value}' from the backend? "
                                                   "This cannot be undone.")
        self.confirm_box.layout.display = "flex"

    def _on_confirm(self, _button: w.Button) -> None:
        name = self.stored.value
        self._hide_confirm()
        self.model.delete(name)
        self.list_status.value = message("ok", f"Deleted '{name}'")

    def _hide_confirm(self) -> None:
        self.confirm_box.layout.display = "none"

    def _show_datasets(self, _change: dict | None = None) -> None:
        self.stored.options = [(f"{d.name}  -  {d.files} files, {human_bytes(d.bytes)}", d.name)
                               for d in self.model.datasets]
