"""Ultralytics, fully offline: no hub calls, no runtime pip installs, no font download.

Must run before ``ultralytics`` is first imported, because ultralytics reads these settings at
import time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".amc-write-test"
        probe.write_text("ok")
        probe.unlink()
        return True
    except OSError:
        return False


def prepare_offline_ultralytics(config_dir: Path | None = None) -> Path:
    """Set the environment ultralytics needs to run without internet; return its config dir.

    The plotting font ultralytics would download is replaced by matplotlib's bundled DejaVu Sans.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("MPLBACKEND", "Agg")
    if config_dir is None:
        configured = os.environ.get("YOLO_CONFIG_DIR")
        config_dir = Path(configured) if configured else Path(tempfile.gettempdir()) / "amc-ultralytics"
    config_dir = Path(config_dir)
    if not _writable(config_dir):
        config_dir = Path(tempfile.mkdtemp(prefix="amc-ultralytics-"))
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    import matplotlib  # ships DejaVuSans.ttf

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    settings_dir = config_dir / "Ultralytics"  # ultralytics looks for fonts here
    settings_dir.mkdir(parents=True, exist_ok=True)
    for name in FONT_NAMES:
        if not (settings_dir / name).exists():
            shutil.copyfile(font, settings_dir / name)
    return config_dir


def keep_pillow_open() -> None:
    """Put Pillow's own ``Image.open`` back, in a process that imported ultralytics but does not train.

    Importing ultralytics replaces ``PIL.Image.open`` with one that, for an image Pillow cannot identify,
    installs and loads pi-heif; offline (YOLO_AUTOINSTALL=False) that raises ModuleNotFoundError instead
    of UnidentifiedImageError, so every later image check of the process (dataset check, results, the
    model preview) would blame a missing module rather than the bad image. AMC reads no HEIF images.
    """
    patches = sys.modules.get("ultralytics.utils.patches")
    if patches is not None:
        from PIL import Image

        Image.open = patches._image_open
