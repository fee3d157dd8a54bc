"""Wall time of container/train against a raw ultralytics run on identical data and arguments.

Both run as fresh processes, alternately, on the same demo dataset and the same resolved
data.yaml; the raw run trains and exports ONNX as a user would by hand.  Prints the median of
each and their ratio (target: container / raw <= 1.05).

    .venv/bin/python bench/container_overhead.py [--epochs 3] [--repeats 3] [--imgsz 160]

The defaults train on the standard demo dataset (240 train / 80 val images at 160 px), as
`make demo` does; fixed costs (dataset check, onnxruntime check, model card) weigh more on
smaller runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amc_widgets.core.dataset_check import resolve_dataset, write_resolved_data_yaml  # noqa: E402
from amc_widgets.core.demo_dataset import make_demo_dataset  # noqa: E402
from amc_widgets.training.plan import TrainingPlan  # noqa: E402
from amc_widgets.training.worker import trainer_overrides  # noqa: E402

RAW_RUN = """
import json, sys
from pathlib import Path
from amc_widgets.training.ultralytics_env import prepare_offline_ultralytics
prepare_offline_ultralytics(Path(sys.argv[2]) / "ultralytics-config")
from ultralytics import YOLO
overrides = json.loads(Path(sys.argv[1]).read_text())
model = YOLO(overrides.pop("model"))
model.train(**overrides)
YOLO(str(Path(overrides["project"]) / overrides["name"] / "weights" / "best.pt")).export(
    format="onnx", imgsz=overrides["imgsz"], simplify=True, device="cpu")
"""


def _hyperparameters(args) -> dict[str, str]:
    return {"model": "yolov5n", "epochs": str(args.epochs), "imgsz": str(args.imgsz), "batch": "16",
            "workers": "0", "plots": "false", "device": "cpu"}


def run_container(dataset: Path, work: Path, args) -> float:
    root = work / "ml"
    shutil.rmtree(root, ignore_errors=True)
    (root / "input" / "config").mkdir(parents=True)
    shutil.copytree(dataset, root / "input" / "data" / "training")
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(_hyperparameters(args)))
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "container" / "train")], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, "AMC_ML_ROOT": str(root)})
    return time.perf_counter() - start


def run_raw(dataset: Path, work: Path, args) -> float:
    """Raw ultralytics with exactly the arguments container/train passes to its trainer."""
    from amc_widgets.core.hyperparameters import decode_hyperparameters

    raw_dir = work / "raw"
    shutil.rmtree(raw_dir, ignore_errors=True)
    data_yaml = write_resolved_data_yaml(resolve_dataset(dataset), raw_dir / "dataset")
    plan = TrainingPlan(ml_root=str(raw_dir), work_dir=str(raw_dir), params=decode_hyperparameters(
        _hyperparameters(args)), data_yaml=str(data_yaml), class_names=[], dataset_counts={}, sample_image=None,
        weights=None, resume="no", accelerator="cpu", gpus_per_host=0, hosts=["algo-1"], node_rank=0,
        master_addr="127.0.0.1", master_port=0, network_interface=None)
    overrides_file = raw_dir / "overrides.json"
    overrides_file.write_text(json.dumps(trainer_overrides(plan)))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", RAW_RUN, str(overrides_file), str(raw_dir)], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--train-images", type=int, default=240)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="amc-bench-") as tmp:
        work = Path(tmp)
        dataset = work / "dataset"
        make_demo_dataset(dataset, train=args.train_images, val=args.train_images // 3, size=args.imgsz, seed=0)
        times: dict[str, list[float]] = {"container/train": [], "raw ultralytics": []}
        for _ in range(args.repeats):  # alternate, so drifts in machine load hit both alike
            times["container/train"].append(run_container(dataset, work, args))
            times["raw ultralytics"].append(run_raw(dataset, work, args))
    print(f"{args.epochs} epochs, imgsz {args.imgsz}, {args.train_images} train images, {args.repeats} runs each")
    print(f"{'run':<18}{'median s':>10}  all runs")
    for name, values in times.items():
        print(f"{name:<18}{statistics.median(values):>10.2f}  " + " ".join(f"{v:.2f}" for v in values))
    ratio = statistics.median(times["container/train"]) / statistics.median(times["raw ultralytics"])
    print(f"ratio container/raw: {ratio:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
