"""Check a ``.pt`` before a job starts from it: a detection model that fits the chosen model size,
and what its classes mean for the dataset's (the same head, or fine-tuning with a new one)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from amc_widgets.core.weights import WeightsError, sha256_file

MIN_TRANSFERRED = 0.5  # below this share of matching layers the weights are for another architecture


@dataclass(frozen=True)
class WeightsCheck:
    """What a checked ``.pt`` holds and how training will use it."""

    path: Path
    sha256: str
    class_names: list[str]
    architecture: str  # the model yaml the weights were built from
    transferred: int  # layers that load into the chosen model
    total: int
    note: str  # one sentence for the user


@contextlib.contextmanager
def _quiet(logger: logging.Logger):
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _names(net) -> list[str]:
    names = getattr(net, "names", None) or {}
    return [str(names[k]) for k in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]


def check_weights(path: Path, model: str, dataset_names: list[str] | None) -> WeightsCheck:
    """Load ``path`` as ultralytics' safe loader does (``weights_only`` with its allow-list of model
    classes: no arbitrary pickled code runs) and check it against ``model`` (``yolov5n``...) and the
    dataset's class names (None: unknown). Raises :class:`WeightsError` saying why it cannot be used."""
    from amc_widgets.training.ultralytics_env import keep_pillow_open, prepare_offline_ultralytics

    prepare_offline_ultralytics()
    from ultralytics.nn.tasks import DetectionModel, guess_model_task, torch_safe_load
    from ultralytics.utils import LOGGER
    from ultralytics.utils.torch_utils import intersect_dicts

    keep_pillow_open()  # this runs in the dashboard's and the CLI's process

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights: {path} does not exist")
    try:
        checkpoint, _ = torch_safe_load(str(path), safe_only=True)
        net = (checkpoint.get("ema") or checkpoint.get("model")) if isinstance(checkpoint, dict) else None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same answer to the user
        raise WeightsError(f"weights: {path.name} is not an ultralytics checkpoint that loads safely "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if net is None or not isinstance(net, DetectionModel) or guess_model_task(net) != "detect":
        kind = guess_model_task(net) if net is not None else "no model"
        raise WeightsError(f"weights: {path.name} is not a detection model ({kind}); AMC trains detectors")
    architecture = str(getattr(net, "yaml", {}).get("yaml_file", "unknown"))
    names = _names(net)
    nc = len(dataset_names) if dataset_names else len(names)
    with _quiet(LOGGER):  # building the model logs its nc override; the note says it better
        target = DetectionModel(f"{model}.yaml", nc=nc, verbose=False).state_dict()
    transferred = len(intersect_dicts(net.float().state_dict(), target))
    if transferred < MIN_TRANSFERRED * len(target):
        raise WeightsError(f"weights: {path.name} holds a {architecture} model, which does not fit {model} "
                           f"(only {transferred} of {len(target)} layers match): choose the model size the "
                           "weights were trained as, or other weights")
    return WeightsCheck(path, sha256_file(path), names, architecture, transferred, len(target),
                        _class_note(names, dataset_names))


def _class_note(names: list[str], dataset_names: list[str] | None) -> str:
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    if not dataset_names:
        return f"The weights know {len(names)} classes ({shown}); the dataset's classes are not known here."
    if len(names) != len(dataset_names):
        return (f"The weights know {len(names)} classes ({shown}), the dataset has {len(dataset_names)}: "
                "fine-tuning with a new detection head (its class layers start fresh).")
    if names != list(dataset_names):
        return (f"The weights know {len(names)} classes with other names ({shown}): their head is kept "
                "and learns the dataset's classes.")
    return f"The weights know the dataset's {len(names)} classes: fine-tuning keeps their head."
