"""Tuning ranges and requests: parsed from the CLI form, checked against the hyperparameter table and
AWS's documented limits, every bad field named before anything starts."""

import pytest

from amc_widgets.core.errors import user_message
from amc_widgets.core.hyperparameters import HYPERPARAMETERS, TUNING_DEFAULTS
from amc_widgets.core.tuning import (
    TUNING_NAME_MAX,
    TUNING_NAME_PATTERN,
    ParameterRange,
    TuningChild,
    TuningJobDescription,
    TuningSpec,
    TuningSpecError,
    check_tuning_name,
    default_range,
    estimate_tuning_cost,
    make_tuning_name,
    parse_range,
    ranges_from_sagemaker,
    sagemaker_parameter_ranges,
    validate_tuning_spec,
)


def test_every_default_range_fits_its_parameter():
    for name in TUNING_DEFAULTS:
        item = default_range(name)
        spec = HYPERPARAMETERS[name]
        if item.values:
            assert all(spec.decode(v) is not None for v in item.values)
        else:
            assert spec.low <= item.low < item.high <= spec.high, name


@pytest.mark.parametrize("text, expected", [
    ("lr0=1e-4:1e-1:log", ParameterRange("lr0", low=1e-4, high=0.1, scaling="Logarithmic")),
    ("mosaic=0:1", ParameterRange("mosaic", low=0.0, high=1.0)),
    ("optimizer=sgd, AdamW", ParameterRange("optimizer", values=("SGD", "AdamW"))),
    ("imgsz=320,640,320", ParameterRange("imgsz", values=("320", "640"))),
])
def test_ranges_parse_to_the_tables_spelling(text, expected):
    assert parse_range(text) == expected
    assert parse_range(parse_range(text).describe()) == expected


@pytest.mark.parametrize("text, field, words", [
    ("lr0=0.1:0.01", "lr0", "empty"),
    ("lr0=0.001:2", "lr0", "<= 1"),
    ("mosaic=0:1:log", "mosaic", "above 0"),
    ("imgsz=320:640", "imgsz", "multiple of 32"),
    ("imgsz=300", "imgsz", "multiple of 32"),
    ("epochs=1:5", "epochs", "cannot be tuned"),
    ("colour=1:2", "colour", "unknown"),
    ("optimizer=Adam,Bogus", "optimizer", "must be one of"),
    ("lr0=1:2:cubic", "lr0", "scaling"),
])
def test_bad_ranges_name_the_parameter(text, field, words):
    with pytest.raises(TuningSpecError) as info:
        parse_range(text)
    assert field in info.value.problems and words in info.value.problems[field]
    assert field in user_message(info.value)


def _spec(**kw):
    base = dict(dataset="joints", hyperparameters={"epochs": "3", "lr0": "0.5"},
                ranges=[parse_range("lr0"), parse_range("optimizer=SGD,AdamW")])
    return TuningSpec(**{**base, **kw})


def test_a_valid_request_drops_static_values_of_tuned_parameters():
    spec = validate_tuning_spec(_spec())
    assert spec.hyperparameters == {"epochs": "3"} and spec.direction == "Maximize"
    assert validate_tuning_spec(_spec(objective="val_box_loss")).direction == "Minimize"


@pytest.mark.parametrize("changes, field", [
    (dict(ranges=[]), "ranges"),
    (dict(ranges=[parse_range("lr0"), parse_range("lr0")]), "ranges"),
    (dict(objective="accuracy"), "objective"),
    (dict(strategy="Genetic"), "strategy"),
    (dict(strategy="Grid"), "strategy"),
    (dict(strategy="Grid", ranges=[parse_range("optimizer=SGD,AdamW")], max_jobs=3), "max jobs"),
    (dict(strategy="Hyperband", early_stopping=True), "early stopping"),
    (dict(max_jobs=0), "max jobs"),
    (dict(max_jobs=501), "max jobs"),
    (dict(max_jobs=2, max_parallel=3), "parallel jobs"),
    (dict(max_parallel=0), "parallel jobs"),
    (dict(name="x" * (TUNING_NAME_MAX + 1)), "name"),
    (dict(warm_start_from=("a", "b", "c", "d", "e", "f")), "warm start"),
    (dict(max_runtime_hours=0), "max hours"),
])
def test_bad_requests_name_the_field(changes, field):
    with pytest.raises(TuningSpecError) as info:
        validate_tuning_spec(_spec(**changes))
    assert field in info.value.problems


def test_grid_runs_every_combination():
    spec = validate_tuning_spec(_spec(strategy="Grid", max_jobs=None,
                                      ranges=[parse_range("optimizer=SGD,AdamW"), parse_range("imgsz=320,416,640")]))
    assert spec.total_jobs() == 6


def test_names_fit_sagemakers_limit():
    name = make_tuning_name("a dataset with a rather long name indeed", clock=lambda: 1.8e9)
    assert len(name) <= TUNING_NAME_MAX and TUNING_NAME_PATTERN.match(name)
    assert make_tuning_name("joints", clock=lambda: 1.8e9) != make_tuning_name("joints", clock=lambda: 1.8e9)
    with pytest.raises(ValueError):
        check_tuning_name("-bad")
    with pytest.raises(ValueError):  # the pattern alone lets hyphens through uncounted
        check_tuning_name("a-name-longer-than-thirty-two-chars")
    assert check_tuning_name("a" * TUNING_NAME_MAX) == "a" * TUNING_NAME_MAX


def test_sagemaker_ranges_round_trip():
    ranges = [parse_range("lr0=1e-4:1e-1:log"), parse_range("optimizer=SGD,AdamW"), parse_range("mosaic=0:1")]
    request = sagemaker_parameter_ranges(ranges)
    assert request["ContinuousParameterRanges"][0] == {"Name": "lr0", "MinValue": "0.0001", "MaxValue": "0.1",
                                                       "ScalingType": "Logarithmic"}
    assert sorted(ranges_from_sagemaker(request), key=lambda r: r.name) == sorted(ranges, key=lambda r: r.name)


def test_cost_is_every_child_at_its_max_runtime():
    spec = _spec(instance_type="ml.g4dn.xlarge", max_jobs=12, max_runtime_hours=2, spot=True)
    one_job = estimate_tuning_cost(_spec(instance_type="ml.g4dn.xlarge", max_jobs=1, max_runtime_hours=2))
    estimate = estimate_tuning_cost(spec)
    assert estimate.on_demand == pytest.approx(12 * one_job.on_demand) and estimate.spot < estimate.on_demand


def _child(name, status, objective, created):
    return TuningChild(name=name, status=status, tuned={}, created=created, objective=objective,
                       objective_status="Succeeded" if objective is not None else "Pending")


def test_best_child_and_counters_follow_the_objective_direction():
    children = [_child("a", "Completed", 0.4, 1), _child("b", "Stopped", 0.6, 2),
                _child("c", "InProgress", None, 3), _child("d", "Failed", None, 4)]
    job = TuningJobDescription(name="t", status="InProgress", dataset="d", strategy="Bayesian",
                               objective="mAP50-95", objective_type="Maximize", max_jobs=4, max_parallel=2,
                               created=0, ranges=[], static_hyperparameters={}, instance_type="local",
                               children=children)
    assert job.best.name == "b"
    assert [c.name for c in job.children_by_objective()] == ["b", "a", "d", "c"]
    assert job.status_counters() == {"Completed": 1, "InProgress": 1, "RetryableError": 0,
                                     "NonRetryableError": 1, "Stopped": 1}
    job.objective_type = "Minimize"
    assert job.best.name == "a"
