"""Wall time of container/train against a raw ultralytics run on identical data and arguments.

Both run as fresh processes, alternately, each on its own fresh copy of the same demo dataset
(so neither finds the other's, or an earlier run's, ultralytics label cache) and the same
resolved data.yaml; the raw run trains and exports ONNX as a user would by hand.  Prints the
median wall time of each and their ratio (target: container / raw <= 1.05), and the CPU time
(user + system) of the same runs, which moves less when other work shares the machine.

    .venv/bin/python bench/container_overhead.py [--epochs 3] [--repeats 5] [--imgsz 160]

The defaults train on the standard demo dataset (240 train / 80 val images at 160 px), as
`make demo` does; fixed costs (dataset check, onnxruntime check, model card) weigh more on
smaller runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def _timed(command: list[str], **kwargs) -> tuple[float, float]:
    """Run ``command``; return its wall time and the CPU time (user + system) of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_container(dataset: Path, work: Path, args) -> tuple[float, float]:
    root = work / "ml"
    shutil.rmtree(root, ignore_errors=True)
    (root / "input" / "config").mkdir(parents=True)
    shutil.copytree(dataset, root / "input" / "data" / "training")
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(_hyperparameters(args)))
    return _timed([sys.executable, str(REPO / "container" / "train")], env={**os.environ, "AMC_ML_ROOT": str(root)})


def run_raw(dataset: Path, work: Path, args) -> tuple[float, float]:
    """Raw ultralytics with exactly the arguments container/train passes to its trainer."""
    from amc_widgets.core.hyperparameters import decode_hyperparameters

    raw_dir = work / "raw"
    shutil.rmtree(raw_dir, ignore_errors=True)
    shutil.copytree(dataset, raw_dir / "data")  # as fresh as the container's copy
    data_yaml = write_resolved_data_yaml(resolve_dataset(raw_dir / "data"), raw_dir / "dataset")
    plan = TrainingPlan(ml_root=str(raw_dir), work_dir=str(raw_dir), params=decode_hyperparameters(
        _hyperparameters(args)), data_yaml=str(data_yaml), class_names=[], dataset_counts={}, sample_image=None,
        weights=None, resume="no", accelerator="cpu", gpus_per_host=0, hosts=["algo-1"], node_rank=0,
        master_addr="127.0.0.1", master_port=0, network_interface=None)
    overrides_file = raw_dir / "overrides.json"
    overrides_file.write_text(json.dumps(trainer_overrides(plan)))
    return _timed([sys.executable, "-c", RAW_RUN, str(overrides_file), str(raw_dir)], cwd=REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--train-images", type=int, default=240)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="amc-bench-") as tmp:
        work = Path(tmp)
        dataset = work / "dataset"
        make_demo_dataset(dataset, train=args.train_images, val=args.train_images // 3, size=args.imgsz, seed=0)
        runs = {"container/train": run_container, "raw ultralytics": run_raw}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
        for repeat in range(args.repeats):  # alternate, and swap who goes first, so drifts in load hit both alike
            for name in (list(runs) if repeat % 2 == 0 else list(runs)[::-1]):
                times[name].append(runs[name](dataset, work, args))
                print(f"  {name}: {times[name][-1][0]:.2f} s wall, {times[name][-1][1]:.2f} s CPU", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"{args.epochs} epochs, imgsz {args.imgsz}, {args.train_images} train images, {args.repeats} runs each")
    print(f"{'run':<18}{'median wall s':>14}{'median CPU s':>14}  all runs (wall)")
    for name, values in times.items():
        walls, cpus = [v[0] for v in values], [v[1] for v in values]
        print(f"{name:<18}{statistics.median(walls):>14.2f}{statistics.median(cpus):>14.2f}  "
              + " ".join(f"{v:.2f}" for v in walls))
    ours, peer = times["container/train"], times["raw ultralytics"]
    ratio = statistics.median(v[0] for v in ours) / statistics.median(v[0] for v in peer)
    cpu_ratio = statistics.median(v[1] for v in ours) / statistics.median(v[1] for v in peer)
    print(f"ratio container/raw: {ratio:.3f} wall (target <= 1.05), {cpu_ratio:.3f} CPU")


if __name__ == "__main__":
    main()
