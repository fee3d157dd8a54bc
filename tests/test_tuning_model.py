"""The Tune tab's models, headless: the ranges editor and the request it makes, problems by field, the
cost line, tuning cards (counters, best, children, charts' data), the board's gentle polling, and
training again with the best hyperparameters; a fake backend with the TunesHyperparameters capability."""

from __future__ import annotations

import threading

import pytest

from amc_widgets.core.hyperparameters import HyperparameterError
from amc_widgets.core.jobs import COMPLETED, FAILED, IN_PROGRESS, STOPPED
from amc_widgets.core.prices import Price
from amc_widgets.core.tuning import (
    EARLY_STOPPED_REASON,
    ParameterRange,
    TuningSpecError,
    estimate_tuning_cost,
    tunable_parameters,
)
from amc_widgets.core.weights import COCO, SCRATCH
from amc_widgets.ui.models.jobs import JobBoard
from amc_widgets.ui.models.parameters import ParametersModel
from amc_widgets.ui.models.tuning import (
    LOCAL_TUNING_POLL_SECONDS,
    REMOTE_TUNING_POLL_SECONDS,
    TuneModel,
    TuningBoard,
    TuningCard,
    TuningUnavailableError,
    fill_parameters,
)
from amc_widgets.ui.poller import Poller
from tests.dashboard_fakes import Clock, FakeBackend, FakeTuner, assert_imports_no_widgets


@pytest.fixture()
def params() -> ParametersModel:
    return ParametersModel(local=True)


@pytest.fixture()
def model(params) -> TuneModel:
    return TuneModel(params)


@pytest.fixture()
def fake() -> FakeTuner:
    return FakeTuner()


@pytest.fixture()
def clock() -> Clock:
    return Clock(100.0)


@pytest.fixture()
def board(fake, clock) -> TuningBoard:
    return TuningBoard(lambda: fake, threading.Event(), clock=clock, wall_clock=lambda: 5000.0)


def test_model_imports_no_widgets():
    assert_imports_no_widgets("amc_widgets.ui.models.tuning")


# --- the request ------------------------------------------------------------------------------

def test_ranges_editor_makes_the_tuning_spec_with_the_train_tabs_settings(model, params):
    assert model.names() == ["lr0"] and "lr0" not in model.available()
    assert model.available() == [n for n in tunable_parameters() if n != "lr0"]
    model.add("mosaic")
    model.add("optimizer")
    model.add("mosaic")  # once only
    assert model.names() == ["lr0", "mosaic", "optimizer"]
    assert model.rows[1] == {"name": "mosaic", "low": "0", "high": "1", "scaling": "Linear"}
    assert model.rows[2] == {"name": "optimizer", "values": "SGD, AdamW, Adam"}
    model.set_field("lr0", "low", "0.001")
    model.set_field("lr0", "high", "0.05")
    model.set_field("optimizer", "values", "SGD, AdamW")
    model.remove("mosaic")
    params.set_value("epochs", 7)
    params.set_value("lr0", 0.02)
    model.max_jobs, model.max_parallel, model.early_stopping = 6, 2, True

    spec = model.request("solder", SCRATCH)

    assert spec.dataset == "solder" and spec.max_jobs == 6 and spec.max_parallel == 2 and spec.early_stopping
    assert spec.ranges == [ParameterRange("lr0", low=0.001, high=0.05, scaling="Logarithmic"),
                           ParameterRange("optimizer", values=("SGD", "AdamW"))]
    assert spec.hyperparameters["epochs"] == "7"  # static: what the Train tab has
    assert "lr0" not in spec.hyperparameters and "optimizer" not in spec.hyperparameters  # tuned, not static
    assert (spec.instance_type, spec.max_runtime_hours) == ("local", params.max_hours)
    assert spec.objective == "mAP50-95" and spec.direction == "Maximize" and model.errors == {}


