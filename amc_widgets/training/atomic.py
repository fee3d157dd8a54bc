"""Files that are either whole or absent: written under a ``.partial`` name, then renamed.

SageMaker kills the container 120 s after SIGTERM and uploads ``/opt/ml/model`` and the checkpoints
whatever state they are in; a rename on the same file system is atomic, a copy is not.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def _partial(dest: Path) -> Path:
    return dest.with_name(dest.name + PARTIAL_SUFFIX)


def atomic_copy(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest``; ``dest`` is the old file or the whole new one, never a part."""
    partial = _partial(dest)
    shutil.copyfile(source, partial)
    os.replace(partial, dest)


def atomic_write_text(dest: Path, text: str) -> None:
    """Write ``text`` to ``dest`` (UTF-8), as :func:`atomic_copy` does."""
    partial = _partial(dest)
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, dest)
