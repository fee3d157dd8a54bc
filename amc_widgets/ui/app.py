"""The dashboard: header, tabs (Connection, Dataset, Train, Tune, Jobs, Endpoints, Compare, Help), each
built when first shown (Jobs at once: its live cards are made as jobs start), and the one poller."""

from __future__ import annotations

import html
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

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
from amc_widgets.ui.views.jobs import CompareView, JobsView
from amc_widgets.ui.views.lazy_tabs import LazyTabs

if TYPE_CHECKING:
    from amc_widgets.ui.views.connection import ConnectionView
    from amc_widgets.ui.views.dataset import DatasetView
    from amc_widgets.ui.views.endpoints import EndpointsView
    from amc_widgets.ui.views.train import TrainView
    from amc_widgets.ui.views.tune import TuneView

README = project_file("README.md")


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
        self.weights = WeightsModel(self.connection.require_backend, workspace_cache)
        # the job cards follow the poller whichever tab shows: the Jobs view is made now, shown later
        self.jobs_view = JobsView(self.board, self.finished_jobs, downloads_folder, self.datasets.validation_image,
                                  self.new_job, self.deploy)

        self.header = w.HTML()
        self.status = w.HTML()
        self.status.add_class("amc-app-status")
        self.tabs = LazyTabs({
            "Connection": lambda: self.connection_view.widget,
            "Dataset": lambda: self.dataset_view.widget,
            "Train": lambda: self.train_view.widget,
            "Tune": lambda: self.tune_view.widget,
            "Jobs": lambda: self.jobs_view.widget,
            "Endpoints": lambda: self.endpoints_view.widget,
            "Compare": lambda: self.compare_view.widget,
            "Help": lambda: w.HTML(help_html()),
        }, eager=("Jobs",))  # live cards render as soon as they are made, as charts need
        self.tabs.widget.add_class("amc-tabs")
        self.widget = w.VBox([w.HTML(CSS), FitCharts(), self.header, self.status, self.tabs.widget])
        self.widget.add_class("amc-app")
        self._charts_loading = False
        self.tabs.widget.observe(self._on_tab, "selected_index")
        self.connection.observe(self._render_header)
        self.connection.observe(self._on_backend, "backend")
        self.poller = Poller(self.board, self.jobs_view.on_change, self._show_error,
                             others=[(self.tuning, self._on_tuning_change)])
        if connect_local:
            self.connection.connect()
        self._render_header()
        self.poller.start()

    # --- the tabs' views, made when their tab is first shown ------------------------------------
    @cached_property
    def connection_view(self) -> ConnectionView:
        from amc_widgets.ui.views.connection import ConnectionView

        return ConnectionView(self.connection)

    @cached_property
    def dataset_view(self) -> DatasetView:
        from amc_widgets.ui.views.dataset import DatasetView

        return DatasetView(self.datasets)

    @cached_property
    def train_view(self) -> TrainView:
        from amc_widgets.ui.views.train import TrainView

        return TrainView(self.params, self.datasets, self.start_job, self.weights)

    @cached_property
    def tune_view(self) -> TuneView:
        from amc_widgets.ui.views.tune import TuneView

        view = TuneView(self.tune, self.tuning, self.params, self.datasets, self.weights, self.open_job,
                        self.download_best, self.train_again, self.new_job)
        if self.connection.connected:  # the tuning jobs are listed when their tab is first shown
            self._restore_tuning(view, self.connection.require_backend())
        return view

    @cached_property
    def endpoints_view(self) -> EndpointsView:
        from amc_widgets.ui.views.endpoints import EndpointsView

        return EndpointsView(self.endpoints, lambda: getattr(self.connection.backend, "region", ""))

    @cached_property
    def compare_view(self) -> CompareView:
        return CompareView(self.board, self.finished_jobs)  # refreshed whenever its tab is shown

    # --- wiring -------------------------------------------------------------------------------
    def _on_backend(self, _change: dict) -> None:
        """Connected, closed or replaced: the cards of the old backend go, the new one's come."""
        self.jobs_view.clear()
        if self.tabs.is_built("Tune"):
            self.tune_view.clear()
        else:
            self.tuning.clear()
        self.endpoints.clear()
        if self.connection.connected:
            backend = self.connection.require_backend()
            price_of = backend.instance_price if isinstance(backend, PricesInstances) else None
            self.params.price_of = self.finished_jobs.price_of = price_of
            self.params.set_local(self.connection.is_local)
            self.params.history = []
            self.datasets.refresh()
            self.jobs_view.restore()
            if self.tabs.is_built("Compare"):
                self.compare_view.refresh()
            if self.tabs.is_built("Train"):
                in_background(self._refresh_train_choices, "amc-train-choices")
            if self.tabs.is_built("Tune"):
                self._restore_tuning(self.tune_view, backend)

    @staticmethod
    def _restore_tuning(view: TuneView, backend) -> None:
        """The Tune tab's form and cards where the backend tunes, else a line saying why."""
        if not isinstance(backend, TunesHyperparameters):
            view.set_available(False, f"The {backend.name} backend does not run hyperparameter tuning "
                                      "jobs in this version of AMC.")
            return
        view.set_available(True)
        guarded(view.start_status)(view.restore)()

    def _on_tuning_change(self, card: TuningCard, changed: bool) -> None:
        """A tuning card polled: its view follows, once the Tune tab has one."""
        if self.tabs.is_built("Tune"):
            self.tune_view.on_change(card, changed)

    def _render_header(self, _change: dict | None = None) -> None:
        summary = self.connection.summary()
        where = " · ".join(f"{k}: {v}" for k, v in summary.items() if k in ("Backend", "Workspace", "Account",
                                                                               "Bucket", "Status"))
        self.header.value = ('<div class="amc-header"><h1>AMC · Automated Model Creator</h1>'
                             f'<div class="amc-sub">Train YOLOv5 detectors from labelled images · '
                             f'{html.escape(where)}</div></div>')

    def _on_tab(self, change: dict) -> None:
        tab = self.tabs.selected
        if tab == "Compare":
            self.compare_view.refresh()
        if not self._charts_loading:  # the user is on the move: load plotly now, before a chart is needed
            self._charts_loading = True
            threading.Thread(target=load_chart_classes, name="amc-load-plotly", daemon=True).start()
        if tab == "Tune":
            self.tune_view.on_shown()
        if tab == "Train" and self.connection.connected:
            in_background(self._refresh_train_choices, "amc-train-choices")  # jobs finished since
        if tab == "Endpoints" and self.connection.connected:
            in_background(self._refresh_endpoints, "amc-endpoints-refresh")

    def _refresh_train_choices(self) -> None:
        """What the Train tab offers from earlier jobs: the previous jobs' weights, and for the time
        estimate the local jobs (SageMaker's have none to give)."""
        try:
            self.params.history = self.connection.require_backend().list_jobs() if self.connection.is_local else []
        except Exception as exc:  # noqa: BLE001 - the estimate waits; the status says why
            self.status.value = message("error", "Could not list the jobs: " + user_message(exc))
        guarded(self.status)(self.weights.refresh)(str(self.params.value("model")))

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
        self.tabs.select("Jobs")

    def deploy(self, job_name: str) -> None:
        """Deploy a completed job's model; the Endpoints tab follows it."""
        self.tabs.select("Endpoints")
        in_background(lambda: self.endpoints.deploy(job_name), f"amc-deploy-{job_name}")

    def open_job(self, name: str) -> None:
        """Any job's card (a tuning job's child, on demand) on the Jobs tab."""
        self.jobs_view.open(name)
        self.tabs.select("Jobs")

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
        self.tabs.select("Train")

    def new_job(self) -> None:
        self.tabs.select("Train")

    def close(self) -> None:
        self.poller.stop()

