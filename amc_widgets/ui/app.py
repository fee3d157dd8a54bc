"""The dashboard: header, tabs (Connection, Dataset, Train, Tune, Jobs, Endpoints, Compare, Help) and the one poller."""

from __future__ import annotations

import html
import os
import threading
from pathlib import Path

import ipywidgets as w

from amc_widgets.backends.base import PricesInstances, TunesHyperparameters
from amc_widgets.core.errors import user_message
from amc_widgets.core.jobs import JobSpec
from amc_widgets.core.weights import workspace_cache
from amc_widgets.ui.models.connection import ConnectionModel
from amc_widgets.ui.models.dataset import DatasetModel
from amc_widgets.ui.models.endpoints import EndpointsModel
from amc_widgets.ui.models.job_table import JobTable
from amc_widgets.ui.models.jobs import JobBoard
from amc_widgets.ui.models.parameters import ParametersModel
from amc_widgets.ui.models.tuning import TuneModel, TuningBoard, TuningCard, fill_parameters
from amc_widgets.ui.models.weights import WeightsModel
from amc_widgets.ui.poller import Poller
from amc_widgets.ui.project_files import project_file
from amc_widgets.ui.views.chart_fit import FitCharts
from amc_widgets.ui.views.common import CSS, guarded, in_background, load_chart_classes, message
from amc_widgets.ui.views.connection import ConnectionView
from amc_widgets.ui.views.dataset import DatasetView
from amc_widgets.ui.views.endpoints import EndpointsView
from amc_widgets.ui.views.jobs import CompareView, JobsView
from amc_widgets.ui.views.train import TrainView
from amc_widgets.ui.views.tune import TuneView

README = project_file("README.md")
TABS = ("Connection", "Dataset", "Train", "Tune", "Jobs", "Endpoints", "Compare", "Help")


def downloads_folder() -> Path:
    """Where models are downloaded: ``$AMC_DOWNLOADS``, else ``$AMC_HOME/downloads`` (``~/.amc/downloads``)."""
    explicit = os.environ.get("AMC_DOWNLOADS")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("AMC_HOME") or Path.home() / ".amc").expanduser() / "downloads"


def help_html(readme: Path = README) -> str:
    """The README rendered from Markdown (it is our own file; mistune escapes raw HTML anyway)."""
    import mistune

    if not readme.exists():
        return message("info", "The README is not installed with this copy of AMC.")
    render = mistune.create_markdown(escape=True, plugins=["table"])
    return f'<div class="amc-help" style="max-width:960px;font-size:14px">{render(readme.read_text("utf-8"))}</div>'


