"""container/train end to end: real (small) training runs of the program SageMaker runs."""

from __future__ import annotations

import json
import re
import signal
import time

import numpy as np
import pandas as pd
import pytest

from amc_widgets.core.metrics import metric_definitions, parse_metrics
from tests.conftest import FAST_TRAINING, free_port, make_ml_root, run_container, start_container

pytestmark = pytest.mark.slow


def _metric_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("[amc-metrics]")]


def test_training_leaves_a_checked_onnx_model_and_outputs(trained_run):
    assert trained_run.code == 0, trained_run.log[-3000:]
    model_dir = trained_run.root / "model"
    assert (model_dir / "best.pt").is_file()
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["classes"] == ["good", "insufficient", "bridge"] and card["imgsz"] == 96
    assert card["epochs_completed"] == 2 and set(card["final_metrics"]) == {"precision", "recall", "mAP50", "mAP50-95"}

    import onnxruntime as ort

    session = ort.InferenceSession(str(model_dir / "best.onnx"), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 96, 96), np.float32)})
    assert output.shape[:2] == (1, 4 + 3)

    data_dir = trained_run.root / "output" / "data"
    assert len(pd.read_csv(data_dir / "results.csv")) == 2
    assert (data_dir / "args.yaml").is_file() and list(data_dir.glob("*.png"))
    assert not (trained_run.root / "output" / "failure").exists()


def test_model_card_has_per_class_results_confusion_matrix_and_a_gallery(trained_run):
    card = json.loads((trained_run.root / "model" / "model_card.json").read_text())
    validation, val_split = card["validation"], card["dataset"]["val"]
    assert [row["class"] for row in validation["per_class"]] == card["classes"] == ["good", "insufficient", "bridge"]
    assert validation["images"] == val_split["images"] and validation["instances"] == val_split["instances"]
    assert sum(row["instances"] for row in validation["per_class"]) == val_split["instances"]
    for row in validation["per_class"]:
        assert 0 < row["images"] <= val_split["images"]
        assert all(0 <= row[key] <= 1 for key in ("precision", "recall", "mAP50", "mAP50-95")), row
    matrix = np.array(validation["confusion_matrix"]["matrix"])
    assert validation["confusion_matrix"]["labels"] == [*card["classes"], "background"] and matrix.shape == (4, 4)
    # every ground-truth object is counted once: found as some class, or missed (the background row)
    assert matrix[:, :3].sum(axis=0).tolist() == [row["instances"] for row in validation["per_class"]]
    curve = validation["pr_curve"]
    assert len(curve["recall"]) == 101 and all(len(v) == 101 for v in curve["precision"].values())
    assert card["onnx"]["output_layout"].startswith("YOLOv5u (ultralytics): output (1, 4 + classes, anchors)")

    gallery = trained_run.root / "output" / "data" / "gallery"
    entries = json.loads((gallery / "gallery.json").read_text())["images"]
    assert len(entries) == val_split["images"] and all((gallery / e["file"]).is_file() for e in entries)
    assert sum(len(e["boxes"]) for e in entries) == val_split["instances"]


def test_log_is_plain_text_with_one_metrics_line_per_epoch(trained_run):
    assert "\r" not in trained_run.log and "\x1b" not in trained_run.log
    assert [line.split()[1] for line in _metric_lines(trained_run.log)] == ["epoch=1", "epoch=2"]


def test_metric_definitions_and_parser_match_the_real_output(trained_run):
    lines = _metric_lines(trained_run.log)
    frame = parse_metrics(trained_run.log.splitlines())
    results = pd.read_csv(trained_run.root / "output" / "data" / "results.csv")
    assert frame["epoch"].tolist() == results["epoch"].tolist()
    assert np.allclose(frame["mAP50-95"], results["metrics/mAP50-95(B)"], atol=1e-5)
    assert np.allclose(frame["train_box_loss"], results["train/box_loss"], atol=1e-4)
    for definition in metric_definitions():
        for line, (_, row) in zip(lines, frame.iterrows()):
            match = re.search(definition["Regex"], line)
            assert match, (definition["Name"], line)
            assert float(match.group(1)) == pytest.approx(row[definition["Name"]], rel=1e-5)


def _remove_data_yaml(d):
    (d / "data.yaml").unlink()


def _list_a_missing_image(d):
    (d / "val" / "images" / "board_val_0002.jpg").unlink()
    (d / "val.txt").write_text("./val/images/board_val_0001.jpg\n./val/images/board_val_0002.jpg\n")
    (d / "data.yaml").write_text("train: train/images\nval: val.txt\nnames: [a, b, c]\n")


def _label_with_class(d, line):
    (d / "train" / "labels" / "board_train_0000.txt").write_text(line)


@pytest.mark.parametrize(
    "damage, expected",
    [
        (_remove_data_yaml, "No data.yaml"),
        (_list_a_missing_image, "board_val_0002.jpg"),
        (lambda d: _label_with_class(d, "5 0.5 0.5 0.2 0.2\n"), "class 5"),
        (lambda d: _label_with_class(d, "0 0.5 0.5\n"), "Malformed"),
    ],
    ids=["no-data-yaml", "missing-image", "class-id-too-large", "malformed-line"],
)
def test_bad_dataset_fails_before_training_with_a_clear_reason(dataset_copy, tmp_path, damage, expected):
    damage(dataset_copy)
    run = run_container(make_ml_root(tmp_path / "ml", dataset_copy, {**FAST_TRAINING, "epochs": 1}), timeout=120)
    assert run.code == 2
    assert expected in run.failure[:1024]
    assert "Traceback" not in run.failure and "Ultralytics" not in run.log
    assert not (tmp_path / "ml" / "model").exists()


