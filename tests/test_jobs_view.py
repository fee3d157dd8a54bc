"""The Jobs tab's views, headless (widgets without a page): live cards for running jobs, the finished
jobs' table, cards opened from a row and freed when closed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from amc_widgets.core.jobs import COMPLETED
from amc_widgets.core.metrics import format_metrics_line
from amc_widgets.ui.models.job_table import JobTable
from amc_widgets.ui.models.jobs import JobBoard
from amc_widgets.ui.views.jobs import CompareView, JobsView, close_order
from tests.dashboard_fakes import Clock, FakeBackend


@pytest.fixture()
def fake() -> FakeBackend:
    backend = FakeBackend()
    for i in range(50):
        backend.add_job(f"done-{i:02d}", created=float(i), status=COMPLETED,
                        final_metrics={"mAP50-95": i / 100})
        backend.logs[f"done-{i:02d}"] += [format_metrics_line({"epoch": 1, "epochs": 1, "mAP50-95": i / 100})]
    for i in range(3):
        backend.add_job(f"running-{i}", created=100.0 + i)
    return backend


@pytest.fixture()
def board(fake) -> JobBoard:
    return JobBoard(lambda: fake, clock=Clock(0.0), wall_clock=lambda: 1000.0)


@pytest.fixture()
def view(board) -> JobsView:
    return JobsView(board, JobTable(), lambda: None, lambda _dataset: None, lambda: None, lambda _name: None)


def test_running_jobs_get_cards_and_finished_ones_rows(view, fake):
    view.restore()
    assert sorted(view.views) == ["running-0", "running-1", "running-2"]
    assert len(view.cards_box.children) == 3 and view.opened_box.children == ()
    assert view.table.matching == 50 and view.finished.grid.total == 50
    assert view.finished.grid.rows[0]["name"] == "done-49" and view.finished.grid.rows[0]["map"] == "0.490"
    assert fake.calls["logs"] == 0  # nothing of a finished job is read to list it


def test_the_no_jobs_note_shows_only_while_there_are_no_jobs(board, view, fake):
    assert view.cards_box.children == (view.empty,)
    for name in [n for n in fake.jobs if n.startswith("running")]:
        fake.finish(name)
    view.restore()
    assert view.cards_box.children == () and view.table.matching == 53


def test_a_row_opens_a_card_with_its_chart_and_closing_frees_its_widgets(view, board):
    view.restore()
    view.finished._on_message(None, {"open": "done-07"}, [])  # what a click on the row sends
    card_view = view.views["done-07"]
    assert view.opened_box.children == (card_view.widget,) and view.finished.grid.open_names == ["done-07"]
    for card, change in board.poll_due():
        view.on_change(card, change)
    assert list(card_view.chart.data[-1].y) == [0.07]  # mAP50-95 drawn
    widgets = close_order(card_view.widget)
    assert card_view.chart in widgets and all(widget.comm is not None for widget in widgets)
    view.close("done-07")
    assert "done-07" not in view.views and view.opened_box.children == ()
    assert view.finished.grid.open_names == []
    assert all(widget.comm is None for widget in widgets)  # closed: the page and the kernel let them go
    assert [card.name for card in board.cards()] == ["running-2", "running-1", "running-0"]


def test_a_row_of_an_unknown_job_is_ignored(view):
    view.restore()
    view.finished._on_message(None, {"open": "<img src=x onerror=alert(1)>"}, [])
    assert set(view.views) == {"running-0", "running-1", "running-2"}


def test_a_job_that_ends_while_watched_joins_the_table_and_keeps_its_card(view, board, fake):
    view.restore()
    fake.finish("running-1")
    for card, change in board.poll_due():
        view.on_change(card, change)
    assert "running-1" in view.table.names() and view.table.matching == 51
    assert view.views["running-1"].close_button.layout.display == "flex"
    assert view.views["running-0"].close_button.layout.display == "none"  # running cards cannot be closed


def test_compare_lists_finished_jobs_and_makes_its_chart_only_when_jobs_are_chosen(view, board, fake):
    view.restore()
    compare = CompareView(board, view.table)
    compare.refresh()
    assert compare.chart is None and len(compare.jobs.options) == 53
    compare.jobs.value = ("done-03", "done-04")
    assert [trace.name for trace in compare.chart.data] == ["done-03", "done-04"]
    assert fake.calls["metrics"] == 2


def test_the_page_builds_without_plotly_or_pandas_whatever_the_history(tmp_path):
    """Plotly's figure classes take seconds to import, pandas half a second, numpy a tenth: a page of finished
    jobs needs none of them."""
    from tests.job_history import make_finished_jobs

    make_finished_jobs(tmp_path / "home", "ana", 30)
    code = ("import sys; from amc_widgets.ui.app import Dashboard; d = Dashboard(); "
            "assert d.finished_jobs.matching == 30, d.finished_jobs.matching; "
            "loaded = sorted(m for m in sys.modules if m.startswith('plotly')); "
            "assert 'plotly.basewidget' not in loaded and 'plotly.graph_objs' not in loaded, loaded; "
            "assert 'pandas' not in sys.modules and 'numpy' not in sys.modules; "
            "d.close()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "AMC_HOME": str(tmp_path / "home"), "AMC_USER": "ana"})
    assert done.returncode == 0, done.stderr[-2000:]


def test_tabs_are_built_when_first_shown(tmp_path, monkeypatch, small_dataset):
    """The page opens with the first tab's widgets and the Jobs tab's only; a tab's page is made when it is
    selected, once."""
    from ipywidgets.widgets.widget import _instances

    from amc_widgets.backends.local import LocalBackend
    from amc_widgets.ui.app import Dashboard

    monkeypatch.setenv("AMC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AMC_USER", "ana")
    LocalBackend(home=tmp_path / "home", user="ana").store_dataset(small_dataset, name="solder")
    before = len(_instances)
    dashboard = Dashboard()
    try:
        opened_with = len(_instances) - before
        built = [t for t in dashboard.tabs.titles if dashboard.tabs.is_built(t)]
        assert built == ["Connection", "Jobs"]  # the first tab, and the live cards' (charts render as made)
        dashboard.tabs.select("Train")
        assert dashboard.tabs.is_built("Train")
        train_page = dashboard.tabs.widget.children[dashboard.tabs.titles.index("Train")].children[0]
        assert train_page is dashboard.train_view.widget
        assert len(_instances) - before > opened_with + 200  # the Train form is most of the page
        dashboard.tabs.select("Jobs")
        dashboard.tabs.select("Train")
        assert dashboard.tabs.widget.children[dashboard.tabs.titles.index("Train")].children == (train_page,)
        # a page made after its models were filled shows what they hold
        assert dashboard.train_view.dataset.options == ("solder",)
        dashboard.tabs.select("Dataset")
        assert [name for _label, name in dashboard.dataset_view.stored.options] == ["solder"]
        dashboard.tabs.select("Tune")
        assert dashboard.tune_view.dataset.input.options == ("solder",)
    finally:
        dashboard.close()


def test_a_backend_with_region_prices_prices_the_cost_estimate_and_the_finished_jobs(tmp_path, monkeypatch):
    from amc_widgets.core.prices import PRICE_LIST, Price
    from amc_widgets.ui.app import Dashboard
    from amc_widgets.ui.models.connection import ConnectionModel

    class PricedBackend(FakeBackend):
        def instance_price(self, instance_type: str) -> Price:
            return Price(instance_type, 0.9, "eu-central-1", PRICE_LIST, 1_700_000_000)

        def list_datasets(self) -> list:
            return []

    monkeypatch.setenv("AMC_HOME", str(tmp_path / "home"))
    backend = PricedBackend(name="sagemaker")
    backend.add_job("done", 1_700_000_000, status=COMPLETED, instance_type="ml.g4dn.xlarge", instance_count=2,
                    billable_seconds=1800)
    dashboard = Dashboard(ConnectionModel(local_factory=lambda: backend))
    try:
        assert dashboard.params.price_of == backend.instance_price
        assert [(r["name"], r["cost"]) for r in dashboard.finished_jobs.rows] == [("done", "$0.90")]
    finally:
        dashboard.close()
