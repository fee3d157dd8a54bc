"""Job cards (status, live log, live charts, stop, download with a model preview) and the compare view."""

from __future__ import annotations

import html
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as w

from amc_widgets.core.errors import user_message
from amc_widgets.core.metrics import LOSS_NAMES, METRIC_NAMES, QUALITY_NAMES
from amc_widgets.core.text import log_html
from amc_widgets.ui.models.job_table import JobTable
from amc_widgets.ui.models.jobs import Change, JobBoard, JobCard, compare_series
from amc_widgets.ui.views.common import button, chart, facts, guarded, import_plotly, in_background, message
from amc_widgets.ui.views.job_table import FinishedJobsView

if TYPE_CHECKING:  # pandas loads when a table is first made, numpy with a job's results: not with the page
    import pandas as pd

    from amc_widgets.ui.models.results import ResultsModel
    from amc_widgets.ui.views.results import ResultsView

LOSS_COLOURS = ("#1d4ed8", "#dc2626", "#16a34a", "#60a5fa", "#f87171", "#4ade80")
QUALITY_COLOURS = ("#7c3aed", "#ea580c", "#0891b2", "#0f3d5e")


def metrics_figure(frame: pd.DataFrame | None = None) -> w.DOMWidget:
    """Losses on the left, precision / recall / mAP on the right, one line per metric; drawn from
    ``frame`` from the start (a chart made after the page is shown gets its first state whole)."""
    import_plotly()
    from plotly.subplots import make_subplots

    epochs = frame["epoch"].tolist() if frame is not None and not frame.empty else []

    def values(name: str) -> list[float]:
        return frame[name].tolist() if epochs else []

    figure = make_subplots(rows=1, cols=2, subplot_titles=("Losses", "Precision, recall, mAP"),
                           horizontal_spacing=0.12)
    for name, colour in zip(LOSS_NAMES, LOSS_COLOURS):
        figure.add_scatter(x=epochs, y=values(name), name=name.replace("_loss", ""), mode="lines+markers", row=1,
                           col=1, line=dict(color=colour, dash="dot" if name.startswith("val") else "solid"))
    for name, colour in zip(QUALITY_NAMES, QUALITY_COLOURS):
        figure.add_scatter(x=epochs, y=values(name), name=name, mode="lines+markers", row=1, col=2,
                           line=dict(color=colour))
    # one legend under both plots, in rows: the plots keep the width of a narrow cell
    figure.update_layout(height=350, margin=dict(l=40, r=10, t=30, b=35), template="plotly_white",
                         legend=dict(font=dict(size=11), orientation="h", x=0, y=-0.3, yanchor="top"))
    figure.update_xaxes(title_text="epoch", title_font=dict(size=11))
    figure.update_yaxes(range=[0, 1], row=1, col=2)
    return chart(figure)


def sync_widget_state(figure: w.DOMWidget) -> None:
    """Copy the figure's data into its synced widget state, as plotly does when a figure is displayed.

    Trace updates travel as one-off messages that only front-end models alive at that moment apply;
    Voila builds the page from the widgets' synced state once the notebook has run, so without this a
    card whose chart was filled before the page appeared (jobs found again on load) would show none."""
    figure._widget_data = deepcopy(figure._data)
    figure._widget_layout = deepcopy(figure._layout_obj._props)


