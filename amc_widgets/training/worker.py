"""One training process: trains (or resumes), and on the master exports and stores the results.

Runs in the launcher's own process for single-device jobs, or as ``python -m
amc_widgets.training.worker PLAN`` in each process that torchrun starts.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from amc_widgets.core.container_contract import EXIT_COMPLETED, EXIT_FAILED, EXIT_STOPPED, FAILURE_LIMIT
from amc_widgets.core.hyperparameters import HYPERPARAMETERS
from amc_widgets.training.atomic import atomic_copy, atomic_write_text
from amc_widgets.training.log_stream import CleanLineWriter
from amc_widgets.training.plan import TrainingPlan
from amc_widgets.training.sagemaker_env import write_failure
from amc_widgets.training.ultralytics_env import prepare_offline_ultralytics

_NOT_FOR_ULTRALYTICS = {"model", "weights", "weights_source", "device", "cache"}


def install_clean_streams() -> None:
    """Plain-text stdout/stderr for CloudWatch; must run before ultralytics is imported."""
    if not isinstance(sys.stdout, CleanLineWriter):
        sys.stdout = CleanLineWriter(sys.stdout)
        sys.stderr = CleanLineWriter(sys.stderr)


def trainer_overrides(plan: TrainingPlan) -> dict:
    """Ultralytics train arguments for the plan."""
    params = plan.params
    overrides = {key: params[key] for key in HYPERPARAMETERS if key not in _NOT_FOR_ULTRALYTICS}
    overrides.update(
        model=f"{params['model']}.yaml",
        data=plan.data_yaml,
        device=plan.ultralytics_device,
        cache=False if params["cache"] == "false" else params["cache"],
        pretrained=plan.weights or False,
        project=plan.work_dir,
        name="run",
        exist_ok=True,
        verbose=True,
    )
    return overrides


def explain_failure(exc: BaseException) -> str:
    """The failure reason: what went wrong in plain words first, technical detail after."""
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in str(exc).lower():
        return (
            "The GPU ran out of memory. Lower the batch size or the image size, or choose an instance "
            f"type with more GPU memory. ({text[:300]})"
        )
    from amc_widgets.training.export import ExportError

    if isinstance(exc, ExportError):
        return f"Training finished, but the ONNX model could not be produced: {exc}"
    return text


def _restore_results(plan: TrainingPlan, run_dir: Path) -> None:
    """A resumed run continues the results.csv of the interrupted one."""
    saved = plan.paths.checkpoints / "results.csv"
    if saved.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(saved, run_dir / "results.csv")


def _copy_outputs(run_dir: Path, dest: Path) -> None:
    """results.csv, plots and args from the run folder into output/data (weights excluded)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in run_dir.iterdir():
        if item.is_file():
            shutil.copyfile(item, dest / item.name)


def _final_metrics(trainer) -> dict:
    metrics = (trainer.metrics or {}) if trainer is not None else {}
    names = {"metrics/precision(B)": "precision", "metrics/recall(B)": "recall",
             "metrics/mAP50(B)": "mAP50", "metrics/mAP50-95(B)": "mAP50-95"}
    return {short: float(metrics[long]) for long, short in names.items() if long in metrics}


