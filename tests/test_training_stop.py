"""A stop (SIGTERM) after training, while the model is exported (amc_widgets.training.worker), and
files that are whole or absent (amc_widgets.training.atomic); no training, the export stood in for."""

from __future__ import annotations

import json
import os
import signal

import pytest

from amc_widgets.core.container_contract import EXIT_COMPLETED, EXIT_STOPPED, MLPaths
from amc_widgets.training.atomic import atomic_copy, atomic_write_text
from amc_widgets.training.ultralytics_env import prepare_offline_ultralytics
from amc_widgets.training.worker import run
from tests.test_training_launcher import make_plan

CHECKPOINT = b"weights of epoch 3 " * 1000


def finished_plan(tmp_path):
    """A plan whose training finished before a restart: run() goes straight to the export."""
    paths = MLPaths(tmp_path / "ml")
    paths.checkpoints.mkdir(parents=True)
    (paths.checkpoints / "best.pt").write_bytes(CHECKPOINT)
    (paths.checkpoints / "state.json").write_text(json.dumps({"epoch": 3, "epochs": 3, "finished": True}))
    plan = make_plan()
    plan.ml_root, plan.work_dir = str(paths.root), str(paths.root / "amc-work")
    plan.params = {"model": "yolov5n", "imgsz": 96, "epochs": 3}
    plan.resume = "finished"
    return plan, paths


def stand_in_export(paths: MLPaths, seen: dict, sigterm: bool):
    """An export that records what the model folder holds while it runs, and may be hit by SIGTERM."""

    def export(best_pt, imgsz, sample_image):
        seen["exported_from"] = best_pt
        seen["model_dir"] = sorted(p.name for p in paths.model_dir.iterdir())
        seen["card"] = json.loads((paths.model_dir / "model_card.json").read_text())
        if sigterm:
            os.kill(os.getpid(), signal.SIGTERM)  # StopTrainingJob, as the export runs
        onnx = best_pt.with_suffix(".onnx")
        onnx.write_bytes(b"onnx model")
        return onnx, {"file": onnx.name, "input": {"name": "images", "shape": [1, 3, imgsz, imgsz]}}

    return export


@pytest.mark.parametrize("sigterm", [True, False], ids=["stopped-during-export", "not-stopped"])
def test_the_model_folder_holds_only_whole_files_and_a_stop_during_export_is_honoured(tmp_path, monkeypatch,
                                                                                       sigterm):
    plan, paths = finished_plan(tmp_path)
    for key in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR", "MPLBACKEND"):
        monkeypatch.delenv(key, raising=False)  # restored after the test
    prepare_offline_ultralytics(tmp_path / "ultralytics-config")  # before run() imports ultralytics
    from amc_widgets.training.trainer import StopRequest

    seen: dict = {}
    monkeypatch.setattr("amc_widgets.training.export.export_onnx", stand_in_export(paths, seen, sigterm))
    stop = StopRequest()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())  # as the launcher does
    try:
        code = run(plan, stop)
    finally:
        signal.signal(signal.SIGTERM, previous)

    # while the ONNX file was being written: it was not in the model folder, best.pt and a card were, whole
    assert seen["exported_from"].parent != paths.model_dir
    assert seen["model_dir"] == ["best.pt", "model_card.json"]
    assert seen["card"]["onnx"] is None and seen["card"]["epochs_completed"] == 3
    assert code == (EXIT_STOPPED if sigterm else EXIT_COMPLETED)
    card = json.loads((paths.model_dir / "model_card.json").read_text())
    assert card["stopped_by_request"] is sigterm and card["onnx"]["file"] == "best.onnx"
    assert (paths.model_dir / "best.pt").read_bytes() == CHECKPOINT
    assert (paths.model_dir / "best.onnx").read_bytes() == b"onnx model"
    assert sorted(p.name for p in paths.model_dir.iterdir()) == ["best.onnx", "best.pt", "model_card.json"]
    assert not paths.failure_file.exists()


def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    dest = tmp_path / "state.json"
    atomic_write_text(dest, '{"epoch": 2}')
    source = tmp_path / "last.pt"
    source.write_bytes(b"epoch 3")

    def killed(*_):
        raise KeyboardInterrupt  # as a SIGKILL between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(dest, '{"epoch": 3}')
    with pytest.raises(KeyboardInterrupt):
        atomic_copy(source, tmp_path / "last-copy.pt")
    assert dest.read_text() == '{"epoch": 2}' and not (tmp_path / "last-copy.pt").exists()
    monkeypatch.undo()
    atomic_copy(source, dest)
    assert dest.read_bytes() == b"epoch 3"