class JobCardView:
    """One card; :meth:`update` redraws only what a poll changed."""

    def __init__(self, card: JobCard, on_stop: Callable[[str], None], on_download: Callable[[str], None],
                 on_close: Callable[[str], None], on_deploy: Callable[[str], None],
                 on_results: Callable[[str], None], opened: bool = False):
        self.card = card
        self.opened = opened  # a finished job's card opened from the table (else a live card)
        self.results: ResultsView | None = None
        self.title = w.HTML()
        self.details = w.HTML()
        self.chart = metrics_figure(card.metrics)
        self.log = w.HTML(log_html([]))
        self.log.add_class("amc-job-log")
        self.stop_button = button("Stop", "warning", icon="stop", css="amc-stop-job",
                                  tooltip="Stop the job; the model trained so far is saved")
        self.download_button = button("Download model", "primary", icon="download", css="amc-download-job")
        self.close_button = button("Close", icon="times", css="amc-close-job",
                                   tooltip="Close this card; the job stays in the finished jobs' table")
        self.deploy_button = button("Deploy", "success", icon="cloud-upload", css="amc-deploy-job",
                                    tooltip="Serve this job's model on an endpoint (the Endpoints tab)")
        self.results_button = button("Results", "info", icon="bar-chart", css="amc-results-job",
                                     tooltip="Per-class results, confusion matrix, PR curve and predictions")
        self.progress = w.FloatProgress(min=0, max=1, description="Download", layout=w.Layout(display="none"))
        self.action_status = w.HTML()
        self.download_info = w.HTML()
        self.download_info.add_class("amc-download-info")
        self.preview = w.Image(format="png", layout=w.Layout(display="none", max_width="420px"))
        self.preview.add_class("amc-preview")
        self.failure = w.HTML()
        self.failure.add_class("amc-failure-box")
        self.widget = w.VBox([self.title, self.details, self.failure, self.chart, self.log,
                              w.HBox([self.stop_button, self.download_button, self.results_button, self.deploy_button,
                                      self.close_button, self.progress]),
                              self.action_status, self.download_info, self.preview])
        self.widget.add_class("amc-card")
        self.widget.add_class(f"amc-job-{card.name}")
        guard = guarded(self.action_status)
        self.stop_button.on_click(guard(lambda _b: on_stop(card.name)))
        self.download_button.on_click(guard(lambda _b: on_download(card.name)))
        self.close_button.on_click(guard(lambda _b: on_close(card.name)))
        self.deploy_button.on_click(guard(lambda _b: on_deploy(card.name)))
        self.results_button.on_click(guard(lambda _b: on_results(card.name)))
        self.links = [w.dlink((card.download, "fraction"), (self.progress, "value"))]
        card.download.observe(self.show_download, ["running", "error", "result", "preview", "preview_note"])
        self.update(Change(status=True, log=True, metrics=True))

    def update(self, change: Change) -> None:
        card = self.card
        if change.status:
            status = card.status
            self.title.value = (f'<div style="display:flex;gap:12px;align-items:center">'
                                f'<b style="font-size:15px">{html.escape(card.name)}</b>'
                                f'<span class="amc-badge amc-badge-{html.escape(status)} amc-status">'
                                f'{html.escape(status)}</span></div>')
            self.details.value = facts(card.header())
            finished = card.description is not None and card.description.is_terminal
            self.stop_button.disabled = finished or status == "Stopping"
            self.download_button.disabled = not finished or card.download.running
            self.close_button.layout.display = "flex" if finished else "none"
            self.deploy_button.disabled = status != "Completed"
            self.results_button.disabled = not card.has_results
            reason = card.failure_reason or card.error
            self.failure.value = (f'<div class="amc-failure"><b>{"Failure reason" if card.failure_reason else "Note"}:'
                                  f'</b> {html.escape(reason)}</div>') if reason else ""
        if change.log:
            self.log.value = log_html(card.log)
        if change.metrics and not card.metrics.empty:
            from amc_widgets.core.results import losses_need_log_scale  # numpy, as the chart has it

            frame = card.metrics
            epochs = frame["epoch"].tolist()
            with self.chart.batch_update():
                for trace, name in zip(self.chart.data, (*LOSS_NAMES, *QUALITY_NAMES)):
                    trace.x, trace.y = epochs, frame[name].tolist()
                self.chart.layout.yaxis.type = "log" if losses_need_log_scale(frame) else "linear"
            sync_widget_state(self.chart)

    def close(self) -> None:
        """Close every widget of the card (the page drops their views, the kernel their state)."""
        self.card.download.unobserve(self.show_download)
        for link in self.links:
            link.unlink()
        for widget in close_order(self.widget):
            widget.close()

    def toggle_results(self, model: ResultsModel) -> bool:
        """Show the results view (built on first use) or hide it; True when it is shown now."""
        if self.results is None:
            import_plotly()
            from amc_widgets.ui.views.results import ResultsView

            self.results = ResultsView(model)
            self.widget.children = [*self.widget.children, self.results.widget]
            return True
        shown = self.results.widget.layout.display == "none"
        self.results.widget.layout.display = "flex" if shown else "none"
        return shown

    def show_download(self, _change: dict | None = None) -> None:
        state = self.card.download
        self.progress.layout.display = "flex" if state.running or state.result else "none"
        self.download_button.disabled = state.running
        if state.error:
            self.download_info.value = message("error", state.error)
        elif state.result is not None:
            onnx = state.result.onnx
            self.download_info.value = (
                f'<div class="amc-msg amc-msg-ok">Downloaded to {html.escape(str(state.result.folder))}</div>'
                + (f'<div>ONNX model: <code class="amc-onnx-path">{html.escape(str(onnx))}</code></div>'
                   if onnx else "")
                + (f'<div class="amc-msg amc-msg-info">{html.escape(state.preview_note)}</div>'
                   if state.preview_note else ""))
            if state.preview is not None:
                self.preview.value = Path(state.preview).read_bytes()
                self.preview.layout.display = "block"
        elif state.running:
            self.download_info.value = message("info", "Downloading...")