def test_every_problem_is_named_by_its_field_before_anything_starts(model, fake):
    model.set_field("lr0", "low", "0.5")
    model.set_field("lr0", "high", "0.1")
    model.add("optimizer")
    model.set_field("optimizer", "values", "SGD, Nope")
    model.add("momentum")
    model.set_field("momentum", "high", "abc")
    model.objective = "accuracy"
    model.max_jobs, model.max_parallel = 2, 3
    with pytest.raises(TuningSpecError) as raised:
        model.request("", SCRATCH)
    problems = raised.value.problems
    assert set(problems) == {"lr0", "optimizer", "momentum", "objective", "parallel jobs", "dataset"}
    assert "low (0.5) must be below high (0.1)" in problems["lr0"]
    assert "Nope" in problems["optimizer"] and "must be a number" in problems["momentum"]
    assert "does not emit 'accuracy'" in problems["objective"]
    assert "cannot be more than max jobs (2)" in problems["parallel jobs"]
    assert model.errors == problems  # kept for the fields to show
    model.remove("momentum")
    assert "momentum" not in model.errors
    assert fake.calls["start_tuning"] == 0


def test_grid_needs_lists_and_a_tuned_model_needs_scratch_weights(model):
    model.add("model")
    model.strategy = "Grid"
    with pytest.raises(TuningSpecError) as raised:
        model.request("solder", COCO)
    assert set(raised.value.problems) == {"strategy", "model"}
    assert "lr0" in raised.value.problems["strategy"] and "From scratch" in raised.value.problems["model"]
    model.remove("lr0")
    model.set_field("model", "values", "yolov5n, yolov5s")
    model.max_parallel = 2
    spec = model.request("solder", SCRATCH)
    assert spec.max_jobs is None and spec.total_jobs() == 2  # Grid trains every combination


def test_invalid_train_tab_fields_and_instance_stop_the_request(model, params):
    params.set_value("epochs", "many")
    with pytest.raises(HyperparameterError) as raised:
        model.request("solder", SCRATCH)
    assert "epochs" in raised.value.problems
    params.set_value("epochs", 3)
    params.set_local(False)
    params.set_instance("ml.g4dn.xlarge", 1, spot=True)
    params.max_wait_text = "1"
    params.max_hours = 2
    with pytest.raises(TuningSpecError) as raised:
        model.request("solder", SCRATCH)
    assert set(raised.value.problems) == {"max wait hours"}  # named once, by its own field
    params.max_wait_text = ""
    params.set_instance("ml.m5.xlarge", 2, spot=False)  # several instances only on GPU types
    with pytest.raises(TuningSpecError) as raised:
        model.request("solder", SCRATCH)
    assert set(raised.value.problems) == {"instance"} and "Train tab" in raised.value.problems["instance"]


def test_cost_line_is_the_whole_tuning_job_at_the_regions_price(model, params):
    assert model.cost_text() == "Runs on this machine: no cost. 12 training jobs, 3 at a time, in the local job queue."
    params.set_local(False)
    params.set_instance("ml.g4dn.xlarge", 1, spot=True, max_hours=2.0)
    model.max_jobs = 10
    expected = estimate_tuning_cost(model.draft("solder"))
    assert expected.hours == 20.0 and expected.on_demand > 0
    assert model.cost_text() == ("Cost estimate of the whole tuning job (10 training jobs, 3 at a time, each up to "
                                 "2 h): " + expected.describe())
    regional = Price("ml.g4dn.xlarge", 1.0, "eu-west-1", "AWS Price List", read_at=0.0)
    params.price_of = lambda _type: regional
    assert "about $20.00 on-demand" in model.cost_text() and "eu-west-1" in model.cost_text()
    model.max_jobs = 0
    assert model.cost_text() == ""


# --- tuning cards -----------------------------------------------------------------------------

def _tuning_job(fake: FakeTuner, model: TuneModel) -> str:
    model.add("optimizer")
    model.set_field("optimizer", "values", "SGD, AdamW")
    spec = model.request("solder", SCRATCH)
    return fake.start_tuning_job(spec).name