def test_bad_hyperparameters_are_named(small_dataset, tmp_path):
    run = run_container(make_ml_root(tmp_path / "ml", small_dataset,
                                     {**FAST_TRAINING, "epochs": "-3", "imgsz": "100", "learning_rate": "1"}),
                        timeout=120)
    assert run.code == 2
    for key in ("epochs", "imgsz", "learning_rate"):
        assert f"{key}:" in run.failure


def test_error_during_training_reaches_the_failure_file(small_dataset, tmp_path):
    root = make_ml_root(tmp_path / "ml", small_dataset, {**FAST_TRAINING, "epochs": 1, "weights": "start.pt"})
    (root / "input" / "data" / "weights").mkdir()
    (root / "input" / "data" / "weights" / "start.pt").write_bytes(b"this is not a checkpoint")
    run = run_container(root, timeout=300)
    assert run.code == 1
    reason = run.failure.splitlines()[0]  # the real error first (SageMaker shows 1,024 characters)
    assert len(reason) <= 1024 and "start.pt" in reason and "checkpoint" in reason, reason
    assert run.failure.index("Traceback") > len(reason)  # its traceback after


def test_sigterm_saves_within_seconds_and_a_restart_resumes(small_dataset, tmp_path):
    root = make_ml_root(tmp_path / "ml", small_dataset, {**FAST_TRAINING, "epochs": 3})
    log_path = tmp_path / "first.log"
    process = start_container(root, log_path)
    try:
        deadline = time.monotonic() + 300
        while "[amc-metrics] epoch=1 " not in log_path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        took = time.monotonic() - sent
    finally:
        process.kill()
    assert code == 143
    assert took < 20, f"stop took {took:.1f}s"
    assert (root / "model" / "best.pt").is_file() and (root / "model" / "best.onnx").is_file()
    stopped_card = json.loads((root / "model" / "model_card.json").read_text())
    assert stopped_card["stopped_by_request"] is True and len(stopped_card["validation"]["per_class"]) == 3
    state = json.loads((root / "checkpoints" / "state.json").read_text())
    assert state["finished"] is False and state["epoch"] >= 1
    assert not (root / "output" / "failure").exists()

    resumed = run_container(root, timeout=600)  # same checkpoints folder, as after a spot interruption
    assert resumed.code == 0, resumed.log[-3000:]
    assert "Resuming" in resumed.log
    epochs = [int(line.split()[1].split("=")[1]) for line in _metric_lines(resumed.log)]
    assert epochs == list(range(state["epoch"] + 1, 4))
    assert pd.read_csv(root / "output" / "data" / "results.csv")["epoch"].tolist() == [1, 2, 3]


def test_two_hosts_train_together_with_cpu_ddp(small_dataset, tmp_path):
    hosts = ["algo-2", "algo-1"]  # SageMaker does not promise an order; the master is the first sorted
    roots = [make_ml_root(tmp_path / host, small_dataset, {**FAST_TRAINING, "epochs": 2},
                          {"current_host": host, "hosts": hosts, "network_interface_name": "lo"})
             for host in ("algo-1", "algo-2")]
    (tmp_path / "hosts").write_text("127.0.0.1 algo-1 algo-2\n")
    env = {"AMC_HOSTS_FILE": str(tmp_path / "hosts"), "AMC_MASTER_PORT": str(free_port())}
    processes = [start_container(root, tmp_path / f"{root.name}.log", **env) for root in roots]
    try:
        codes = [p.wait(timeout=600) for p in processes]
    finally:
        for p in processes:
            p.kill()
    master_log, worker_log = ((tmp_path / f"{h}.log").read_text() for h in ("algo-1", "algo-2"))
    assert codes == [0, 0], master_log[-3000:] + worker_log[-3000:]
    assert "2 host(s)" in master_log and "this host rank 0" in master_log and "this host rank 1" in worker_log
    assert len(_metric_lines(master_log)) == 2 and not _metric_lines(worker_log)
    assert (roots[0] / "model" / "best.onnx").is_file() and not (roots[1] / "model").exists()
    card = json.loads((roots[0] / "model" / "model_card.json").read_text())
    assert card["processes"] == 2 and card["hosts"] == 2


def test_a_model_measurably_learns_the_demo_dataset_in_minutes(tmp_path):
    """The demo dataset's promise: a YOLOv5n from scratch learns it on a CPU in a couple of minutes."""
    from amc_widgets.core.demo_dataset import make_demo_dataset

    make_demo_dataset(tmp_path / "demo")  # the defaults `amc demo-dataset` and `make demo` use
    root = make_ml_root(tmp_path / "ml", tmp_path / "demo",
                        {"model": "yolov5n", "epochs": 12, "imgsz": 160, "batch": 16, "close_mosaic": 5,
                         "plots": "false"})
    run = run_container(root, timeout=900)
    assert run.code == 0, run.log[-3000:]
    frame = parse_metrics(run.log.splitlines())
    assert frame["mAP50"].iloc[0] < 0.1 < 0.5 < frame["mAP50"].max()
    assert json.loads((root / "model" / "model_card.json").read_text())["final_metrics"]["mAP50"] > 0.5