def finalize(plan: TrainingPlan, run_dir: Path, trainer, stop, started: float) -> None:
    """Master only: best.pt -> ONNX (checked by onnxruntime), model card, outputs.

    Every file in the model folder is written whole or not at all (a stop may end in SIGKILL):
    best.pt, then a model card without ONNX, then best.onnx exported in the work folder and the card
    again.  A stop (``stop.is_set()``) during all this lets it finish and is noted in the card.
    """
    from amc_widgets.training.export import export_onnx

    paths = plan.paths
    weights = run_dir / "weights"
    best = next((p for p in (weights / "best.pt", weights / "last.pt", paths.checkpoints / "best.pt",
                             paths.checkpoints / "last.pt") if p.exists()), None)
    if best is None:
        if stop.is_set():
            print("Stopped before the first epoch finished: there is no model to save.", flush=True)
            return
        raise RuntimeError("Training ended without writing a model checkpoint")
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    atomic_copy(best, paths.model_dir / "best.pt")
    state_file = paths.checkpoints / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    card = {
        "model": plan.params["model"],
        "classes": plan.class_names,
        "imgsz": plan.params["imgsz"],
        "epochs_completed": state.get("epoch"),
        "epochs_planned": plan.params["epochs"],
        "stopped_by_request": stop.is_set(),
        "final_metrics": _final_metrics(trainer),
        "parameters": plan.params,
        "weights": weights_lineage(plan),
        "dataset": plan.dataset_counts,
        "onnx": None,  # until best.onnx is in place
        "hosts": len(plan.hosts),
        "processes": plan.world_size,
        "accelerator": plan.accelerator,
        "training_seconds": round(time.time() - started, 1),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }
    card_file = paths.model_dir / "model_card.json"
    atomic_write_text(card_file, json.dumps(card, indent=2))  # a card even if killed below
    staging = Path(plan.work_dir) / "export"  # ultralytics writes the ONNX file next to the .pt
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copyfile(best, staging / "best.pt")
    onnx, onnx_info = export_onnx(staging / "best.pt", plan.params["imgsz"],
                                  Path(plan.sample_image) if plan.sample_image else None)
    print(f"ONNX model checked with onnxruntime: {onnx_info}", flush=True)
    atomic_copy(onnx, paths.model_dir / "best.onnx")
    card.update(onnx=onnx_info, stopped_by_request=stop.is_set())
    atomic_write_text(card_file, json.dumps(card, indent=2))
    if run_dir.is_dir():
        _copy_outputs(run_dir, paths.output_data_dir)
    elif (paths.checkpoints / "results.csv").exists():
        paths.output_data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.checkpoints / "results.csv", paths.output_data_dir / "results.csv")
    try:
        card["validation"] = _evaluate(plan, paths.model_dir / "best.pt")
    except Exception as exc:  # noqa: BLE001 - the model is good without its report; the card says why
        card["validation"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        print(f"Per-class validation results could not be computed: {card['validation']['error']}", flush=True)
    atomic_write_text(card_file, json.dumps(card, indent=2))
    print(f"Model saved: {paths.model_dir / 'best.onnx'}", flush=True)


def _evaluate(plan: TrainingPlan, best_pt: Path) -> dict:
    """Per-class results, confusion matrix and PR curve of best.pt on the validation split (one
    process, as the final evaluation), and the gallery of validation images in output/data."""
    from amc_widgets.training.evaluation import GALLERY_FOLDER, validate, validation_report, write_gallery
    from amc_widgets.training.trainer import validation_as_single_process

    device = "cpu" if plan.accelerator == "cpu" else "0"
    batch = min(plan.params["batch"], 32) if plan.params["batch"] > 0 else 16  # one device validates
    with validation_as_single_process():
        validator = validate(best_pt, plan.data_yaml, plan.params["imgsz"], batch, device,
                             Path(plan.work_dir) / "evaluation")
    report = validation_report(validator, plan.class_names)
    write_gallery(validator, plan.paths.output_data_dir / GALLERY_FOLDER)
    return report


def weights_lineage(plan: TrainingPlan) -> dict:
    """The model card's ``weights`` entry: where training started from."""
    if not plan.weights:
        return {"source": "scratch"}
    from amc_widgets.core.weights import sha256_file

    return {"source": plan.params["weights_source"] or f"file:{Path(plan.weights).name}",
            "file": Path(plan.weights).name, "sha256": sha256_file(Path(plan.weights))}


def _versions() -> dict:
    import torch
    import ultralytics

    return {"ultralytics": ultralytics.__version__, "torch": torch.__version__}


def run(plan: TrainingPlan, stop) -> int:
    """Train according to ``plan``; return the process exit code."""
    started = time.time()
    from ultralytics.utils import RANK

    from amc_widgets.training.trainer import AMCDetectionTrainer, TrainingStopped, attach_amc_callbacks

    is_master = RANK in (-1, 0) and plan.node_rank == 0
    run_dir = Path(plan.work_dir) / "run"
    trainer = None
    try:
        if plan.resume == "finished":
            print("Training already finished before the restart; exporting the saved model.", flush=True)
        else:
            overrides = trainer_overrides(plan)
            if plan.resume == "resume":
                _restore_results(plan, run_dir)
                resume_from = Path(plan.work_dir) / "resume-last.pt"
                shutil.copyfile(plan.paths.checkpoints / "last.pt", resume_from)
                overrides.update(resume=str(resume_from), save_dir=str(run_dir))
                print(f"Resuming from the checkpoint in {plan.paths.checkpoints}", flush=True)
            trainer = AMCDetectionTrainer(overrides=overrides)
            attach_amc_callbacks(trainer, plan.paths.checkpoints, stop)
            try:
                trainer.train()
            except TrainingStopped:
                print("Stop requested: saving the model trained so far.", flush=True)
        if is_master:
            finalize(plan, run_dir, trainer, stop, started)
        return EXIT_STOPPED if stop.is_set() else EXIT_COMPLETED  # also for a stop during the export
    except Exception as exc:  # noqa: BLE001 - the failure file must carry the real error
        reason = explain_failure(exc)
        write_failure(plan.paths, reason[:FAILURE_LIMIT] + "\n\n" + traceback.format_exc())
        print(f"Training failed: {reason}", file=sys.stderr, flush=True)
        traceback.print_exc()
        return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Entry point of a torchrun worker process."""
    args = sys.argv[1:] if argv is None else argv
    plan = TrainingPlan.load(Path(args[0]))
    install_clean_streams()
    prepare_offline_ultralytics(Path(plan.work_dir) / "ultralytics-config")
    from amc_widgets.training.trainer import StopRequest

    stop = StopRequest()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    code = run(plan, stop)
    sys.stdout.close_line()
    return code


if __name__ == "__main__":
    sys.exit(main())