def close_order(widget: w.Widget) -> list[w.Widget]:
    """``widget`` and every widget inside it, innermost first."""
    inner = [leaf for child in getattr(widget, "children", ()) for leaf in close_order(child)]
    return [*inner, widget]


class JobsView:
    """The Jobs tab: 'New training job', live cards for the jobs in progress (newest first), then the
    finished jobs' table, whose rows open cards on demand; updated by the one poller."""

    def __init__(self, board: JobBoard, table: JobTable, downloads: Callable[[], Path],
                 validation_image: Callable[[str], Path | None], on_new_job: Callable[[], None],
                 on_deploy: Callable[[str], None]):
        self.board = board
        self.table = table
        self.on_deploy = on_deploy
        self.downloads = downloads
        self.validation_image = validation_image
        self.views: dict[str, JobCardView] = {}
        self.new_button = button("New training job", "success", icon="plus", css="amc-new-job",
                                 tooltip="Set up another job; running jobs carry on")
        self.refresh_button = button("Find jobs", icon="refresh", css="amc-find-jobs",
                                     tooltip="Show jobs started elsewhere (another page, the amc command)")
        self.status = w.HTML()
        self.empty = w.HTML(message("info", "No training jobs yet: set one up under Train and press Start training."))
        self.cards_box = w.VBox([self.empty])
        self.cards_box.add_class("amc-cards")
        self.finished = FinishedJobsView(table, guarded(self.status)(self.open))
        self.opened_box = w.VBox([])
        self.opened_box.add_class("amc-cards")
        self.opened_box.add_class("amc-opened-cards")
        self.widget = w.VBox([w.HBox([self.new_button, self.refresh_button]), self.status, self.cards_box,
                              self.finished.widget, self.opened_box])
        self.new_button.on_click(lambda _b: on_new_job())
        self.refresh_button.on_click(guarded(self.status)(lambda _b: self.restore()))
        table.observe(lambda _change: self._layout(), "jobs")  # "no jobs yet" only while there are none

    def add(self, card: JobCard, opened: bool = False) -> JobCardView:
        """A card: a job started here or found running (live cards), or a finished job opened from the table."""
        view = JobCardView(card, self.stop, self.download, self.close, self.on_deploy, self.results, opened)
        self.views[card.name] = view
        self._layout()
        return view

    def restore(self) -> None:
        """Live cards for the jobs in progress; every finished job into the table."""
        cards, finished = self.board.restore()
        for card in cards:
            self.add(card)
        self.table.jobs = finished

    def open(self, name: str) -> None:
        """A job's card from its table row, or a tuning job's child from its tuning card (its log and
        charts are read now; a running child's card is then polled like any other)."""
        if name not in self.views:
            description = next((job for job in self.table.jobs if job.name == name), None)
            card = self.board.open(description) if description else self.board.open_by_name(name)
            self.add(card, opened=True)

    def close(self, name: str) -> None:
        """Close a finished job's card and free its widgets; the job stays in the table."""
        view = self.views.pop(name, None)
        if view is None:
            return
        self.board.remove(name)
        self._layout()
        view.close()

    def clear(self) -> None:
        self.board.clear()
        for view in self.views.values():
            view.close()
        self.views.clear()
        self.table.jobs = []
        self._layout()

    def _layout(self) -> None:
        # Cards are only ever appended (the CSS shows them newest first): moving a widget in a Box makes
        # the page build a new view of it, and a re-made plotly chart stops receiving updates.
        live = [view.widget for view in self.views.values() if not view.opened]
        opened = [view.widget for view in self.views.values() if view.opened]  # e.g. a tuning job's child
        self.cards_box.children = live or ([] if self.table.jobs or opened else [self.empty])
        self.opened_box.children = opened
        self.finished.mark_open([name for name, view in self.views.items() if view.opened])

    def on_change(self, card: JobCard, change: Change) -> None:
        """Called from the poller thread."""
        view = self.views.get(card.name)
        if view is not None:
            view.update(change)
            job = card.description
            if change.status and job is not None and job.is_terminal and not job.tuning_job:
                self.table.add(job)  # ended while the page is open: in the table too (children stay out)

    def stop(self, name: str) -> None:
        self.board.stop(name)
        self.views[name].update(Change(status=True))

    def download(self, name: str) -> None:
        """The card's view shows the download's progress and outcome, kept in the card's model."""
        dataset = self.board.card(name).description.dataset
        dest = self.downloads()
        in_background(lambda: self.board.download(name, dest, self.validation_image(dataset)), f"amc-download-{name}")


    def results(self, name: str) -> None:
        """Open (or close) a card's results view; the outputs are downloaded and read the first time."""
        model = self.board.results(name)
        if self.views[name].toggle_results(model) and model.state in ("idle", "error"):
            dataset = self.board.card(name).description.dataset
            dest = self.downloads()
            in_background(lambda: self.board.load_results(name, dest, self.validation_image(dataset)),
                          f"amc-results-{name}")


