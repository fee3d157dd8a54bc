"""The one protocol both backends implement (datasets, jobs, logs, metrics, outputs), and the
capabilities a backend has or not, as small runtime-checkable protocols: callers ask
``isinstance(backend, TailsLogs)`` instead of testing a backend's name."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from amc_widgets.core.dataset_split import DEFAULT_SPLIT, SplitSettings
from amc_widgets.core.endpoints import EndpointDescription, EndpointSpec
from amc_widgets.core.jobs import JobDescription, JobSpec
from amc_widgets.core.prices import Price
from amc_widgets.core.storage import extract_tar_gz
from amc_widgets.core.tuning import TuningJobDescription, TuningSpec

if TYPE_CHECKING:  # pandas loads when a table is first made, not with the page
    import pandas as pd

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
    cursor: Any  # opaque and JSON-serialisable: a byte offset locally, stream positions on SageMaker
    finished: bool = False  # the job has ended and every line has been read
    more: bool = False  # more lines are waiting already (a read is bounded): read again without waiting


@dataclass(frozen=True)
class OutputInfo:
    job_name: str
    files: dict[str, int]  # file name (model.tar.gz, output.tar.gz) -> bytes
    location: str
    modified: float | None = None


@dataclass(frozen=True)
class Prediction:
    """An endpoint's answer to one invocation."""

    body: bytes
    content_type: str
    seconds: float  # the round trip, as the caller saw it


@dataclass
class DownloadResult:
    folder: Path
    onnx: Path | None
    files: list[Path] = field(default_factory=list)


def download_outputs_into(dest: Path, name: str, sizes: dict[str, int],
                          fetch: Callable[[str, Path, Callable[[int], None]], None],
                          progress: ProgressCallback | None, overwrite: bool) -> DownloadResult:
    """Fetch a job's output archives (file name -> size; ``fetch(file name, local path, advance)``)
    into ``dest/<name>``, unpack them and check best.onnx; a non-empty folder only with ``overwrite``."""
    folder = Path(dest).expanduser() / name
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} already exists and is not empty")
    folder.mkdir(parents=True, exist_ok=True)
    total, done = sum(sizes.values()), 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    files: list[Path] = []
    for file_name in sorted(sizes):
        local = folder / file_name
        fetch(file_name, local, advance)
        files.append(local)
        files += extract_tar_gz(local, folder / file_name.removesuffix(".tar.gz"))
    onnx = folder / "model" / "best.onnx"
    if onnx.exists():
        from amc_widgets.core.onnx_model import OnnxDetector  # numpy and onnxruntime: once a model is there

        OnnxDetector(onnx).check()
    return DownloadResult(folder=folder, onnx=onnx if onnx.exists() else None, files=files)


def download_or_reuse(backend: Backend, name: str, dest: Path,
                      progress: ProgressCallback | None = None) -> DownloadResult:
    """A job's outputs in ``dest/<name>``: downloaded, or a complete earlier download reused."""
    try:
        return backend.download_outputs(name, dest, progress=progress)
    except FileExistsError:
        folder = Path(dest).expanduser() / name
        onnx = folder / "model" / "best.onnx"
        if not onnx.exists():
            raise
        return DownloadResult(folder=folder, onnx=onnx, files=sorted(p for p in folder.rglob("*") if p.is_file()))


class Backend(Protocol):
    """What the CLI and the dashboard need from a place that stores data and trains."""

    name: str
    user: str

    def list_datasets(self) -> list[DatasetInfo]: ...

    def store_dataset(self, source: Path, name: str | None = None, overwrite: bool = False,
                      progress: ProgressCallback | None = None, split: SplitSettings = DEFAULT_SPLIT) -> DatasetInfo:
        """Check and store a folder or .zip in any recognised export format, as the YOLO layout;
        ``split`` makes train / val where the export has no val split."""

    def delete_dataset(self, name: str) -> None: ...

    def start_job(self, spec: JobSpec) -> JobDescription: ...

    def describe_job(self, name: str) -> JobDescription: ...

    def list_jobs(self) -> list[JobDescription]: ...

    def stop_job(self, name: str) -> JobDescription: ...

    def read_logs(self, name: str, cursor: Any = None) -> LogChunk: ...

    def read_metrics(self, name: str) -> pd.DataFrame: ...

    def list_outputs(self) -> list[OutputInfo]: ...

    def download_outputs(self, name: str, dest: Path, progress: ProgressCallback | None = None) -> DownloadResult: ...

    def dataset_class_names(self, name: str) -> list[str] | None: ...

    def store_weights(self, source: Path, sha256: str) -> str: ...


