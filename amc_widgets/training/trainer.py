"""Ultralytics glue: a DetectionTrainer that runs DDP under torchrun (also on CPU, across hosts),
prints AMC's metrics line, keeps spot checkpoints and stops cleanly on request.

Import only after :func:`amc_widgets.training.ultralytics_env.prepare_offline_ultralytics`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import LOCAL_RANK, RANK

from amc_widgets.core.metrics import format_metrics_line
from amc_widgets.training.atomic import atomic_copy, atomic_write_text
from amc_widgets.training.plan import CHECKPOINT_STATE


class TrainingStopped(Exception):
    """Raised inside the training loop after SIGTERM (StopTrainingJob or a spot interruption)."""


class StopRequest:
    """Set from a signal handler; checked by the trainer at every batch."""

    def __init__(self):
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self, _trainer=None) -> None:
        if self._event.is_set():
            raise TrainingStopped("Stop requested (SIGTERM)")


def under_torchrun() -> bool:
    return LOCAL_RANK != -1 and "WORLD_SIZE" in os.environ


@contextlib.contextmanager
def _cpu_ddp_wrapping():
    """Ultralytics wraps with ``device_ids=[device.index]``, i.e. ``[None]`` on CPU, which DDP refuses."""
    original = nn.parallel.DistributedDataParallel

    def wrap(module, device_ids=None, **kwargs):
        return original(module, device_ids=None if device_ids in ([None], None) else device_ids, **kwargs)

    nn.parallel.DistributedDataParallel = wrap
    try:
        yield
    finally:
        nn.parallel.DistributedDataParallel = original


@contextlib.contextmanager
def validation_as_single_process():
    """Make ultralytics' validation code see RANK -1 (no process group) for a moment."""
    from ultralytics.engine import validator as base_validator
    from ultralytics.models.yolo.detect import val as detect_validator

    modules = (base_validator, detect_validator)
    saved = [module.RANK for module in modules]
    for module in modules:
        module.RANK = -1
    try:
        yield
    finally:
        for module, rank in zip(modules, saved):
            module.RANK = rank


class AMCDetectionTrainer(DetectionTrainer):
    """DetectionTrainer for processes started by torchrun: world size from ``WORLD_SIZE``,
    device from ``LOCAL_RANK``, gloo on CPU and NCCL on GPU."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.in_final_eval = False
        if under_torchrun():
            self.world_size = int(os.environ["WORLD_SIZE"])
            self.ddp = False  # we are a worker already; never let ultralytics spawn its own

    def _setup_ddp(self):
        on_cpu = self.device.type == "cpu"
        if not on_cpu:
            self.device = torch.device("cuda", LOCAL_RANK)
            torch.cuda.set_device(LOCAL_RANK)
            os.environ.setdefault("TORCH_NCCL_BLOCKING_WAIT", "1")
        dist.init_process_group(
            backend="gloo" if on_cpu else "nccl",
            timeout=timedelta(hours=3),
            rank=RANK,
            world_size=self.world_size,
        )

    def _setup_train(self):
        if self.device.type == "cpu" and self.world_size > 1:
            with _cpu_ddp_wrapping():
                return super()._setup_train()
        return super()._setup_train()

    def final_eval(self):
        """Evaluate best.pt once more.  Distributed: only the master has best.pt (other hosts never
        saved one), and ultralytics' evaluation of a saved model assumes CUDA devices, so the
        process group is closed and the master evaluates alone as a single process."""
        self.in_final_eval = True
        try:
            if self.world_size > 1 and dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()
                if RANK != 0:
                    return None
                self.validator.dataloader = None  # the training one holds only this rank's share
                with validation_as_single_process():
                    return super().final_eval()
            return super().final_eval()
        finally:
            self.in_final_eval = False


def epoch_metrics(trainer) -> dict[str, float]:
    """The values of AMC's metrics line for the epoch the trainer just finished."""
    train_losses = trainer.label_loss_items(trainer.tloss, prefix="train")
    metrics = trainer.metrics or {}
    lr = next(iter((trainer.lr or {}).values()), float("nan"))
    return {
        "epoch": trainer.epoch + 1,
        "epochs": trainer.epochs,
        "train_box_loss": train_losses.get("train/box_loss", float("nan")),
        "train_cls_loss": train_losses.get("train/cls_loss", float("nan")),
        "train_dfl_loss": train_losses.get("train/dfl_loss", float("nan")),
        "val_box_loss": metrics.get("val/box_loss", float("nan")),
        "val_cls_loss": metrics.get("val/cls_loss", float("nan")),
        "val_dfl_loss": metrics.get("val/dfl_loss", float("nan")),
        "precision": metrics.get("metrics/precision(B)", float("nan")),
        "recall": metrics.get("metrics/recall(B)", float("nan")),
        "mAP50": metrics.get("metrics/mAP50(B)", float("nan")),
        "mAP50-95": metrics.get("metrics/mAP50-95(B)", float("nan")),
        "lr": lr,
        "epoch_seconds": trainer.epoch_time or float("nan"),
    }


def attach_amc_callbacks(trainer, checkpoint_dir: Path, stop: StopRequest) -> None:
    """Metrics line per epoch, spot checkpoints, and stop checks at every batch."""

    def on_model_save(t):
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        for name in ("last.pt", "best.pt"):
            if (t.wdir / name).exists():
                atomic_copy(t.wdir / name, checkpoint_dir / name)
        if t.csv.exists():
            atomic_copy(t.csv, checkpoint_dir / "results.csv")
        state = {"epoch": t.epoch + 1, "epochs": t.epochs, "finished": bool(t.stop) or t.epoch + 1 >= t.epochs}
        atomic_write_text(checkpoint_dir / CHECKPOINT_STATE, json.dumps(state))  # a torn one would lose the resume

    def on_fit_epoch_end(t):
        if RANK in (-1, 0) and not t.in_final_eval:
            print(format_metrics_line(epoch_metrics(t)), flush=True)

    trainer.add_callback("on_model_save", on_model_save)
    trainer.add_callback("on_fit_epoch_end", on_fit_epoch_end)
    for event in ("on_train_epoch_start", "on_train_batch_end", "on_val_batch_end", "on_pretrain_routine_end"):
        trainer.add_callback(event, stop.check)