def test_card_counts_orders_children_and_finds_the_best(fake, model, board):
    name = _tuning_job(fake, model)
    fake.add_child(name, "c1", {"lr0": "0.001", "optimizer": "SGD"}, COMPLETED, 0.30, created=1000, ended=1060)
    fake.add_child(name, "c2", {"lr0": "0.01", "optimizer": "AdamW"}, COMPLETED, 0.55, created=1010, ended=1120)
    fake.add_child(name, "c3", {"lr0": "0.05", "optimizer": "SGD"}, STOPPED, 0.10, created=1020, ended=1090,
                   early_stopped=True)
    fake.add_child(name, "c4", {"lr0": "0.002", "optimizer": "SGD"}, FAILED, created=1030, ended=1040)
    fake.add_child(name, "c5", {"lr0": "0.003", "optimizer": "AdamW"}, IN_PROGRESS, created=1100)
    card = board.restore()[0]

    training, objective = card.counters()
    assert training == {"Completed": 2, "InProgress": 1, "Stopped": 1, "Failed": 1}
    assert objective == {"Succeeded": 3, "Pending": 2, "Failed": 0}
    assert card.header()["Best"] == "0.5500 (c2)"
    rows = card.children_rows()
    assert [r["name"] for r in rows] == ["c2", "c1", "c3", "c5", "c4"]  # best first; unscored newest first
    assert [r["best"] for r in rows] == ["★", "", "", "", ""]
    assert rows[2]["reason"] == EARLY_STOPPED_REASON and rows[2]["status"] == STOPPED
    assert rows[0]["p:optimizer"] == "AdamW" and rows[0]["p:lr0"] == "0.01"
    assert [key for key, _ in card.columns()] == ["best", "rank", "name", "objective", "p:lr0", "p:optimizer",
                                                 "status", "reason", "duration"]

    series = card.objective_over_time()  # in the order they ended, minutes since the tuning job started
    assert series["names"] == ["c1", "c3", "c2"]
    assert series["minutes"] == [1.0, 1.5, 2.0] and series["best"] == [0.30, 0.30, 0.55]


def test_parallel_coordinates_show_choices_as_ticks_and_log_ranges_on_a_log_axis(fake, model, board):
    name = _tuning_job(fake, model)
    fake.add_child(name, "c1", {"lr0": "0.001", "optimizer": "AdamW"}, COMPLETED, 0.3, ended=1001)
    fake.add_child(name, "c2", {"lr0": "0.01", "optimizer": "SGD"}, COMPLETED, 0.5, ended=1002)
    fake.add_child(name, "c3", {"lr0": "0.01", "optimizer": "SGD"}, IN_PROGRESS)  # no objective: no line
    lr0, optimizer, objective = board.restore()[0].parallel_dimensions()
    assert lr0["label"] == "lr0 (log)" and lr0["values"] == pytest.approx([-3, -2])
    assert lr0["ticktext"] == ["0.0001", "0.001", "0.01", "0.1"] and lr0["range"] == pytest.approx([-4, -1])
    assert optimizer == {"label": "optimizer", "values": [1, 0], "tickvals": [0, 1], "ticktext": ["SGD", "AdamW"],
                         "range": [0, 1]}
    assert objective == {"label": "mAP50-95", "values": [0.3, 0.5]}


def test_a_minimised_objective_picks_the_lowest(fake, model, board):
    model.objective = "val_box_loss"
    name = _tuning_job(fake, model)
    fake.add_child(name, "c1", {"lr0": "0.001", "optimizer": "SGD"}, COMPLETED, 1.5, ended=1001)
    fake.add_child(name, "c2", {"lr0": "0.01", "optimizer": "SGD"}, COMPLETED, 0.9, ended=1002)
    card = board.restore()[0]
    assert card.description.objective_type == "Minimize" and card.header()["Best"] == "0.9000 (c2)"
    assert card.objective_over_time()["best"] == [1.5, 0.9]


def test_train_again_puts_the_best_childs_hyperparameters_into_the_train_model(fake, model, board, params):
    params.set_value("epochs", 9)
    name = _tuning_job(fake, model)
    fake.add_child(name, "c1", {"lr0": "0.001", "optimizer": "SGD"}, COMPLETED, 0.3, ended=1001)
    fake.add_child(name, "c2", {"lr0": "0.0123", "optimizer": "AdamW"}, COMPLETED, 0.5, ended=1002)
    card = board.restore()[0]
    fresh = ParametersModel(local=True)
    weights_before = fresh.value("weights")
    hyperparameters = card.best_hyperparameters()
    hyperparameters["weights"] = "somewhere.pt"
    keys = fill_parameters(fresh, hyperparameters)
    assert fresh.value("lr0") == 0.0123 and fresh.value("optimizer") == "AdamW" and fresh.value("epochs") == 9
    assert fresh.value("weights") == weights_before and "weights" not in keys  # Start from stays the Train tab's
    assert fresh.errors == {} and fresh.parameters().to_sagemaker()["lr0"] == "0.0123"
    assert "batch" not in keys and fresh.batch_auto  # the same batch: still automatic
    assert TuningCard("none", fake.describe_tuning_job(name)).best_hyperparameters() is not None
    fake.tuning[name].children.clear()
    assert TuningCard("none", fake.describe_tuning_job(name)).best_hyperparameters() is None


