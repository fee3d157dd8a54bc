from __future__ import annotations

import pytest
import yaml

from amc_widgets.core.hyperparameters import HYPERPARAMETERS, HyperparameterError, decode_hyperparameters
from amc_widgets.core.parameters import PRESETS, TrainingParameters, preset_names

# The learning and augmentation values of ultralytics/yolov5 data/hyps/hyp.scratch-*.yaml.
YOLOV5_SCRATCH_LOW = {
    "lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "weight_decay": 0.0005, "warmup_epochs": 3.0,
    "warmup_momentum": 0.8, "warmup_bias_lr": 0.1, "hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4,
    "degrees": 0.0, "translate": 0.1, "scale": 0.5, "shear": 0.0, "perspective": 0.0, "flipud": 0.0,
    "fliplr": 0.5, "mosaic": 1.0, "mixup": 0.0, "copy_paste": 0.0,
}
YOLOV5_SCRATCH_MED = {**YOLOV5_SCRATCH_LOW, "lrf": 0.1, "scale": 0.9, "mixup": 0.1}
YOLOV5_SCRATCH_HIGH = {**YOLOV5_SCRATCH_MED, "copy_paste": 0.1}
AUGMENTATION_KEYS = [name for name, spec in HYPERPARAMETERS.items() if spec.group == "augmentation"]


def test_defaults_and_typed_values_from_strings():
    params = TrainingParameters.from_values(epochs="30", lr0="0.02", cos_lr="true", model='"yolov5n"')
    assert params["epochs"] == 30 and isinstance(params["epochs"], int)
    assert params["lr0"] == pytest.approx(0.02)
    assert params["cos_lr"] is True
    assert params["model"] == "yolov5n"
    assert params["imgsz"] == 640
    assert set(params.values) == set(HYPERPARAMETERS)
    assert TrainingParameters() == TrainingParameters.from_values()


def test_every_bad_key_is_named():
    with pytest.raises(HyperparameterError) as caught:
        TrainingParameters.from_values(epochs=0, imgsz=100, colour="red", sagemaker_program="x")
    assert set(caught.value.problems) == {"epochs", "imgsz", "colour", "sagemaker_program"}
    assert "unknown" in caught.value.problems["sagemaker_program"]


def test_with_changes_returns_a_new_validated_object():
    base = TrainingParameters()
    changed = base.with_changes(epochs=5, batch="32")
    assert (changed["epochs"], changed["batch"]) == (5, 32)
    assert base["epochs"] == 100
    with pytest.raises(HyperparameterError) as caught:
        base.with_changes(fliplr=1.5)
    assert set(caught.value.problems) == {"fliplr"}


def test_values_is_a_copy():
    params = TrainingParameters()
    params.values["epochs"] = 1
    assert params["epochs"] == 100


def test_changed_from_defaults():
    params = TrainingParameters.from_values(epochs=30, model="yolov5m", lr0=0.01)
    assert params.changed_from_defaults() == {"epochs": 30, "model": "yolov5m"}
    assert TrainingParameters().changed_from_defaults() == {}


@pytest.mark.parametrize("name, yolov5", [("scratch-low", YOLOV5_SCRATCH_LOW),
                                          ("scratch-med", YOLOV5_SCRATCH_MED),
                                          ("scratch-high", YOLOV5_SCRATCH_HIGH)])
def test_presets_carry_yolov5_values_and_ultralytics_loss_gains(name, yolov5):
    values = TrainingParameters().apply_preset(name).values
    assert {key: values[key] for key in yolov5} == pytest.approx(yolov5)
    assert (values["box"], values["cls"], values["dfl"]) == (7.5, 0.5, 1.5)


def test_no_augmentation_turns_every_augmentation_off():
    values = TrainingParameters().apply_preset("no-augmentation").values
    assert {key: values[key] for key in AUGMENTATION_KEYS} == {key: 0.0 for key in AUGMENTATION_KEYS}
    assert values["close_mosaic"] == 0
    assert values["lr0"] == 0.01


