"""The Tune tab's views, headless (widgets without a page), on a fake backend that tunes: the form starts
a tuning job or marks each problem at its field, cards show counters and children (a row opens a child),
charts only when asked for, Stop and Download best; children stay off the Jobs tab."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from amc_widgets.backends.base import DatasetInfo
from amc_widgets.core.jobs import COMPLETED, IN_PROGRESS
from amc_widgets.core.tuning import ParameterRange
from amc_widgets.core.weights import SCRATCH
from amc_widgets.ui.models.connection import ConnectionModel
from amc_widgets.ui.models.dataset import DatasetModel
from amc_widgets.ui.models.job_table import JobTable
from amc_widgets.ui.models.jobs import DownloadState, JobBoard
from amc_widgets.ui.models.parameters import ParametersModel
from amc_widgets.ui.models.tuning import TuneModel, TuningBoard
from amc_widgets.ui.models.weights import WeightsModel
from amc_widgets.ui.views.jobs import JobsView
from amc_widgets.ui.views.tune import TuneView
from tests.dashboard_fakes import REPO, Clock, FakeTuner


class Tab:
    """A TuneView on a FakeTuner, with what its callbacks were called with."""

    def __init__(self, fake: FakeTuner):
        self.fake = fake
        self.params = ParametersModel(local=True)
        self.datasets = DatasetModel(ConnectionModel(local_factory=lambda: fake))
        self.weights = WeightsModel(lambda: fake, lambda: None)
        self.weights.kind = SCRATCH
        self.board = TuningBoard(lambda: fake, threading.Event(), clock=Clock(0.0), wall_clock=lambda: 5000.0)
        self.opened: list[str] = []
        self.again: list[str] = []
        self.downloads: dict[str, DownloadState] = {}
        self.view = TuneView(TuneModel(self.params), self.board, self.params, self.datasets, self.weights,
                             self.opened.append, self._download, lambda card: self.again.append(card.name),
                             lambda: None)
        self.view.set_available(True)
        self.datasets.datasets = [DatasetInfo("solder", 10, 1000, "/x"), DatasetInfo("pcb", 10, 1000, "/y")]

    def _download(self, name: str) -> DownloadState:
        return self.downloads.setdefault(name, DownloadState())


@pytest.fixture()
def fake() -> FakeTuner:
    return FakeTuner()


@pytest.fixture()
def tab(fake) -> Tab:
    return Tab(fake)


def test_the_form_starts_a_tuning_job_from_the_ranges_it_shows(tab, fake):
    view = tab.view
    assert view.dataset.input.value == "solder" and list(view.rows) == ["lr0"]
    view.add_choice.value = "optimizer"
    view.add_button.click()
    assert list(view.rows) == ["lr0", "optimizer"] and "optimizer" not in view.add_choice.options
    row = view.rows["optimizer"]
    row.inputs["values"].value = "SGD, AdamW"
    view.rows["lr0"].inputs["low"].value = "0.001"
    view.parallel.input.value = 2
    view.max_jobs.input.value = 4
    assert "4 training jobs, 2 at a time" in view.cost.value and "this machine" in view.cost.value
    assert "lr0" not in view.static.value and "optimizer: tuned" in view.static.value
    assert "model: yolov5s" in view.static.value
    view.start_button.click()

    [spec] = fake.tuning_specs
    assert spec.dataset == "solder" and (spec.max_jobs, spec.max_parallel) == (4, 2)
    assert spec.ranges == [ParameterRange("lr0", low=0.001, high=0.1, scaling="Logarithmic"),
                           ParameterRange("optimizer", values=("SGD", "AdamW"))]
    assert spec.hyperparameters["weights_source"] == SCRATCH and spec.hyperparameters["epochs"] == str(
        tab.params.value("epochs"))
    assert list(view.views) == ["tune-1"] and "Started the tuning job tune-1" in view.start_status.value
    assert not view.views["tune-1"].charts_drawn  # the tab was never shown: no plotly yet


def test_each_problem_is_marked_at_its_field_and_nothing_starts(tab, fake):
    view = tab.view
    view.rows["lr0"].inputs["low"].value = "0.5"
    view.rows["lr0"].inputs["high"].value = "0.1"
    view.objective.input.value = "val_box_loss"
    view.max_jobs.input.value = 2
    view.parallel.input.value = 3
    tab.params.set_local(False)
    tab.params.set_instance("ml.g4dn.xlarge", 1, spot=True, max_hours=2.0)
    tab.params.max_wait_text = "1"
    view.start_button.click()
    assert fake.calls["start_tuning"] == 0
    assert "low (0.5) must be below high (0.1)" in view.rows["lr0"].error.value
    assert "amc-invalid" in view.rows["lr0"].box._dom_classes
    assert "cannot be more than max jobs" in view.parallel.error.value
    assert view.max_jobs.error.value == "" and view.objective.error.value == ""
    status = view.start_status.value
    assert "Fix the marked fields and:" in status and "max wait hours" in status  # not a field of this tab
    assert "Traceback" not in status
    tab.params.max_wait_text = ""
    view.parallel.input.value = 2
    view.rows["lr0"].inputs["low"].value = "0.001"
    view.start_button.click()
    assert fake.calls["start_tuning"] == 1 and view.rows["lr0"].error.value == ""


def test_train_tab_problems_and_backend_errors_are_one_line(tab, fake):
    tab.params.set_value("epochs", "many")
    tab.view.start_button.click()
    assert "Fix the Train tab&#x27;s marked fields: epochs: must be a whole number" in tab.view.start_status.value
    tab.params.set_value("epochs", 3)
    fake.start_tuning_job = lambda spec: (_ for _ in ()).throw(PermissionError("AccessDenied: not allowed"))
    tab.view.start_button.click()
    assert "AccessDenied" in tab.view.start_status.value and "Traceback" not in tab.view.start_status.value


def test_unavailable_backend_shows_a_line_instead_of_the_form(tab):
    tab.view.set_available(False, "The local backend does not run hyperparameter tuning jobs.")
    assert tab.view.form.layout.display == "none" and "does not run" in tab.view.unavailable.value
    tab.view.set_available(True)
    assert tab.view.form.layout.display == "flex" and tab.view.unavailable.value == ""


def _finished_tuning_job(fake: FakeTuner, created: float) -> str:
    spec = TuneModel(ParametersModel(), rows=[{"name": "optimizer", "values": "SGD, AdamW"}]).request("solder")
    name = fake.start_tuning_job(spec).name
    fake.tuning[name].created = created
    fake.add_child(name, f"{name}-c1", {"optimizer": "SGD"}, COMPLETED, 0.3, created=created, ended=created + 60)
    fake.add_child(name, f"{name}-c2", {"optimizer": "AdamW"}, COMPLETED, 0.6, created=created, ended=created + 90)
    fake.tuning[name].status = COMPLETED
    return name


def test_cards_come_back_newest_first_and_rows_open_children(tab, fake):
    names = [_finished_tuning_job(fake, 1000.0 + i) for i in range(5)]
    running = fake.start_tuning_job(fake.tuning_specs[0]).name
    fake.tuning[running].created = 900.0  # the oldest, but running
    tab.view.restore()
    assert list(tab.view.views) == [running, *names]  # appended oldest first; the CSS shows newest first
    card = tab.view.views[names[-1]]
    assert [r["name"] for r in card.children.rows] == [f"{names[-1]}-c2", f"{names[-1]}-c1"]
    assert card.children.rows[0]["best"] == "★" and "Completed <b>2</b>" in card.counters.value
    assert card.stop_button.disabled and not card.again_button.disabled
    card._on_message(card.children, {"open": f"{names[-1]}-c1"}, [])
    card._on_message(card.children, {"open": "someone-else"}, [])
    assert tab.opened == [f"{names[-1]}-c1"]
    card.again_button.click()
    assert tab.again == [names[-1]]
    assert set(tab.view.warm.input.options) == set(names)  # ended tuning jobs can warm-start a new one

    tab.view.draw_charts()  # what showing the tab does: the 3 newest and the running one
    drawn = [name for name, view in tab.view.views.items() if view.charts_drawn]
    assert drawn == [running, *names[-3:]]
    chart = card.objective_chart
    assert list(chart.data[0].y) == [0.3, 0.6] and list(chart.data[1].y) == [0.3, 0.6]
    assert list(card.parallel_chart.data[0].dimensions[0].ticktext) == ["SGD", "AdamW"]
    old = tab.view.views[names[0]]
    old.charts_button.click()
    assert old.charts_drawn


def test_a_running_card_follows_its_tuning_job_and_stops(tab, fake):
    spec = TuneModel(ParametersModel()).request("solder")
    name = fake.start_tuning_job(spec).name
    tab.view.restore()
    view = tab.view.views[name]
    view.draw_charts()
    assert view.download_button.disabled and not view.stop_button.disabled
    fake.add_child(name, "c1", {"lr0": "0.01"}, COMPLETED, 0.4, created=1000, ended=1120)
    fake.add_child(name, "c2", {"lr0": "0.02"}, IN_PROGRESS, created=1010)
    card = tab.board.card(name)
    tab.view.on_change(card, card.poll(fake, 10.0))
    assert [r["name"] for r in view.children.rows] == ["c1", "c2"] and not view.download_button.disabled
    assert list(view.objective_chart.data[0].x) == [2.0]  # minutes since the tuning job started
    view.stop_button.click()
    assert fake.tuning[name].status == "Stopping" and view.stop_button.disabled
    assert "Stopping" in view.title.value


def test_download_best_shows_the_job_cards_download(tab, fake):
    name = _finished_tuning_job(fake, 1000.0)
    tab.view.restore()
    view = tab.view.views[name]
    view.download_button.click()
    state = tab.downloads[f"{name}-c2"]  # the best child's
    assert "Downloading the model of" in view.action_status.value
    state.running = True
    state.error = "Download failed: disk full"
    assert "disk full" in view.action_status.value
    state.error = ""
    from pathlib import Path

    from amc_widgets.backends.base import DownloadResult

    state.result = DownloadResult(folder=Path("/tmp/x"), onnx=Path("/tmp/x/model/best.onnx"), files=[])
    state.running = False
    assert "Downloaded the best model" in view.action_status.value and "best.onnx" in view.action_status.value


def test_children_are_not_on_the_jobs_tab_until_opened(fake):
    name = _finished_tuning_job(fake, 1000.0)
    fake.add_child(name, "running-child", {"optimizer": "SGD"}, IN_PROGRESS, created=1200)
    fake.add_job("plain-done", 10.0, COMPLETED)
    fake.add_job("plain-running", 20.0)
    board = JobBoard(lambda: fake, clock=Clock(0.0))
    jobs = JobsView(board, JobTable(), lambda: None, lambda _d: None, lambda: None, lambda _n: None)
    jobs.restore()
    assert list(jobs.views) == ["plain-running"] and jobs.table.names() == ["plain-done"]
    jobs.open(f"{name}-c2")  # from the tuning card
    jobs.open("running-child")
    assert list(jobs.views) == ["plain-running", f"{name}-c2", "running-child"]
    assert jobs.views["running-child"].opened and board.wakeup.is_set()  # a running child is polled too
    fake.finish("running-child")
    card = board.card("running-child")
    jobs.on_change(card, card.poll(fake, 1.0))
    assert jobs.table.names() == ["plain-done"]  # ended as a child: still not a table row


def test_the_page_builds_without_plotly_with_tuning_cards(tmp_path):
    code = ("import sys, threading; from tests.dashboard_fakes import FakeTuner; "
            "from tests.test_tuning_view import Tab, _finished_tuning_job; fake = FakeTuner(); "
            "[_finished_tuning_job(fake, 1000.0 + i) for i in range(4)]; tab = Tab(fake); tab.view.restore(); "
            "assert len(tab.view.views) == 4; "
            "loaded = sorted(m for m in sys.modules if m.startswith('plotly')); "
            "assert 'plotly.basewidget' not in loaded and 'plotly.graph_objs' not in loaded, loaded")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "AMC_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_childs_card_alone_does_not_say_there_are_no_jobs(fake):
    name = _finished_tuning_job(fake, 1000.0)
    jobs = JobsView(JobBoard(lambda: fake, clock=Clock(0.0)), JobTable(), lambda: None, lambda _d: None,
                    lambda: None, lambda _n: None)
    jobs.restore()
    assert jobs.cards_box.children == (jobs.empty,)  # children are not jobs of the Jobs tab
    jobs.open(f"{name}-c1")
    assert jobs.cards_box.children == () and len(jobs.opened_box.children) == 1