# --- capabilities -----------------------------------------------------------------------------

@runtime_checkable
class RunsJobsHere(Protocol):
    """Jobs train on this machine, in a workspace folder: asking for their state costs nothing, and
    the only "instance" is this machine."""

    home: Path


@runtime_checkable
class TailsLogs(Protocol):
    """A job's new lines can be streamed as they are written (CloudWatch Live Tail), continuing a
    :meth:`Backend.read_logs` cursor; returns the cursor to poll on from."""

    def tail_logs(self, name: str, on_line: Callable[[str], None], cursor: Any = None) -> Any: ...


@runtime_checkable
class WatchesLogs(Protocol):
    """A job's log growing (or its state changing) can be waited for, as its files are on this machine:
    the poller polls a card when its job writes rather than at its next poll."""

    def watch_logs(self, names: Collection[str], stop: Any, timeout: float) -> Iterator[set[str]]:
        """Yields the names (of ``names``) whose jobs' logs or states changed, a moment after they
        do, and an empty set every ``timeout`` s without a change; ends once ``stop.is_set()``."""
        ...


@runtime_checkable
class ChecksQuotas(Protocol):
    """The account's limits can be checked before a launch they would refuse."""

    def check_quota(self, instance_type: str, count: int, spot: bool) -> None: ...


@runtime_checkable
class TunesHyperparameters(Protocol):
    """Tuning jobs: up to max jobs training jobs, max parallel at a time, searching the ranges for the
    best objective (SageMaker's tuner on AWS, Optuna here).  Children are ordinary jobs whose
    ``tuning_job`` names their tuning job; stopping a tuning job stops its children."""

    def start_tuning_job(self, spec: TuningSpec) -> TuningJobDescription: ...

    def describe_tuning_job(self, name: str) -> TuningJobDescription: ...

    def list_tuning_jobs(self) -> list[TuningJobDescription]:
        """This user's tuning jobs, newest first (children included)."""

    def stop_tuning_job(self, name: str) -> TuningJobDescription: ...


class TunesThroughManager:
    """TunesHyperparameters for a backend whose ``tuning`` (its tuning-job manager) does the work."""

    tuning: Any

    def start_tuning_job(self, spec: TuningSpec) -> TuningJobDescription:
        return self.tuning.start(spec)

    def describe_tuning_job(self, name: str) -> TuningJobDescription:
        return self.tuning.describe(name)

    def list_tuning_jobs(self) -> list[TuningJobDescription]:
        return self.tuning.list()

    def stop_tuning_job(self, name: str) -> TuningJobDescription:
        return self.tuning.stop(name)


@runtime_checkable
class DeploysModels(Protocol):
    """A completed job's model can be deployed to an endpoint that answers invocations."""

    def deploy(self, spec: EndpointSpec) -> EndpointDescription: ...

    def set_scaling(self, name: str) -> None:
        """Apply the spec's autoscaling once the endpoint is InService (nothing where it has none)."""

    def describe_endpoint(self, name: str) -> EndpointDescription: ...

    def list_endpoints(self) -> list[EndpointDescription]: ...

    def invoke_endpoint(self, name: str, body: bytes, content_type: str, accept: str = "application/json",
                        custom_attributes: str = "") -> Prediction: ...

    def delete_endpoint(self, name: str) -> None: ...


class DeploysThroughEndpoints:
    """DeploysModels for a backend whose ``endpoints`` (its endpoint manager) does the work."""

    endpoints: Any

    def deploy(self, spec: EndpointSpec) -> EndpointDescription:
        return self.endpoints.deploy(spec)

    def set_scaling(self, name: str) -> None:
        self.endpoints.set_scaling(name)

    def describe_endpoint(self, name: str) -> EndpointDescription:
        return self.endpoints.describe(name)

    def list_endpoints(self) -> list[EndpointDescription]:
        return self.endpoints.list()

    def invoke_endpoint(self, name: str, body: bytes, content_type: str, accept: str = "application/json",
                        custom_attributes: str = "") -> Prediction:
        return self.endpoints.invoke(name, body, content_type, accept, custom_attributes)

    def delete_endpoint(self, name: str) -> None:
        self.endpoints.delete(name)


@runtime_checkable
class PricesInstances(Protocol):
    """Instance prices of the region the backend trains in (labelled when only an estimate)."""

    def instance_price(self, instance_type: str) -> Price: ...
