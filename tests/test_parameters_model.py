"""The training form's model, headless: field values and their problems, presets, auto batch,
instance choice and cost, the job it builds, preset files; and the Train panel linked to it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from amc_widgets.core.hyperparameters import HyperparameterError, decode_hyperparameters
from amc_widgets.core.instances import BATCH_PER_DEVICE, CATALOG
from amc_widgets.core.parameters import preset_values
from amc_widgets.ui.models.connection import ConnectionModel
from amc_widgets.ui.models.dataset import DatasetModel
from amc_widgets.ui.models.parameters import INSTANCE_ERROR_KEY, LOCAL_INSTANCE, ParametersModel
from tests.dashboard_fakes import assert_imports_no_widgets

if TYPE_CHECKING:  # widgets are imported only by the tests that use them
    from amc_widgets.ui.views.train import TrainView


def test_bad_value_is_kept_with_its_problem_and_a_fix_clears_it():
    params = ParametersModel()
    heard = []
    params.observe(heard.append, ["raw", "errors"])
    problem = params.set_value("epochs", "ten")
    assert problem == params.errors["epochs"] and "whole number" in problem and "ten" in problem
    assert params.value("epochs") == "ten" and [change.name for change in heard] == ["raw", "errors"]
    assert {key for key, value in heard[0].new.items() if heard[0].old[key] != value} == {"epochs"}
    assert ">= 1" in params.set_value("epochs", "0")
    assert "auto" in params.set_value("device", "gpu")
    assert params.set_value("epochs", "30") is None and "epochs" not in params.errors
    assert params.set_value("device", "0, 1") is None and params.errors == {}


def test_preset_resets_its_keys_and_their_errors():
    params = ParametersModel()
    params.set_value("lrf", "lots")
    params.apply_preset("scratch-med")
    assert "lrf" not in params.errors and params.value("lrf") == preset_values("scratch-med")["lrf"]


def test_auto_batch_follows_instances_until_the_user_types_one():
    params = ParametersModel(local=True)
    assert params.value("batch") == BATCH_PER_DEVICE
    params.set_local(False)
    assert params.instance_type == "ml.g4dn.xlarge" and params.value("batch") == 16  # 1 T4
    assert params.set_instance("ml.g5.12xlarge", 2, False) is None
    assert params.value("batch") == 16 * 4 * 2  # 4 A10G per instance, 2 instances
    params.set_value("batch", "24")
    params.set_instance("ml.p3.16xlarge", 1, False)
    assert not params.batch_auto and params.value("batch") == "24"
    params.set_batch_auto(True)
    assert params.value("batch") == 16 * 8  # 8 V100
    params.set_instance("ml.m5.xlarge", 1, False)
    assert params.value("batch") == 16  # a CPU instance counts as one device


def test_several_instances_are_refused_on_cpu_and_locally():
    params = ParametersModel(local=False)
    problem = params.set_instance("ml.m5.xlarge", 2, False)
    assert "GPU" in problem and "ml.m5.xlarge" in problem and params.errors[INSTANCE_ERROR_KEY] == problem
    assert not params.allows_several_instances() and params.cost() is None
    with pytest.raises(ValueError, match="GPU"):
        params.job_spec("solder")
    assert params.set_instance("ml.m5.xlarge", 1, False) is None and INSTANCE_ERROR_KEY not in params.errors
    assert "did you mean ml.g4dn.xlarge" in params.set_instance("ml.g4dn.xlarg", 1, False)
    params.set_local(True)
    assert params.allows_several_instances() is False
    assert "must be 1" in params.set_instance(LOCAL_INSTANCE, 2, False)


def test_job_spec_names_every_bad_field_and_needs_a_dataset():
    params = ParametersModel()
    with pytest.raises(ValueError, match="dataset"):
        params.job_spec("")
    params.set_value("epochs", "x")
    params.set_value("lr0", "5")
    with pytest.raises(HyperparameterError) as caught:
        params.job_spec("solder")
    assert set(caught.value.problems) == {"epochs", "lr0"}
    assert "epochs" in str(caught.value) and "lr0" in str(caught.value)


def test_job_spec_carries_the_form(tmp_path):
    params = ParametersModel(local=False)
    params.set_value("epochs", "12")
    params.set_instance("ml.g4dn.12xlarge", 2, True, max_hours=5)
    spec = params.job_spec("solder")
    assert (spec.dataset, spec.instance_type, spec.instance_count, spec.spot, spec.max_runtime_hours) == (
        "solder", "ml.g4dn.12xlarge", 2, True, 5)
    assert all(isinstance(v, str) for v in spec.hyperparameters.values())
    decoded = decode_hyperparameters(spec.hyperparameters)
    assert decoded["epochs"] == 12 and decoded["batch"] == 16 * 4 * 2


def test_spot_max_wait_is_a_checked_field():
    params = ParametersModel(local=False)
    params.set_instance("ml.g4dn.xlarge", 1, True, max_hours=2)
    assert params.job_spec("solder").max_wait_hours is None  # empty: twice max hours, when the job is made
    params.max_wait_text = "1"
    assert params.errors[INSTANCE_ERROR_KEY].startswith("max wait hours: must be at least max hours (2)")
    params.max_wait_text = "soon"
    assert params.errors[INSTANCE_ERROR_KEY] == "max wait hours: must be a number of hours (got 'soon')"
    with pytest.raises(ValueError, match="max wait hours"):
        params.job_spec("solder")
    params.max_wait_text = "6"
    assert INSTANCE_ERROR_KEY not in params.errors and params.job_spec("solder").max_wait_hours == 6
    params.spot = False  # only spot jobs wait: the field is left out
    assert INSTANCE_ERROR_KEY not in params.errors and params.job_spec("solder").max_wait_hours is None
    params.max_hours = 700
    assert params.errors[INSTANCE_ERROR_KEY].startswith("max hours: must be more than 0 and at most 672")


def test_the_form_says_where_the_dataset_goes():
    params = ParametersModel(local=False)
    params.set_instance("ml.g4dn.xlarge", 1, False)
    assert params.storage_note(10**9) == ("Storage: 125 GB NVMe instance storage for the 1.0 GB dataset "
                                          "(the volume size does not apply)")
    assert "more than the 125 GB of NVMe storage" in params.storage_note(200 * 10**9)
    params.set_instance("ml.m5.large", 1, False)
    assert params.storage_note(200 * 10**9) == "Storage: 250 GB volume for the 200.0 GB dataset"


def test_save_refuses_to_overwrite_and_load_round_trips(tmp_path):
    params = ParametersModel()
    params.set_value("epochs", "7")
    params.set_value("lr0", "0.02")
    params.set_value("model", "yolov5m")
    path = params.save(tmp_path / "preset.yaml")
    with pytest.raises(FileExistsError):
        params.save(tmp_path / "preset.yaml")
    params.set_value("epochs", "8")
    params.save(tmp_path / "preset.yaml", overwrite=True)
    with pytest.raises(ValueError):
        params.save("  ")
    loaded = ParametersModel()
    loaded.load(path)
    assert (loaded.value("epochs"), loaded.value("lr0"), loaded.value("model")) == (8, 0.02, "yolov5m")
    assert not loaded.batch_auto and loaded.errors == {}


def test_save_refuses_a_form_with_errors(tmp_path):
    params = ParametersModel()
    params.set_value("imgsz", "100")
    with pytest.raises(HyperparameterError, match="imgsz"):
        params.save(tmp_path / "bad.yaml")
    assert not (tmp_path / "bad.yaml").exists()


def test_cost_is_none_locally_and_lower_with_spot():
    params = ParametersModel(local=True)
    assert params.cost() is None
    params.set_local(False)
    params.set_instance("ml.g4dn.xlarge", 1, False, max_hours=3)
    on_demand = params.cost()
    assert on_demand.on_demand == pytest.approx(CATALOG["ml.g4dn.xlarge"].price_per_hour * 3) and on_demand.spot is None
    params.set_instance("ml.g4dn.xlarge", 1, True)
    with_spot = params.cost()
    assert 0 < with_spot.spot < with_spot.on_demand == pytest.approx(on_demand.on_demand)
    params.set_instance("ml.g4dn.xlarge", 1, True, max_hours=0)
    assert "hours" in params.errors[INSTANCE_ERROR_KEY] and params.cost() is None


# --- the Train panel on the model -------------------------------------------------------------

def train_form(tmp_path) -> TrainView:
    from amc_widgets.core.weights import WeightsCache
    from amc_widgets.ui.models.weights import WeightsModel
    from amc_widgets.ui.views.train import TrainView

    datasets = DatasetModel(ConnectionModel(local_factory=lambda: None), upload_dir=tmp_path)
    weights = WeightsModel(lambda: None, lambda: WeightsCache(tmp_path / "weights"))
    return TrainView(ParametersModel(local=True), datasets, on_start=lambda spec: None, weights=weights)


def test_the_form_shows_the_model_and_takes_only_what_the_user_changes(tmp_path):
    view = train_form(tmp_path)
    params, batch = view.params, view.fields["batch"].input
    assert batch.value == str(BATCH_PER_DEVICE) and view.batch_auto.value and view.preset.value == params.preset
    assert view.instance.value == LOCAL_INSTANCE and view.spot.disabled and view.count.disabled
    picked = []
    params.observe(lambda change: picked.append(change.new), "instance_type")
    params.set_local(False)  # connected to AWS: the picker is refilled, and nothing is picked on the way
    assert picked == ["ml.g4dn.xlarge"] and view.instance.value == "ml.g4dn.xlarge" and not view.spot.disabled
    view.instance.value = "ml.g5.12xlarge"  # the user picks: the auto batch follows, and stays auto
    assert params.instance_type == "ml.g5.12xlarge" and batch.value == str(16 * 4) and params.batch_auto
    view.count.value = 2
    assert params.instance_count == 2 and batch.value == str(16 * 4 * 2) and view.batch_auto.value
    assert "$" in view.cost.value
    batch.value = "24"  # the user types a batch: auto goes off
    assert params.value("batch") == "24" and not params.batch_auto and not view.batch_auto.value
    view.batch_auto.value = True
    assert params.batch_auto and batch.value == str(16 * 4 * 2)
    view.instance.value = "ml.m5.xlarge"  # two CPU instances: refused at the picker, batch left alone
    assert "GPU" in params.errors[INSTANCE_ERROR_KEY] and "GPU" in view.instance_error.value
    assert view.count.disabled and batch.value == str(16 * 4 * 2) and view.cost.value == ""
    view.count.value = 1
    assert INSTANCE_ERROR_KEY not in params.errors and view.instance_error.value == "" and batch.value == "16"
    params.set_local(True)
    assert view.instance.value == LOCAL_INSTANCE and view.count.value == 1 and not view.spot.value
    assert batch.value == str(BATCH_PER_DEVICE) and view.spot.disabled and view.hours.disabled


def test_the_form_marks_bad_fields_and_follows_presets_and_preset_files(tmp_path):
    view = train_form(tmp_path)
    params, epochs, lrf = view.params, view.fields["epochs"], view.fields["lrf"]
    epochs.input.value = "ten"
    assert "whole number" in epochs.error.value and "amc-invalid" in epochs.box._dom_classes
    lrf.input.value = "lots"
    view.preset.value = "scratch-med"
    view.reset_button.click()
    assert params.preset == "scratch-med" and lrf.input.value == str(preset_values("scratch-med")["lrf"])
    assert lrf.error.value == "" and "amc-invalid" not in lrf.box._dom_classes
    assert set(params.errors) == {"epochs"} and params.value("epochs") == "ten"  # the preset leaves it
    epochs.input.value = "7"
    assert epochs.error.value == "" and params.errors == {}
    params.set_value("model", "yolov5m")
    path = params.save(tmp_path / "preset.yaml")
    view.fields["model"].input.value = "yolov5s"
    params.load(path)
    assert view.fields["model"].input.value == "yolov5m" and epochs.input.value == "7"
    assert not view.batch_auto.value


def test_the_parameters_model_imports_no_widgets():
    assert_imports_no_widgets("amc_widgets.ui.models.parameters")
