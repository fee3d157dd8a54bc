"""The licence travels with the package: the wheel the training image builds declares and carries it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from tests.conftest import REPO

# SHA-256 of the unmodified GNU AGPL v3 text (gnu.org/licenses/agpl-3.0.txt, 34,523 bytes)
AGPL_3_SHA256 = "8486a10c4393cee1c25392769ddd3b2d6c242d6ec7928e1414efff7dfb2f07ef"


def _image_build_context(dest: Path) -> Path:
    """Lay out what container/Dockerfile COPYs into its WORKDIR, so the wheel is built from the image's files."""
    workdir = None
    for line in (REPO / "container" / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["WORKDIR"]:
            workdir = PurePosixPath(words[1])
        elif words[:1] == ["COPY"] and workdir is not None:
            *sources, target = words[1:]
            into_dir = target.endswith("/") or len(sources) > 1
            path = PurePosixPath(target)
            target_path = dest / (path.relative_to(workdir) if path.is_absolute() else path)
            for source in map(REPO.joinpath, sources):
                if source.is_dir():  # like Docker: the folder's contents land in the target
                    shutil.copytree(source, target_path, dirs_exist_ok=True)
                else:
                    (target_path if into_dir else target_path.parent).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, target_path / source.name if into_dir else target_path)
    return dest


def test_the_image_builds_a_wheel_that_declares_and_carries_the_agpl(tmp_path):
    context = _image_build_context(tmp_path / "context")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "wheels"), str(context)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheels").glob("amc_widgets-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        dist_info = next(name.split("/")[0] for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        metadata = HeaderParser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        assert f"{dist_info}/licenses/LICENSE" in archive.namelist(), "the image's files lack LICENSE"
        licence = archive.read(f"{dist_info}/licenses/LICENSE")

    assert metadata["License-Expression"] == "AGPL-3.0-or-later"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert not [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    assert hashlib.sha256(licence).hexdigest() == AGPL_3_SHA256 == hashlib.sha256(
        (REPO / "LICENSE").read_bytes()).hexdigest()
