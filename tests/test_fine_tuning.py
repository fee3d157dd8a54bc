"""Starting from an earlier job's best.pt pays off: on new demo data, the same few epochs reach a
higher mAP50-95 than from scratch.  Real trainings through the local backend (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amc_widgets.backends.local import LocalBackend
from amc_widgets.backends.start_weights import prepare_weights
from amc_widgets.core.demo_dataset import make_demo_dataset
from amc_widgets.core.jobs import COMPLETED, JobSpec
from amc_widgets.core.weights import WeightsCache, WeightsChoice, sha256_file
from tests.conftest import REPO, wait_until

# the settings test_container's learning test shows a YOLOv5n learns the demo data with (mAP50 > 0.5)
HP = {"model": "yolov5n", "imgsz": "160", "batch": "16", "close_mosaic": "5", "workers": "0", "plots": "false",
      "seed": "0", "deterministic": "true"}
PARENT_EPOCHS, EPOCHS = 12, 3
# measured on the 2-core development machine: the parent reached 0.801; after 3 epochs on new images
# the fine-tuned job reached 0.694, the one from scratch 0.0 (it starts learning around epoch 7)
MARGIN = 0.5


def _train(backend: LocalBackend, dataset: str, epochs: int, extra: dict[str, str] | None = None) -> str:
    job = backend.start_job(JobSpec(dataset=dataset, hyperparameters={**HP, "epochs": str(epochs), **(extra or {})}))
    return job.name


def _wait(backend: LocalBackend, name: str) -> None:
    done = wait_until(lambda: (d := backend.describe_job(name)).is_terminal and d, 1800, f"{name} to end")
    assert done.status == COMPLETED, done.failure_reason


@pytest.mark.slow
def test_fine_tuning_from_an_earlier_job_beats_scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    backend = LocalBackend(home=tmp_path / "home", user="ana", max_concurrent_jobs=2)
    for name, seed, train, val in (("first", 1, 240, 60), ("second", 2, 64, 24)):  # new images of one kind
        make_demo_dataset(tmp_path / name, train=train, val=val, seed=seed)
        backend.store_dataset(tmp_path / name, name=name)
    parent = _train(backend, "first", PARENT_EPOCHS)
    _wait(backend, parent)
    print("parent mAP50-95 per epoch:", backend.read_metrics(parent)["mAP50-95"].round(3).tolist())

    cache = WeightsCache(tmp_path / "cache", pins={})
    tuned = prepare_weights(backend, WeightsChoice.parse(f"job:{parent}"), "yolov5n", "second", cache)
    assert "know the dataset's 3 classes: fine-tuning keeps their head" in tuned.note
    jobs = {"scratch": _train(backend, "second", EPOCHS), "tuned": _train(backend, "second", EPOCHS,
                                                                             tuned.hyperparameters)}
    for name in jobs.values():
        _wait(backend, name)
    final = {kind: float(backend.read_metrics(name)["mAP50-95"].iloc[-1]) for kind, name in jobs.items()}
    print(f"mAP50-95 after {EPOCHS} epochs: {final}")
    assert final["tuned"] - final["scratch"] >= MARGIN, final

    card = json.loads(_model_card(backend, jobs["tuned"], tmp_path))
    stored = backend.weights_folder / tuned.hyperparameters["weights"]
    assert card["weights"] == {"source": tuned.hyperparameters["weights_source"], "file": stored.name,
                               "sha256": sha256_file(stored)}
    assert card["weights"]["source"] == f"job:{parent} sha256:{sha256_file(stored)}"
    assert json.loads(_model_card(backend, jobs["scratch"], tmp_path))["weights"] == {"source": "scratch"}


def _model_card(backend: LocalBackend, name: str, tmp_path: Path) -> str:
    return (backend.download_outputs(name, tmp_path / "downloads").folder / "model" / "model_card.json").read_text()
