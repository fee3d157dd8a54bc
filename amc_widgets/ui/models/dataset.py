"""Checking, storing, listing and deleting datasets, as the Dataset panel needs it."""

from __future__ import annotations

import contextlib
import re
import tempfile
import weakref
from pathlib import Path

import traitlets as tl

from amc_widgets.backends.base import DatasetInfo
from amc_widgets.core.dataset_check import DatasetError, DatasetReport, resolve_dataset
from amc_widgets.core.dataset_import import check_prepared, failed_report, prepare_dataset
from amc_widgets.core.dataset_preview import DatasetPictures
from amc_widgets.core.dataset_split import DEFAULT_SPLIT, SplitSettings
from amc_widgets.core.errors import user_message
from amc_widgets.core.storage import default_dataset_name
from amc_widgets.ui.models import Transfer
from amc_widgets.ui.models.connection import ConnectionModel

UPLOAD_LIMIT_BYTES = 100 * 1024 * 1024  # the browser upload is one websocket message; bigger: give a path


class UploadState(Transfer):
    """Storing the checked dataset on the backend: progress, then the stored dataset or the error."""

    stored = tl.Instance(DatasetInfo, allow_none=True)

    def clear(self) -> None:
        with self.hold_trait_notifications():
            super().clear()
            self.stored = None


class DatasetModel(tl.HasTraits):
    """The last checked dataset, its report and preview, its upload, and the datasets stored on the backend."""

    checked_path = tl.Instance(Path, allow_none=True)
    report = tl.Instance(DatasetReport, allow_none=True)
    val_fraction = tl.Float(DEFAULT_SPLIT.val_fraction, help="validation share where the export has no val split")
    split_seed = tl.Int(DEFAULT_SPLIT.seed, help="seed of that split")
    gallery = tl.List(help="the preview: (class name, image name, PNG bytes), rarest class first")
    picked = tl.Tuple((), help="(image path in the dataset, PNG bytes) of the image asked for by name")
    store_name = tl.Unicode("", help="the name to store the checked dataset under (check suggests one)")
    upload = tl.Instance(UploadState, args=())
    datasets = tl.List(help="the DatasetInfo of every stored dataset")

    def __init__(self, connection: ConnectionModel, upload_dir: Path | None = None):
        super().__init__()
        self.connection = connection
        self.upload_dir = Path(upload_dir or tempfile.mkdtemp(prefix="amc-uploads-"))
        self.checked_split = DEFAULT_SPLIT
        self._prepared = contextlib.ExitStack()  # the checked dataset, converted where needed, for the preview
        self._preview_path: Path | None = None
        weakref.finalize(self, self._prepared.close)

    # --- checking -----------------------------------------------------------------------------
    def check(self, path: str | Path) -> DatasetReport:
        """Check a folder or .zip on this server's file system; the report is kept for upload."""
        text = str(path).strip()
        if not text:
            raise ValueError("Enter the path of a dataset folder or .zip file on this server")
        split = SplitSettings(val_fraction=self.val_fraction, seed=self.split_seed)
        self.checked_path = Path(text).expanduser()
        self._prepared.close()
        self._preview_path = None
        try:
            prepared = self._prepared.enter_context(prepare_dataset(self.checked_path, split))
            report = check_prepared(prepared, self.checked_path)
            self._preview_path = prepared.path
        except DatasetError as exc:
            report = failed_report(self.checked_path, exc)
        self.checked_split = split
        self.upload.clear()
        with self.hold_trait_notifications():
            self.report = report
            self.store_name = self.suggested_name()
            self.gallery = self._gallery()
            self.picked = ()
        return report

    def _gallery(self) -> list[tuple[str, str, bytes]]:
        if self._preview_path is None:
            return []
        try:
            with DatasetPictures(self._preview_path) as pictures:
                return [(class_name, item.name, pictures.render(item, max_side=200))
                        for class_name, item in pictures.gallery()]
        except DatasetError:  # the report says why
            return []

    def show_image(self, name: str) -> tuple[str, bytes]:
        """Draw the checked dataset's image called ``name`` (file name, stem or path) with its boxes."""
        if self._preview_path is None:
            raise ValueError("Check a dataset first")
        with DatasetPictures(self._preview_path) as pictures:
            item = pictures.find(name)
            self.picked = (item.image, pictures.render(item, max_side=480))
        return self.picked

    def save_browser_upload(self, filename: str, content: bytes) -> Path:
        """Write a .zip sent by the browser next to the other uploads; returns its path on this server."""
        if not filename.lower().endswith(".zip"):
            raise ValueError("Upload a .zip of the dataset (or give the path of a folder on this server)")
        if len(content) > UPLOAD_LIMIT_BYTES:
            raise ValueError(f"{filename} is over {UPLOAD_LIMIT_BYTES >> 20} MB; "
                             "copy it to the server and give its path")
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(filename).name)
        path = self.upload_dir / safe
        path.write_bytes(content)
        return path

    def histogram(self) -> tuple[list[str], list[int]]:
        """Class names and object counts of the last report."""
        if self.report is None:
            return [], []
        names = self.report.names
        return list(names), [int(self.report.class_counts.get(i, 0)) for i in range(len(names))]

    def class_bars(self) -> tuple[list[tuple[str, int]], list[str]]:
        """The classes with objects, most first (ties by name), and those with none, in class order."""
        names, counts = self.histogram()
        bars = sorted(((n, c) for n, c in zip(names, counts) if c), key=lambda bar: (-bar[1], bar[0]))
        return bars, [n for n, c in zip(names, counts) if not c]

    def suggested_name(self) -> str:
        return default_dataset_name(self.checked_path) if self.checked_path else ""

    # --- stored datasets ----------------------------------------------------------------------
    def refresh(self) -> list[DatasetInfo]:
        self.datasets = self.connection.require_backend().list_datasets()
        return self.datasets

    def store(self, name: str | None = None, overwrite: bool = False) -> DatasetInfo:
        """Store the checked dataset under ``name`` (default: ``store_name``); it must have passed the
        check. Progress and outcome are kept in ``upload``; an error is kept there too, and raised."""
        upload = self.upload
        upload.start()
        try:
            if self.checked_path is None or self.report is None:
                raise ValueError("Check a dataset first")
            if not self.report.ok:
                raise DatasetError("The dataset has errors; fix them and check it again before uploading")
            name = self.store_name if name is None else name
            info = self.connection.require_backend().store_dataset(self.checked_path, name=name.strip() or None,
                                                                   overwrite=overwrite, progress=upload.progress,
                                                                   split=self.checked_split)
            self.refresh()
        except Exception as exc:
            upload.error = user_message(exc)
            raise
        else:
            with upload.hold_trait_notifications():
                upload.fraction, upload.stored = 1.0, info
        finally:
            upload.running = False
        return info

    def delete(self, name: str) -> None:
        self.connection.require_backend().delete_dataset(name)
        self.refresh()

    def names(self) -> list[str]:
        return [info.name for info in self.datasets]

    def validation_image(self, dataset: str) -> Path | None:
        """One validation image of ``dataset`` readable on this machine (the stored folder, or the
        folder last checked here), for the model preview; None if there is none."""
        candidates = [Path(info.location) for info in self.datasets if info.name == dataset]
        if self.checked_path is not None:
            candidates.append(self.checked_path)
        for folder in candidates:
            if not folder.is_dir():
                continue
            try:
                images = resolve_dataset(folder).images
            except DatasetError:
                continue
            for split in ("val", "test", "train"):
                if images.get(split):
                    return images[split][0]
        return None