def test_every_preset_sets_the_same_keys_so_order_does_not_matter():
    assert len({frozenset(values) for values in PRESETS.values()}) == 1
    params = TrainingParameters()
    assert params.apply_preset("no-augmentation").apply_preset("scratch-high") == params.apply_preset("scratch-high")


def test_scratch_low_is_the_default():
    assert TrainingParameters().apply_preset("scratch-low") == TrainingParameters()


def test_apply_preset_keeps_run_keys():
    params = TrainingParameters.from_values(epochs=7, imgsz=320, model="yolov5n", batch=8)
    high = params.apply_preset("scratch-high")
    assert (high["epochs"], high["imgsz"], high["model"], high["batch"]) == (7, 320, "yolov5n", 8)
    assert high["mixup"] == 0.1


def test_unknown_preset_lists_the_names():
    assert preset_names() == ["scratch-low", "scratch-med", "scratch-high", "no-augmentation"]
    with pytest.raises(ValueError, match="scratch-low, scratch-med, scratch-high, no-augmentation"):
        TrainingParameters().apply_preset("scratch-extreme")


def test_yaml_round_trip_writes_plain_values(tmp_path):
    params = TrainingParameters.from_values(epochs=12, lr0=1e-6, cos_lr=True, device="0, 1", cache="ram")
    path = params.to_yaml(tmp_path / "params.yaml")
    data = yaml.safe_load(path.read_text())
    assert set(data) == set(HYPERPARAMETERS)
    assert data["epochs"] == 12 and data["cos_lr"] is True and data["device"] == "0,1"
    assert "!!" not in path.read_text()
    assert TrainingParameters.from_yaml(path) == params


def test_yaml_never_overwrites_unless_asked(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        TrainingParameters().to_yaml(path)
    assert path.read_text() == "keep me"
    TrainingParameters.from_values(epochs=3).to_yaml(path, overwrite=True)
    assert TrainingParameters.from_yaml(path)["epochs"] == 3


def test_yaml_bad_content_names_each_key(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("epochs: -1\nmosaic: 2\ncolour: red\nweights:\n")
    with pytest.raises(HyperparameterError) as caught:
        TrainingParameters.from_yaml(path)
    assert set(caught.value.problems) == {"epochs", "mosaic", "colour", "weights"}


@pytest.mark.parametrize("content, message", [("- epochs\n- 3\n", "mapping"), ("", "mapping"),
                                              ("epochs: [1\n", "not valid YAML")])
def test_yaml_that_is_not_a_mapping_is_a_clear_value_error(tmp_path, content, message):
    path = tmp_path / "params.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        TrainingParameters.from_yaml(path)
    assert not isinstance(caught.value, HyperparameterError)


def test_yaml_unreadable_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="Cannot read"):
        TrainingParameters.from_yaml(tmp_path / "missing.yaml")


def test_to_sagemaker_strings_decode_back_to_the_same_values():
    params = TrainingParameters.from_values(epochs=7, cos_lr=True, lr0=1e-6, weight_decay=0.0, device="0,1",
                                            weights="start.pt").apply_preset("scratch-high")
    encoded = params.to_sagemaker()
    assert all(isinstance(value, str) for value in encoded.values())
    assert encoded["epochs"] == "7" and encoded["cos_lr"] == "true" and encoded["copy_paste"] == "0.1"
    assert decode_hyperparameters(encoded) == params.values


def test_to_sagemaker_refuses_values_over_256_characters():
    assert len(TrainingParameters.from_values(weights="w" * 253 + ".pt").to_sagemaker()["weights"]) == 256
    with pytest.raises(HyperparameterError) as caught:
        TrainingParameters.from_values(weights="w" * 254 + ".pt").to_sagemaker()
    assert set(caught.value.problems) == {"weights"}
    assert "257" in caught.value.problems["weights"]
