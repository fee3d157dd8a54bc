"""The local backend: datasets in a folder, jobs trained on this machine by the container's own
entry point, laid out like the S3 bucket the SageMaker backend uses.

``AMC_HOME`` (default ``~/.amc``)::

    users/<user>/custom-uploads/<dataset>/...                     stored datasets
    users/<user>/training-jobs/<job>/output/model.tar.gz          SageMaker's output layout
    users/<user>/training-jobs/<job>/output/output.tar.gz
    users/<user>/weights/<name>-<sha256[:12]>.pt                   weights jobs start from, stored once
    jobs/<job>/                                                   job state, log and emulated /opt/ml
    endpoints/<endpoint>/                                         a deployed model's server (local_endpoints.py)
    tuning-jobs/<tuning job>/                                     a tuning job's study and tuner (local_tuning.py)
    slots/slot-<n>.lock                                           the concurrent-job "quota"
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amc_widgets.backends.base import (
    DatasetInfo,
    DeploysThroughEndpoints,
    DownloadResult,
    LogChunk,
    OutputInfo,
    ProgressCallback,
    TunesThroughManager,
    download_outputs_into,
)
from amc_widgets.backends.local_endpoints import LocalEndpoints
from amc_widgets.backends.local_jobs import JobFiles
from amc_widgets.backends.local_tuning import LocalTuning
from amc_widgets.core.container_contract import MODEL_ARCHIVE
from amc_widgets.core.dataset_check import DatasetError, resolve_dataset
from amc_widgets.core.dataset_import import ready_to_store
from amc_widgets.core.dataset_split import DEFAULT_SPLIT, SplitSettings
from amc_widgets.core.hyperparameters import decode_hyperparameters
from amc_widgets.core.instances import THIS_MACHINE, validate_instance_count
from amc_widgets.core.jobs import (
    FAILED,
    IN_PROGRESS,
    STOPPED,
    STOPPING,
    JobDescription,
    JobNotFoundError,
    JobSpec,
    check_job_name,
    make_job_name,
)
from amc_widgets.core.metrics import parse_metrics
from amc_widgets.core.processes import kill_processes
from amc_widgets.core.storage import (
    check_dataset_name,
    copy_file,
    dataset_source,
    iter_files,
    publish_folder,
    tree_size,
)
from amc_widgets.core.weights import WeightsError, stored_weights_name

if TYPE_CHECKING:  # pandas loads when a table is first made, not with the page
    import pandas as pd

DEFAULT_MAX_CONCURRENT_JOBS = 2
# watch_logs: a change is reported once its job's files were quiet for STEP ms, or after DEBOUNCE ms
# of steady writing
WATCH_STEP_MS = 50
WATCH_DEBOUNCE_MS = 200


class LocalBackend(DeploysThroughEndpoints, TunesThroughManager):
    """Backend protocol implementation on this machine's file system and processes."""

    name = "local"

    def __init__(self, home: Path | str | None = None, user: str | None = None,
                 max_concurrent_jobs: int | None = None, clock: Callable[[], float] = time.time,
                 popen: Callable[..., subprocess.Popen] = subprocess.Popen,
                 container_command: list[str] | None = None):
        self.home = Path(home or os.environ.get("AMC_HOME") or Path.home() / ".amc").expanduser()
        self.user = user or os.environ.get("AMC_USER") or getpass.getuser() or "local"
        self.max_concurrent_jobs = max_concurrent_jobs or int(
            os.environ.get("AMC_MAX_JOBS", DEFAULT_MAX_CONCURRENT_JOBS))
        self.clock = clock
        self._popen = popen
        self._container_command = container_command  # None: the real training container
        self.endpoints = LocalEndpoints(self.home / "endpoints", self.user, self._model_archive, clock, popen)
        self.tuning = LocalTuning(self, popen)

    # --- layout -------------------------------------------------------------------------------
    @property
    def uploads(self) -> Path:
        return self.home / "users" / self.user / "custom-uploads"

    @property
    def training_jobs(self) -> Path:
        return self.home / "users" / self.user / "training-jobs"

    @property
    def weights_folder(self) -> Path:
        return self.home / "users" / self.user / "weights"

    @property
    def jobs_folder(self) -> Path:
        return self.home / "jobs"

    def _job(self, name: str) -> JobFiles:
        job = JobFiles(self.jobs_folder / name, clock=self.clock)
        if not job.state_json.exists() or job.owner() != self.user:
            raise JobNotFoundError(f"No training job named '{name}'")
        return job

    # --- datasets -----------------------------------------------------------------------------
    def list_datasets(self) -> list[DatasetInfo]:
        if not self.uploads.is_dir():
            return []
        infos = []
        for folder in sorted(p for p in self.uploads.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files, size = tree_size(folder)
            infos.append(DatasetInfo(folder.name, files, size, str(folder), folder.stat().st_mtime))
        return infos

    def dataset_folder(self, name: str) -> Path:
        folder = self.uploads / check_dataset_name(name)
        if not folder.is_dir():
            raise DatasetError(f"No stored dataset named '{name}'")
        return folder

    def store_dataset(self, source: Path, name: str | None = None, overwrite: bool = False,
                      progress: ProgressCallback | None = None, split: SplitSettings = DEFAULT_SPLIT) -> DatasetInfo:
        """Check ``source`` (a folder or .zip, in any recognised export format), then copy it in
        (converted to the YOLO layout where needed); all or nothing."""
        source, name = dataset_source(source, name)
        final = self.uploads / name
        if final.exists() and not overwrite:
            raise FileExistsError(f"A dataset named '{name}' is already stored; choose another name or overwrite it")
        self.uploads.mkdir(parents=True, exist_ok=True)
        staging = self.uploads / f".partial-{name}-{secrets.token_hex(3)}"
        try:
            with ready_to_store(source, split) as (ready, _report):
                if ready.is_dir():
                    self._copy_folder(ready, staging, progress)
                else:
                    self._unpack_zip(ready, staging, progress)
            publish_folder(staging, final, overwrite)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        files, size = tree_size(final)
        return DatasetInfo(name, files, size, str(final), final.stat().st_mtime)

    @staticmethod
    def _copy_folder(source: Path, staging: Path, progress: ProgressCallback | None) -> None:
        files = list(iter_files(source))
        total, done = sum(p.stat().st_size for p in files), 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress:
                progress(done, total)

        for path in files:
            copy_file(path, staging / path.relative_to(source), advance)

    @staticmethod
    def _unpack_zip(source: Path, staging: Path, progress: ProgressCallback | None) -> None:
        from amc_widgets.core.archive import open_safe_zip

        with open_safe_zip(source) as archive:
            total, done = archive.total_size, 0
            for member in archive.members:
                dest = staging / member
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(dest, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)

    def dataset_class_names(self, name: str) -> list[str] | None:
        return resolve_dataset(self.dataset_folder(name)).names

    # --- weights ------------------------------------------------------------------------------
    def store_weights(self, source: Path, sha256: str) -> str:
        """Keep a checked ``.pt`` in the user's weights folder (once: the name carries its hash)."""
        name = stored_weights_name(source, sha256)
        dest = self.weights_folder / name
        if not dest.exists():
            partial = dest.with_name(f".partial-{name}-{secrets.token_hex(3)}")
            copy_file(Path(source), partial)
            os.replace(partial, dest)
        return name

    def _stored_weights(self, name: str) -> Path | None:
        if not name:
            return None
        path = self.weights_folder / Path(name).name
        if not path.is_file():
            raise WeightsError(f"weights: '{name}' is not stored in {self.weights_folder}")
        return path

    def delete_dataset(self, name: str) -> None:
        folder = self.dataset_folder(name)
        retired = folder.with_name(f".deleting-{name}-{secrets.token_hex(3)}")
        os.rename(folder, retired)  # gone from listings at once, even if the removal is slow
        shutil.rmtree(retired)

    # --- jobs ---------------------------------------------------------------------------------
    def start_job(self, spec: JobSpec) -> JobDescription:
        """Validate, queue and launch a job; returns at once (the job runs in its own process)."""
        params = decode_hyperparameters(spec.hyperparameters)
        dataset_folder = self.dataset_folder(spec.dataset)
        validate_instance_count(THIS_MACHINE, spec.instance_count)
        weights = self._stored_weights(params["weights"])
        name = check_job_name(spec.name) if spec.name else make_job_name(params["model"], spec.dataset, self.clock)
        job = JobFiles(self.jobs_folder / name, clock=self.clock)
        if job.folder.exists():
            raise FileExistsError(f"A training job named '{name}' already exists")
        settings = {
            "user": self.user,
            "dataset_folder": str(dataset_folder),
            "weights_file": str(weights) if weights else None,
            "outputs_folder": str(self.training_jobs / name / "output"),
            "slots_dir": str(self.home / "slots"),
            "max_concurrent_jobs": self.max_concurrent_jobs,
            "container_command": self._container_command,
        }
        job.create(JobSpec(**{**spec.__dict__, "name": name}), settings)
        runner = self._popen(
            [sys.executable, "-m", "amc_widgets.backends.local_runner", str(job.folder)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(job.folder / "runner.err", "wb"),
            start_new_session=True,
        )
        threading.Thread(target=runner.wait, daemon=True).start()  # reap it when it ends
        job.runner_pid_file.write_text(str(runner.pid))
        return self.describe_job(name)

    def describe_job(self, name: str) -> JobDescription:
        job = self._job(name)
        description = job.load()
        if not description.is_terminal and not job.runner_alive():
            description = job.load()  # it may have finished between the two reads
            if not description.is_terminal:
                description = self._mark_lost(job)
        if description.is_terminal and description.final_metrics is None:  # ended before summaries existed
            description.final_metrics = job.final_metrics()
            job.save(description)
        if description.status == IN_PROGRESS and job.stop_marker.exists():
            description.status = STOPPING  # asked to stop; the runner has not said so yet
        description.extra["runner_pid"] = job.runner_pid()
        return description

    def _mark_lost(self, job: JobFiles) -> JobDescription:
        kill_processes(job.processes)  # what the runner left behind must not train on unwatched
        status = STOPPED if job.stop_marker.exists() else FAILED
        message = "The job's process ended without finishing it (the machine restarted, or it was killed)"
        return job.end(status, message, failure_reason=message if status == FAILED else "")

    def list_jobs(self) -> list[JobDescription]:
        if not self.jobs_folder.is_dir():
            return []
        names = [p.name for p in self.jobs_folder.iterdir() if (p / "state.json").exists()]
        jobs = []
        for name in names:
            try:
                jobs.append(self.describe_job(name))
            except JobNotFoundError:
                continue  # another user's job
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    def stop_job(self, name: str, reason: str = "") -> JobDescription:
        """Stop a job (it keeps the model trained so far); ``reason`` becomes its last status message."""
        job = self._job(name)
        description = self.describe_job(name)
        if description.is_terminal:
            return description
        job.stop_marker.write_text(reason, encoding="utf-8")
        if job.runner_pid() and job.runner_alive():
            os.kill(job.runner_pid(), signal.SIGTERM)
        return self.describe_job(name)

    def read_logs(self, name: str, cursor: Any = None) -> LogChunk:
        """Complete lines after byte offset ``cursor`` (0 or None: from the start)."""
        job = self._job(name)
        offset = int(cursor or 0)
        finished = self.describe_job(name).is_terminal  # read state first: no line can be missed
        with open(job.log, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        if finished:
            end = len(data)  # the process is gone: a last line without newline is complete
        text = data[:end].decode("utf-8", errors="replace")
        return LogChunk(lines=text.splitlines(), cursor=offset + end, finished=finished)

    def watch_logs(self, names: Collection[str], stop: Any, timeout: float) -> Iterator[set[str]]:
        """The WatchesLogs capability: file-system events on the jobs' folders (one inotify watch each,
        not their subfolders), changes to ``log.txt`` and ``state.json`` grouped over at most 0.2 s."""
        import watchfiles  # only a dashboard with running local jobs needs it

        jobs = [self._job(name) for name in names]
        folders = {str(job.folder): job.name for job in jobs}
        watched = {path.name for job in jobs for path in (job.log, job.state_json)}
        for changes in watchfiles.watch(
            *folders, watch_filter=lambda _change, path: os.path.basename(path) in watched,
            debounce=WATCH_DEBOUNCE_MS, step=WATCH_STEP_MS, stop_event=stop, rust_timeout=int(timeout * 1000),
            yield_on_timeout=True, recursive=False,
        ):
            yield {folders[os.path.dirname(path)] for _change, path in changes if os.path.dirname(path) in folders}

    def read_metrics(self, name: str) -> pd.DataFrame:
        job = self._job(name)
        with open(job.log, encoding="utf-8", errors="replace") as handle:
            return parse_metrics(handle)

    # --- outputs ------------------------------------------------------------------------------
    def list_outputs(self) -> list[OutputInfo]:
        if not self.training_jobs.is_dir():
            return []
        outputs = []
        for folder in sorted(self.training_jobs.iterdir()):
            files = {p.name: p.stat().st_size for p in (folder / "output").glob("*.tar.gz")}
            if files:
                outputs.append(OutputInfo(folder.name, files, str(folder / "output"),
                                          max(p.stat().st_mtime for p in (folder / "output").glob("*.tar.gz"))))
        return sorted(outputs, key=lambda o: o.modified or 0, reverse=True)

    def download_outputs(self, name: str, dest: Path, progress: ProgressCallback | None = None,
                         overwrite: bool = False) -> DownloadResult:
        """Copy model.tar.gz / output.tar.gz to ``dest/<job>``, unpack, check best.onnx."""
        source = self.training_jobs / name / "output"
        archives = sorted(source.glob("*.tar.gz"))
        if not archives:
            raise JobNotFoundError(f"Training job '{name}' has no outputs (yet)")
        sizes = {archive.name: archive.stat().st_size for archive in archives}
        return download_outputs_into(dest, name, sizes, lambda file_name, local, advance: copy_file(
            source / file_name, local, advance), progress, overwrite)

    # --- endpoints ----------------------------------------------------------------------------
    def _model_archive(self, job_name: str) -> Path:
        archive = self.training_jobs / job_name / "output" / MODEL_ARCHIVE
        if not archive.is_file():
            raise JobNotFoundError(f"Training job '{job_name}' has no model to deploy (it has not completed)")
        return archive

