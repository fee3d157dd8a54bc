import pytest

from amc_widgets.core.hyperparameters import (
    HYPERPARAMETERS,
    HyperparameterError,
    decode_hyperparameters,
    defaults,
    encode_hyperparameters,
)


def test_string_values_from_sagemaker_are_typed():
    values = decode_hyperparameters({"epochs": "30", "lr0": "0.02", "cos_lr": "True", "model": "yolov5m",
                                     "optimizer": "adamw", "device": "0, 1"})
    assert values["epochs"] == 30 and isinstance(values["epochs"], int)
    assert values["lr0"] == pytest.approx(0.02)
    assert values["cos_lr"] is True
    assert values["optimizer"] == "AdamW"
    assert values["device"] == "0,1"
    assert values["imgsz"] == HYPERPARAMETERS["imgsz"].default


def test_sdk_json_encoded_strings_and_foreign_keys_are_accepted():
    values = decode_hyperparameters({"model": '"yolov5x"', "sagemaker_program": '"x"',
                                     "sagemaker_submit_directory": '"s3://b/k"',
                                     "_tuning_objective_metric": "mAP50-95"})
    assert values["model"] == "yolov5x"
    assert set(values) == set(HYPERPARAMETERS)  # SageMaker's own keys are dropped, not passed on
    assert values == {**defaults(), "model": "yolov5x"}


def test_every_bad_key_is_named_in_one_error():
    with pytest.raises(HyperparameterError) as caught:
        decode_hyperparameters({"epochs": "0", "imgsz": "100", "lr0": "fast", "colour": "red",
                                "batch": "2.5", "fliplr": "1.5", "device": "gpu"})
    problems = caught.value.problems
    assert set(problems) == {"epochs", "imgsz", "lr0", "colour", "batch", "fliplr", "device"}
    assert "multiple of 32" in problems["imgsz"]
    assert "unknown" in problems["colour"]
    assert "fliplr" in str(caught.value)


def test_encode_decode_round_trip():
    values = defaults()
    values.update(epochs=7, cos_lr=True, hsv_h=0.02)
    encoded = encode_hyperparameters(values)
    assert all(isinstance(v, str) for v in encoded.values())
    assert decode_hyperparameters(encoded) == values


def test_nan_is_not_a_number_we_accept():
    with pytest.raises(HyperparameterError) as caught:
        decode_hyperparameters({"lr0": "nan"})
    assert "lr0" in caught.value.problems