class CompareView:
    """One metric across chosen jobs (running or finished), overlaid; the chart is made when first drawn."""

    def __init__(self, board: JobBoard, table: JobTable):
        self.board = board
        self.table = table
        self.jobs = w.SelectMultiple(options=[], rows=8, description="Jobs", layout=w.Layout(width="560px"))
        self.jobs.add_class("amc-compare-jobs")
        self.metric = w.Dropdown(options=[m for m in METRIC_NAMES if m not in ("epoch", "epochs")], value="mAP50-95",
                                 description="Metric")
        self.metric.add_class("amc-compare-metric")
        self.refresh_button = button("Refresh", icon="refresh")
        self.status = w.HTML(message("info", "Choose jobs to compare (Ctrl or Shift + click for several)."))
        self.chart = None
        self.chart_box = w.VBox([])
        self.widget = w.VBox([w.HBox([self.jobs, w.VBox([self.metric, self.refresh_button])]), self.status,
                              self.chart_box])
        self.widget.add_class("amc-compare")
        self.jobs.observe(lambda _c: self.draw(), "value")
        self.metric.observe(lambda _c: self.draw(), "value")
        self.refresh_button.on_click(guarded(self.status)(lambda _b: self.refresh()))

    def refresh(self) -> None:
        chosen = self.jobs.value
        names = list(dict.fromkeys([card.name for card in self.board.cards()]
                                   + [job.name for job in sorted(self.table.jobs, key=lambda j: j.created,
                                                                 reverse=True)]))
        self.jobs.options = names
        self.jobs.value = tuple(n for n in chosen if n in names)
        if self.jobs.value:
            self.draw()

    def draw(self) -> None:
        if not self.jobs.value and self.chart is None:
            return
        try:
            metrics = {name: self.board.metrics_of(name) for name in self.jobs.value}
        except Exception as exc:  # noqa: BLE001 - shown above the chart
            self.status.value = message("error", "Could not read the metrics: " + user_message(exc))
            return
        self.status.value = ""
        if self.chart is None:
            self.chart = chart(height=360, template="plotly_white", xaxis_title="epoch",
                               margin=dict(l=50, r=10, t=30, b=40),
                               legend=dict(orientation="h", x=0, y=-0.25, yanchor="top"))
            self.chart_box.children = [self.chart]
        series = compare_series(metrics, self.metric.value)
        self.chart.data = []
        for name, (epochs, values) in series.items():
            self.chart.add_scatter(x=epochs, y=values, name=name, mode="lines+markers")
        self.chart.layout.yaxis.title = self.metric.value
        sync_widget_state(self.chart)
