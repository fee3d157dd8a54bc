"""File work shared by the backends: names, sizes, atomic folder writes, tarballs, ONNX checks."""

from __future__ import annotations

import os
import re
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
CHUNK = 1 << 20


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it can name a dataset (and an S3 prefix), else raise ValueError."""
    if not DATASET_NAME.match(name) or name.endswith(".") or ".." in name:
        raise ValueError(
            f"'{name}' is not a valid dataset name: use up to 63 letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def default_dataset_name(source: Path) -> str:
    """A dataset name from a folder or zip name: 'Solder Joints v2.zip' -> 'Solder-Joints-v2'."""
    stem = source.stem if source.suffix.lower() == ".zip" else source.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:63] or "dataset"


def dataset_source(source: Path | str, name: str | None) -> tuple[Path, str]:
    """The folder or zip to store, which must exist, and the checked name it is stored under."""
    source = Path(source).expanduser()
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist")
    return source, check_dataset_name(name or default_dataset_name(source))


def iter_files(folder: Path) -> Iterator[Path]:
    """Every regular file below ``folder`` (symlinks are not followed)."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                yield path


def tree_size(folder: Path) -> tuple[int, int]:
    """(number of files, total bytes) below ``folder``."""
    files = total = 0
    for path in iter_files(folder):
        files += 1
        total += path.stat().st_size
    return files, total


def copy_file(source: Path, dest: Path, progress: Callable[[int], None] | None = None) -> None:
    """Copy in chunks, reporting bytes as they go."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as src, open(dest, "wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            if progress:
                progress(len(chunk))


def link_or_copy(source: Path | str, dest: Path | str) -> None:
    """A hard link where the file system allows, a copy elsewhere."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def link_or_copy_tree(source: Path, dest: Path) -> None:
    """Mirror a folder cheaply: hard links where the file system allows, copies elsewhere."""
    shutil.copytree(source, dest, copy_function=link_or_copy, symlinks=False)


def publish_folder(staging: Path, final: Path, overwrite: bool) -> None:
    """Move a fully written ``staging`` folder to ``final`` in one rename.

    An existing ``final`` is replaced only with ``overwrite``; it is moved aside first and
    deleted only once the new folder is in place.
    """
    if final.exists():
        if not overwrite:
            raise FileExistsError(f"'{final.name}' already exists")
        retired = final.with_name(f".retired-{final.name}-{os.getpid()}")
        os.rename(final, retired)
        os.rename(staging, final)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, final)


def pack_tar_gz(folder: Path, dest: Path) -> Path:
    """``folder``'s contents at the root of a .tar.gz, as SageMaker packs model.tar.gz."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
        for path in sorted(iter_files(folder)):
            tar.add(path, arcname=path.relative_to(folder).as_posix())
    os.replace(partial, dest)
    return dest


def extract_tar_gz(archive: Path, dest: Path) -> list[Path]:
    """Unpack a tarball refusing absolute paths, '..', links and devices; return the files."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        for member in members:
            parts = Path(member.name).parts
            if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                raise ValueError(f"{archive.name} contains an unsafe entry: {member.name}")
        tar.extractall(dest, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return [dest / m.name for m in members if m.isfile()]
