"""The one protocol both backends implement: datasets, jobs, logs, metrics, outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import pandas as pd

from amc_widgets.core.jobs import JobDescription, JobSpec

# progress(done, total) in bytes; total may be 0 when unknown
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    files: int
    bytes: int
    location: str  # folder path or s3:// prefix
    modified: float | None = None
    complete: bool = True  # False: an upload that did not finish (upload again to resume)


@dataclass
class LogChunk:
    """New log lines since a cursor, and the cursor to continue from."""

    lines: list[str]
    cursor: Any  # opaque: a byte offset locally, stream tokens on SageMaker
    finished: bool = False  # the job has ended and every line has been read


@dataclass(frozen=True)
class OutputInfo:
    job_name: str
    files: dict[str, int]  # file name (model.tar.gz, output.tar.gz) -> bytes
    location: str
    modified: float | None = None


@dataclass
class DownloadResult:
    folder: Path
    onnx: Path | None
    files: list[Path] = field(default_factory=list)


class Backend(Protocol):
    """What the CLI and the dashboard need from a place that stores data and trains."""

    name: str
    user: str

    def list_datasets(self) -> list[DatasetInfo]: ...

    def store_dataset(self, source: Path, name: str | None = None, overwrite: bool = False,
                      progress: ProgressCallback | None = None) -> DatasetInfo: ...

    def delete_dataset(self, name: str) -> None: ...

    def start_job(self, spec: JobSpec) -> JobDescription: ...

    def describe_job(self, name: str) -> JobDescription: ...

    def list_jobs(self) -> list[JobDescription]: ...

    def stop_job(self, name: str) -> JobDescription: ...

    def read_logs(self, name: str, cursor: Any = None) -> LogChunk: ...

    def read_metrics(self, name: str) -> pd.DataFrame: ...

    def list_outputs(self) -> list[OutputInfo]: ...

    def download_outputs(self, name: str, dest: Path, progress: ProgressCallback | None = None) -> DownloadResult: ...