class Dashboard:
    """Builds the models and views, wires them together and owns the poller."""

    def __init__(self, connection: ConnectionModel | None = None, connect_local: bool = True):
        self.connection = connection or ConnectionModel()
        self.datasets = DatasetModel(self.connection)
        self.params = ParametersModel(local=True)
        self.board = JobBoard(self.connection.require_backend)
        self.finished_jobs = JobTable()
        self.tuning = TuningBoard(self.connection.require_backend, self.board.wakeup)
        self.tune = TuneModel(self.params)
        self.endpoints = EndpointsModel(self.connection.require_backend)

        self.connection_view = ConnectionView(self.connection)
        self.dataset_view = DatasetView(self.datasets)
        self.weights = WeightsModel(self.connection.require_backend, workspace_cache)
        self.train_view = TrainView(self.params, self.datasets, self.start_job, self.weights)
        self.jobs_view = JobsView(self.board, self.finished_jobs, downloads_folder, self.datasets.validation_image,
                                  self.new_job, self.deploy)
        self.tune_view = TuneView(self.tune, self.tuning, self.params, self.datasets, self.weights, self.open_job,
                                  self.download_best, self.train_again, self.new_job)
        self.endpoints_view = EndpointsView(self.endpoints, lambda: getattr(self.connection.backend, "region", ""))
        self.compare_view = CompareView(self.board, self.finished_jobs)
        self.help = w.HTML(help_html())

        self.header = w.HTML()
        self.status = w.HTML()
        self.status.add_class("amc-app-status")
        self.tabs = w.Tab(children=[self.connection_view.widget, self.dataset_view.widget, self.train_view.widget,
                                    self.tune_view.widget, self.jobs_view.widget, self.endpoints_view.widget,
                                    self.compare_view.widget, self.help], titles=TABS)
        self.tabs.add_class("amc-tabs")
        self.widget = w.VBox([w.HTML(CSS), FitCharts(), self.header, self.status, self.tabs])
        self.widget.add_class("amc-app")
        self._charts_loading = False
        self.tabs.observe(self._on_tab, "selected_index")
        self.connection.observe(self._render_header)
        self.connection.observe(self._on_backend, "backend")
        self.poller = Poller(self.board, self.jobs_view.on_change, self._show_error,
                             others=[(self.tuning, self.tune_view.on_change)])
        if connect_local:
            self.connection.connect()
        self._render_header()
        self.poller.start()

    # --- wiring -------------------------------------------------------------------------------
    def _on_backend(self, _change: dict) -> None:
        """Connected, closed or replaced: the cards of the old backend go, the new one's come."""
        self.jobs_view.clear()
        self.tune_view.clear()
        self.endpoints.clear()
        if self.connection.connected:
            backend = self.connection.require_backend()
            self.params.price_of = backend.instance_price if isinstance(backend, PricesInstances) else None
            self.params.set_local(self.connection.is_local)
            self._refresh_history()
            self.datasets.refresh()
            self.jobs_view.restore()
            self.compare_view.refresh()
            self._restore_tuning(backend)
            guarded(self.status)(self.weights.refresh)(str(self.params.value("model")))

    def _restore_tuning(self, backend) -> None:
        """The Tune tab's form and cards where the backend tunes, else a line saying why."""
        if not isinstance(backend, TunesHyperparameters):
            self.tune_view.set_available(False, f"The {backend.name} backend does not run hyperparameter tuning "
                                                "jobs in this version of AMC.")
            return
        self.tune_view.set_available(True)
        guarded(self.tune_view.start_status)(self.tune_view.restore)()

    def _render_header(self, _change: dict | None = None) -> None:
        summary = self.connection.summary()
        where = " · ".join(f"{k}: {v}" for k, v in summary.items() if k in ("Backend", "Workspace", "Account",
                                                                               "Bucket", "Status"))
        self.header.value = ('<div class="amc-header"><h1>AMC · Automated Model Creator</h1>'
                             f'<div class="amc-sub">Train YOLOv5 detectors from labelled images · '
                             f'{html.escape(where)}</div></div>')

    def _on_tab(self, change: dict) -> None:
        if TABS[change["new"]] == "Compare":
            self.compare_view.refresh()
        if not self._charts_loading:  # the user is on the move: load plotly now, before a chart is needed
            self._charts_loading = True
            threading.Thread(target=load_chart_classes, name="amc-load-plotly", daemon=True).start()
        if TABS[change["new"]] == "Tune":
            self.tune_view.on_shown()
        if TABS[change["new"]] == "Train" and self.connection.connected and self.connection.is_local:
            in_background(self._refresh_history, "amc-job-history")  # jobs finished since: a better estimate
        if TABS[change["new"]] == "Endpoints" and self.connection.connected:
            in_background(self._refresh_endpoints, "amc-endpoints-refresh")

    def _refresh_history(self) -> None:
        """The local jobs, for the Train tab's time estimate (SageMaker's have none to give)."""
        try:
            self.params.history = self.connection.require_backend().list_jobs() if self.connection.is_local else []
        except Exception as exc:  # noqa: BLE001 - the estimate waits; the status says why
            self.status.value = message("error", "Could not list the jobs: " + user_message(exc))

    def _refresh_endpoints(self) -> None:
        try:
            self.endpoints.refresh()
        except Exception as exc:  # noqa: BLE001 - shown in the tab
            self.endpoints.error = user_message(exc)

    def _show_error(self, exc: Exception) -> None:
        self.status.value = message("error", f"Live updates hit a problem: {exc}")

    # --- actions ------------------------------------------------------------------------------
    def start_job(self, spec: JobSpec) -> None:
        card = self.board.start(spec)
        self.jobs_view.add(card)
        self.tabs.selected_index = TABS.index("Jobs")

    def deploy(self, job_name: str) -> None:
        """Deploy a completed job's model; the Endpoints tab follows it."""
        self.tabs.selected_index = TABS.index("Endpoints")
        in_background(lambda: self.endpoints.deploy(job_name), f"amc-deploy-{job_name}")

    def open_job(self, name: str) -> None:
        """Any job's card (a tuning job's child, on demand) on the Jobs tab."""
        self.jobs_view.open(name)
        self.tabs.selected_index = TABS.index("Jobs")

    def download_best(self, name: str):
        """A tuning job's best model, downloaded as its job card downloads it (the card opens on the Jobs tab)."""
        self.jobs_view.open(name)
        self.jobs_view.download(name)
        return self.board.card(name).download

    def train_again(self, card: TuningCard) -> None:
        """The best child's hyperparameters into the Train tab, on its dataset; the Train tab shows them."""
        fill_parameters(self.params, card.best_hyperparameters() or {})
        if card.description.dataset in self.train_view.dataset.options:
            self.train_view.dataset.value = card.description.dataset
        best = card.description.best.name
        self.train_view.start_status.value = message(
            "ok", f"The hyperparameters of {best}, the best of {card.name}: press Start training.")
        self.tabs.selected_index = TABS.index("Train")

    def new_job(self) -> None:
        self.tabs.selected_index = TABS.index("Train")

    def close(self) -> None:
        self.poller.stop()