# --- the board --------------------------------------------------------------------------------

def test_running_tuning_jobs_are_polled_gently_and_finished_ones_never(fake, model, board, clock):
    running = _tuning_job(fake, model)
    done = _tuning_job(fake, model)
    fake.tuning[done].status = COMPLETED
    cards = board.restore()
    assert [c.name for c in cards] == [running, done]  # oldest first, for views that append
    assert [c.name for c in board.cards()] == [done, running]  # newest first
    assert fake.calls["list_tuning"] == 1 and fake.calls["describe_tuning"] == 0  # restoring reads one listing
    assert board.restore() == []  # known cards are not made twice
    fastest, slowest = LOCAL_TUNING_POLL_SECONDS
    assert board.poll_due() == [] and board.seconds_to_next_poll(clock.now) == fastest
    intervals = []
    for _ in range(6):
        clock.now += board.seconds_to_next_poll(clock.now)
        [(card, changed)] = board.poll_due()
        intervals.append(card.next_poll - clock.now)
    assert card.name == running and not changed
    assert intervals[0] == fastest * 1.5 and intervals[-1] == slowest  # backs off while nothing moves
    fake.add_child(running, "c1", {"lr0": "0.01", "optimizer": "SGD"})
    clock.now = card.next_poll
    assert board.poll_due() == [(card, True)] and card.next_poll - clock.now == fastest
    fake.tuning[running].status = COMPLETED
    clock.now = card.next_poll
    board.poll_due()
    assert board.seconds_to_next_poll(clock.now) is None  # every card ended: the poller idles
    calls = fake.calls["describe_tuning"]
    clock.now += 1000
    assert board.poll_due() == [] and fake.calls["describe_tuning"] == calls


def test_remote_polls_slower_and_stop_polls_at_once(clock):
    fake = FakeTuner(name="sagemaker")
    board = TuningBoard(lambda: fake, threading.Event(), clock=clock)
    card = board.start(TuneModel(ParametersModel()).request("solder", SCRATCH))
    assert card.poll_seconds == REMOTE_TUNING_POLL_SECONDS and board.wakeup.is_set()
    fake.add_child(card.name, "c1", {"lr0": "0.01"})
    board.stop(card.name)
    assert card.description.status == "Stopping" and board.due(clock.now) == [card]
    assert fake.jobs["c1"].status == IN_PROGRESS  # the fake keeps its own job table; its child list stops
    assert fake.tuning[card.name].children[0].status == "Stopping"


def test_a_refresh_failure_is_shown_on_the_card_and_retried_later(fake, model, board, clock):
    name = _tuning_job(fake, model)
    card = board.restore()[0]
    del fake.tuning[name]  # describe now fails
    clock.now = card.next_poll
    assert board.poll_due() == [(card, True)]
    assert card.error.startswith("Could not refresh") and card.next_poll > clock.now + 10


def test_a_backend_without_the_capability_says_so():
    board = TuningBoard(lambda: FakeBackend(), threading.Event())
    with pytest.raises(TuningUnavailableError, match="runs no tuning jobs"):
        board.restore()


def test_the_one_poller_polls_job_and_tuning_cards(fake, model, clock):
    jobs = JobBoard(lambda: fake, clock=clock)
    tuning = TuningBoard(lambda: fake, jobs.wakeup, clock=clock)
    seen = []
    poller = Poller(jobs, lambda card, change: seen.append(card.name),
                    others=[(tuning, lambda card, changed: seen.append(card.name))])
    name = _tuning_job(fake, model)
    tuning.restore()
    assert poller.run_once() == LOCAL_TUNING_POLL_SECONDS[0]
    clock.now += LOCAL_TUNING_POLL_SECONDS[0]
    poller.run_once()
    assert seen == [name]
