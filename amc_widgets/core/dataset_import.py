"""Makes any recognised labelling export a dataset AMC can store: the YOLO layout and a data.yaml.

A YOLO data.yaml with train and val is used as it is (a zip is still read member by member).
Anything else is converted into a temporary folder (images linked or copied, the user's folder or
zip never written to): ``images/<split>/``, ``labels/<split>/`` and a data.yaml whose ``amc_import``
entry records the source format, the split and what the conversion changed.  Where the export has
no validation split, a seeded, stratified one is made (:mod:`amc_widgets.core.dataset_split`); an
existing split is never changed.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from amc_widgets.core.archive import BadArchiveError, UnsafeArchiveError
from amc_widgets.core.dataset_check import DatasetError, DatasetReport, Tree, check_dataset, open_tree
from amc_widgets.core.dataset_split import DEFAULT_SPLIT, SplitSettings, split_train_val
from amc_widgets.core.label_formats import Export, Sample, read_export

_CONVERTED_FILE = re.compile(r"(?:images|labels)/[^/\s]+/[^\s:;,()']+")
IMPORT_KEY = "amc_import"  # data.yaml entry recording how a converted dataset was made
CHUNK = 1 << 20


@dataclass
class PreparedDataset:
    """A dataset ready to check and store: ``path`` is the source itself or the converted folder."""

    path: Path
    source_format: str
    converted: bool
    split_note: str = ""  # set when AMC made the train / val split
    notes: list[str] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)  # converted file -> the export's file it came from


@contextmanager
def prepare_dataset(source: Path, split: SplitSettings = DEFAULT_SPLIT) -> Iterator[PreparedDataset]:
    """Recognise the export at ``source`` (folder or .zip) and yield it in the YOLO layout; a
    converted copy is deleted on exit.  Raises DatasetError for an export that cannot be read."""
    source = Path(source)
    workdir = None
    try:
        with open_tree(source) as tree:
            export = read_export(tree)
            if export.native:
                prepared = PreparedDataset(source, export.format, converted=False)
            else:
                workdir = Path(tempfile.mkdtemp(prefix="amc-converted-"))
                prepared = _convert(tree, export, workdir / "dataset", split, source.name)
    except (UnsafeArchiveError, BadArchiveError) as exc:
        _remove(workdir)
        raise DatasetError(str(exc)) from None
    except BaseException:
        _remove(workdir)
        raise
    try:
        yield prepared
    finally:
        _remove(workdir)


def check_prepared(prepared: PreparedDataset, source: Path) -> DatasetReport:
    """:func:`check_dataset` of the prepared dataset, reported under the user's ``source``."""
    report = check_dataset(prepared.path)
    report.root = Path(source)
    if prepared.converted:
        report.data_yaml = None  # a temporary file: the report names the source instead
    report.source_format = prepared.source_format + (", converted to YOLO" if prepared.converted else "")
    report.split_note, report.notes = prepared.split_note, list(prepared.notes)
    report.errors = [_name_origins(text, prepared.origins) for text in report.errors]
    report.warnings = [_name_origins(text, prepared.origins) for text in report.warnings]
    return report


def _name_origins(text: str, origins: dict[str, str]) -> str:
    """Problems name the export's own files, not the converted copy's."""
    return _CONVERTED_FILE.sub(lambda m: origins.get(m.group(0), m.group(0)), text) if origins else text


def failed_report(source: Path, exc: Exception) -> DatasetReport:
    """The report of an export that could not be read at all."""
    report = DatasetReport(root=Path(source))
    report.errors += str(exc).splitlines()
    return report


def check_export(source: Path, split: SplitSettings = DEFAULT_SPLIT) -> DatasetReport:
    """Recognise, convert where needed, and check the export at ``source``; never raises for bad data."""
    try:
        with prepare_dataset(source, split) as prepared:
            return check_prepared(prepared, source)
    except DatasetError as exc:
        return failed_report(source, exc)


@contextmanager
def ready_to_store(source: Path, split: SplitSettings = DEFAULT_SPLIT) -> Iterator[tuple[Path, DatasetReport]]:
    """The folder or zip to store for ``source``, and its check's report, once it passed the check
    (converted copies are removed on exit); DatasetError saying why the dataset is not ready otherwise."""
    try:
        with prepare_dataset(source, split) as prepared:
            report = check_dataset(prepared.path)
            if not report.ok:
                raise DatasetError("\n".join(report.errors))
            yield prepared.path, report
    except DatasetError as exc:
        raise DatasetError(f"{Path(source).name} is not ready for training:\n{exc}") from None


def _remove(workdir: Path | None) -> None:
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def _assign_splits(export: Export, settings: SplitSettings) -> tuple[dict[str, list[Sample]], str]:
    """Samples per split, and the report line when AMC made the split."""
    groups: dict[str, list[Sample]] = {}
    for sample in export.samples:
        groups.setdefault(sample.split or "train", []).append(sample)
    if groups.get("val"):
        return groups, ""
    pool = groups.pop("train", [])
    by_image = {sample.image: sample for sample in pool}
    train, val = split_train_val({image: sample.classes() for image, sample in by_image.items()}, settings)
    groups = {"train": [by_image[i] for i in train], "val": [by_image[i] for i in val], **groups}
    return groups, settings.describe(len(train), len(val))


def _convert(tree: Tree, export: Export, dest: Path, settings: SplitSettings, source_name: str) -> PreparedDataset:
    groups, split_note = _assign_splits(export, settings)
    data: dict = {"names": dict(enumerate(export.names)), "nc": len(export.names)}
    origins: dict[str, str] = {}
    for split, samples in groups.items():
        (dest / "images" / split).mkdir(parents=True, exist_ok=True)
        (dest / "labels" / split).mkdir(parents=True, exist_ok=True)
        used: set[str] = set()
        for sample in sorted(samples, key=lambda s: s.image):
            name = _output_name(sample.image, used)
            _copy_image(tree, sample.image, dest / "images" / split / name)
            label = f"labels/{split}/{posixpath.splitext(name)[0]}.txt"
            (dest / label).write_text(sample.label, encoding="utf-8")
            origins[f"images/{split}/{name}"] = sample.image
            origins[label] = sample.label_file or f"the labels converted for {sample.image}"
        data[split] = f"images/{split}"
    record: dict = {"format": export.format, "source": source_name,
                    "split": ({"automatic": True, "val_fraction": settings.val_fraction, "seed": settings.seed,
                               **{split: len(groups[split]) for split in ("train", "val")}}
                              if split_note else {"automatic": False})}
    if export.notes:
        record["notes"] = export.notes
    data[IMPORT_KEY] = record
    (dest / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return PreparedDataset(dest, export.format, converted=True, split_note=split_note, notes=list(export.notes),
                           origins=origins)


def _output_name(image: str, used: set[str]) -> str:
    """The image's file name, or its whole path flattened where another image has the same stem."""
    name = posixpath.basename(image)
    if posixpath.splitext(name)[0] in used:
        name = image.replace("/", "__")
    used.add(posixpath.splitext(name)[0])
    return name


def _copy_image(tree: Tree, rel: str, dest: Path) -> None:
    """A hard link to a file in a folder (nothing is copied or changed), else the bytes."""
    source = tree.path_of(rel)
    if source.is_file():
        try:
            os.link(source, dest)
            return
        except OSError:
            pass
    with tree.open(rel) as stream, open(dest, "wb") as out:
        shutil.copyfileobj(stream, out, CHUNK)
