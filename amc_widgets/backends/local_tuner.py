"""The detached process that drives one local tuning job's Optuna study.

``python -m amc_widgets.backends.local_tuner TUNING_FOLDER`` asks Optuna for up to max parallel
trials at a time, starts each as an ordinary local job (the backend's start_job: same queue, logs,
cards and outputs), feeds the pruner the objective of every epoch from the job's metrics lines,
stops a pruned job as SageMaker's early stopping does (status Stopped, model kept), and tells the
study each child's final objective.  The study lives in the folder's SQLite storage, so a tuner
started again (after kill -9, a reboot) follows the children still running and asks only for the
trials still missing.  One tuner per tuning job: it holds the folder's lock.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from amc_widgets.backends.local import LocalBackend
from amc_widgets.backends.local_jobs import JobFiles
from amc_widgets.backends.local_tuning import TuningFiles, all_children_failed_reason, child_name
from amc_widgets.core.errors import user_message
from amc_widgets.core.hyperparameters import HYPERPARAMETERS
from amc_widgets.core.jobs import COMPLETED, FAILED, STOPPED, JobDescription, JobNotFoundError
from amc_widgets.core.tuning import EARLY_STOPPED_REASON, ParameterRange, TuningSpec

POLL_SECONDS = 0.2
LOCK_TRIES = 20  # a describe may hold the lock for an instant while checking it
WARM_START = "warm_start"  # user attribute of a trial copied from an earlier tuning job
JOB = "job"  # user attribute: the trial's child job


def distribution(item: ParameterRange):
    """The Optuna distribution of one range (ReverseLogarithmic is searched as linear)."""
    if item.values:
        return CategoricalDistribution(item.values)
    log = item.scaling == "Logarithmic"
    if HYPERPARAMETERS[item.name].kind == "int":
        return IntDistribution(int(item.low), int(item.high), log=log)
    return FloatDistribution(float(item.low), float(item.high), log=log)


def suggest(trial: optuna.Trial, item: ParameterRange):
    """The trial's value for ``item`` (the stored one when it was picked before a restart)."""
    dist = distribution(item)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(item.name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(item.name, dist.low, dist.high, log=dist.log)
    return trial.suggest_float(item.name, dist.low, dist.high, log=dist.log)


def encode(value) -> str:
    """A sampled value in SageMaker form (every hyperparameter a string)."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its end-of-grid ``Study.stop`` (which only works inside
    ``optimize``): the tuner stops asking once every combination has a trial."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def make_study(spec: TuningSpec, storage: str, epochs: int) -> optuna.Study:
    """The study with the strategy's sampler and pruner (created, or loaded after a restart)."""
    direction = "maximize" if spec.direction == "Maximize" else "minimize"
    study = optuna.create_study(storage=storage, study_name=spec.name, direction=direction, load_if_exists=True)
    # a tuner started again must not draw the same random picks as the one before it
    seed = None if spec.seed is None else spec.seed + len(study.get_trials(deepcopy=False))
    if spec.strategy == "Grid":  # its seed orders the grid: the same in every tuner of the study
        study.sampler = GridSampler({r.name: list(r.values) for r in spec.ranges}, seed=spec.seed or 0)
    elif spec.strategy == "Random":
        study.sampler = optuna.samplers.RandomSampler(seed=seed)
    else:  # Bayesian, Hyperband; the constant liar keeps parallel trials apart
        study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if spec.strategy == "Hyperband":
        study.pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    elif spec.early_stopping:  # SageMaker's Auto: stop a job worse than the median of the others so far
        study.pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    else:
        study.pruner = optuna.pruners.NopPruner()
    return study


def add_warm_start(study: optuna.Study, spec: TuningSpec, parent_folders: list[str]) -> int:
    """Copy the finished trials of earlier tuning jobs whose values fit this one's ranges; how many."""
    if any(WARM_START in t.user_attrs for t in study.get_trials(deepcopy=False)):
        return 0  # copied before a restart
    distributions = {r.name: distribution(r) for r in spec.ranges}
    added = 0
    for folder in parent_folders:
        parent = TuningFiles(Path(folder))
        if not parent.study_db.exists():  # the parent never got as far as its study
            continue
        trials = optuna.load_study(study_name=parent.name, storage=parent.storage_url).get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        for old in trials:
            params = {name: fitting(old.params.get(name), dist) for name, dist in distributions.items()}
            if old.value is None or any(v is None for v in params.values()):
                continue
            study.add_trial(optuna.trial.create_trial(
                state=old.state, value=old.value, params=params, distributions=distributions,
                intermediate_values=old.intermediate_values,
                user_attrs={WARM_START: parent.name, JOB: old.user_attrs.get(JOB, "")}))
            added += 1
    return added


def fitting(value, dist):
    """``value`` if ``dist`` holds it, else None."""
    if isinstance(dist, CategoricalDistribution):
        return value if value in dist.choices else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not dist.low <= value <= dist.high:
        return None
    if isinstance(dist, IntDistribution):
        return int(value) if float(value).is_integer() else None
    return float(value)


class Tuner:
    """One pass of :meth:`step` looks at every running trial's job and starts the trials still missing.
    It is the study's one writer, so it keeps the running trials in memory and reads the storage
    only when it starts (a restart picks up where the last tuner was)."""

    def __init__(self, files: TuningFiles, backend: LocalBackend):
        self.files = files
        self.backend = backend
        self.spec = files.spec()
        epochs = int(self.spec.hyperparameters.get("epochs", HYPERPARAMETERS["epochs"].default))
        self.study = make_study(self.spec, files.storage_url, epochs)
        children = [t for t in self.study.get_trials(deepcopy=False) if WARM_START not in t.user_attrs]
        self.asked = len(children)
        # trial number -> the Trial that reports and prunes; the epochs it has reported
        self.running = {t.number: optuna.Trial(self.study, t._trial_id) for t in children
                        if t.state == TrialState.RUNNING}
        self.reported = {t.number: set(t.intermediate_values) for t in children if t.state == TrialState.RUNNING}
        self.log_sizes: dict[str, int] = {}
        self.stop_sent: set[str] = set()
        self.start_errors: list[str] = []

    def step(self) -> bool:
        """Advance the study once; True when the tuning job has ended."""
        stopping = self.files.stop_marker.exists()
        for number, trial in list(self.running.items()):
            self._follow(number, trial, stopping)
        if stopping:
            if not self.running:
                self.files.end(STOPPED)
                return True
            return False
        while self.asked < self.spec.total_jobs() and len(self.running) < self.spec.max_parallel:
            trial = self.study.ask()
            self.asked += 1
            self.running[trial.number], self.reported[trial.number] = trial, set()
            self._start(trial)
        if not self.running:
            self._finish()
            return True
        return False

    def _start(self, trial: optuna.Trial) -> None:
        """Pick the trial's values and start its child job (again after a restart: the picks are stored)."""
        tuned = {r.name: encode(suggest(trial, r)) for r in self.spec.ranges}
        name = child_name(self.spec.name, trial.number)
        trial.set_user_attr(JOB, name)
        job_spec = self.spec.training_spec(tuned, name=name)
        job_spec.tuning_job = self.spec.name
        try:
            self.backend.start_job(job_spec)
        except Exception as exc:  # noqa: BLE001 - a child that cannot start fails alone, as on SageMaker
            self._tell_state(trial.number, TrialState.FAIL)
            self.start_errors.append(f"{name} could not start: {user_message(exc)}")
            print(self.start_errors[-1], file=sys.stderr, flush=True)

    def _follow(self, number: int, trial: optuna.Trial, stopping: bool) -> None:
        name = child_name(self.spec.name, number)
        try:
            job = self.backend.describe_job(name)
        except JobNotFoundError:  # asked for, but the tuner died before the job was started
            if stopping:
                self._tell_state(number, TrialState.FAIL)
            else:
                self._start(trial)
            return
        if job.is_terminal:
            self._report(number, name)
            self._tell(number, job)
        elif name in self.stop_sent:
            return
        elif stopping:
            self.stop_sent.add(name)
            self.backend.stop_job(name)
        elif self._report(number, name) and trial.should_prune():
            self.stop_sent.add(name)
            self.backend.stop_job(name, reason=EARLY_STOPPED_REASON)

    def _report(self, number: int, name: str) -> bool:
        """Report the epochs' objective values the study has not seen yet; True if there were any."""
        size = JobFiles(self.backend.jobs_folder / name).log.stat().st_size
        if self.log_sizes.get(name) == size:
            return False
        self.log_sizes[name] = size
        frame = self.backend.read_metrics(name)
        if frame.empty or self.spec.objective not in frame:
            return False
        new = False
        for epoch, value in zip(frame["epoch"], frame[self.spec.objective]):
            step = int(epoch)
            if step not in self.reported[number] and value == value:  # NaN is no value
                self.running[number].report(float(value), step)
                self.reported[number].add(step)
                new = True
        return new

    def _tell(self, number: int, job: JobDescription) -> None:
        value = job.final_metric(self.spec.objective)
        if job.status == COMPLETED and value is not None:
            self.study.tell(number, value)
            self._forget(number)
        elif job.status == STOPPED:  # early stopped or stopped by hand: its last value, as Optuna's pruned
            self._tell_state(number, TrialState.PRUNED)
        else:
            self._tell_state(number, TrialState.FAIL)

    def _tell_state(self, number: int, state: TrialState) -> None:
        self.study.tell(number, state=state)
        self._forget(number)

    def _forget(self, number: int) -> None:
        self.running.pop(number, None)
        self.reported.pop(number, None)

    def _finish(self) -> None:
        jobs = []
        for trial in self.study.get_trials(deepcopy=False):
            if WARM_START in trial.user_attrs:
                continue
            try:
                jobs.append(self.backend.describe_job(child_name(self.spec.name, trial.number)))
            except JobNotFoundError:  # it could not start
                continue
        scored = [j for j in jobs if j.status in (COMPLETED, STOPPED)
                  and j.final_metric(self.spec.objective) is not None]
        if not jobs and self.start_errors:
            self.files.end(FAILED, f"No training job could start; {self.start_errors[0]}")
        elif jobs and all(j.status == FAILED for j in jobs):
            self.files.end(FAILED, all_children_failed_reason(jobs))
        elif not scored:
            self.files.end(FAILED, f"No training job reported the objective metric {self.spec.objective}")
        else:
            self.files.end(COMPLETED)


def start_first_trials(files: TuningFiles, backend: LocalBackend) -> None:
    """Create the study (warm start included) and start its first trials in the caller's process, so
    that they train while the tuner process is still starting (Optuna and SQLAlchemy take seconds to
    import); the tuner then follows them."""
    lock = files.hold_lock()
    if lock is None:
        return
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        tuner = Tuner(files, backend)
        add_warm_start(tuner.study, tuner.spec, files.settings().get("warm_start_folders", []))
        tuner.step()
    except Exception as exc:
        files.end(FAILED, f"The tuning job could not start: {type(exc).__name__}: {exc}")
        raise
    finally:
        lock.close()


def run(folder: Path) -> int:
    files = TuningFiles(folder)
    lock = None
    for _ in range(LOCK_TRIES):
        lock = files.hold_lock()
        if lock is not None:
            break
        time.sleep(0.1)
    if lock is None:
        return 0  # another tuner drives this tuning job
    files.pid_file.write_text(str(os.getpid()))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = files.settings()
    backend = LocalBackend(home=settings["home"], user=settings["user"],
                           max_concurrent_jobs=settings["max_concurrent_jobs"],
                           container_command=settings["container_command"])
    try:
        tuner = Tuner(files, backend)
        add_warm_start(tuner.study, tuner.spec, settings.get("warm_start_folders", []))
        while files.state()["status"] not in (COMPLETED, FAILED, STOPPED):
            if tuner.step():
                break
            time.sleep(POLL_SECONDS)
    except Exception as exc:  # noqa: BLE001 - the tuning job must end in a state, whatever happened here
        files.end(FAILED, f"The local tuner failed: {type(exc).__name__}: {exc}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return run(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
