"""`amc tune`, `amc tuning-jobs`, `amc tuning`, `amc stop` on a tuning job: bad requests as separate
processes (one line, exit 2), the rest in-process on a local backend with the stand-in container."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from amc_widgets import cli
from amc_widgets.backends.local import LocalBackend

REPO = Path(__file__).resolve().parent.parent
FAKE = [sys.executable, str(Path(__file__).with_name("fake_container.py"))]
TUNE = ["tune", "solder", "--epochs", "3", "--weights", "scratch", "--seed", "3"]


@pytest.fixture()
def amc(tmp_path):
    env = {**os.environ, "AMC_HOME": str(tmp_path / "home"), "AMC_USER": "ana", "PYTHONPATH": str(REPO)}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "amc_widgets.cli", *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture()
def local(tmp_path, small_dataset, monkeypatch):
    """`amc` in this process on a local backend whose jobs run the stand-in container."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.2")
    monkeypatch.setenv("FAKE_WORSE_BELOW", "mosaic:0.5")
    monkeypatch.setattr(cli, "FOLLOW_POLL_SECONDS", 0.2)
    backend = LocalBackend(home=tmp_path / "home", user="ana", max_concurrent_jobs=2, container_command=FAKE)
    backend.store_dataset(small_dataset, name="solder")
    monkeypatch.setattr(cli, "_backend", lambda args: backend)
    return backend


def _usage_line(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("amc: error: "), result.stderr
    return lines[0]


def test_bad_tuning_requests_get_one_line_naming_the_field_and_exit_2(amc, tmp_path):
    line = _usage_line(amc(*TUNE, "--range", "lr0=0.5:0.1"))
    assert "lr0: the range is empty" in line
    line = _usage_line(amc(*TUNE, "--range", "mosaic=0:1", "--range", "optimizer=SGD,Turbo", "--objective", "speed"))
    assert "optimizer:" in line and "objective:" in line and "mosaic" not in line
    assert "parallel jobs: cannot be more than max jobs (2)" in _usage_line(
        amc(*TUNE, "--range", "lr0", "--max-jobs", "2", "--parallel", "3"))
    assert "strategy: must be one of" in _usage_line(amc(*TUNE, "--range", "lr0", "--strategy", "genetic"))
    assert "ranges: name at least one" in _usage_line(amc(*TUNE))
    assert not (tmp_path / "home" / "tuning-jobs").exists()  # nothing started


def test_a_backend_without_tuning_is_said_in_one_line(monkeypatch, capsys):
    class NoTuning:
        name = "elsewhere"

    monkeypatch.setattr(cli, "_backend", lambda args: NoTuning())
    assert cli.main(["tuning-jobs"]) == 1
    assert capsys.readouterr().err.strip() == "amc: error: the elsewhere backend cannot run tuning jobs"


def test_tune_wait_to_the_end_then_list_and_show(local, capsys):
    code = cli.main([*TUNE, "--range", "mosaic=0:1", "--range", "optimizer=SGD,AdamW", "--strategy", "random",
                     "--max-jobs", "4", "--parallel", "2", "--name", "tune-cli", "--wait"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "Runs on this machine: 4 training jobs, 2 at a time" in out
    progress = [line for line in out.splitlines() if " done, " in line]
    assert progress[-1].split(" ", 1)[1].startswith("Completed  4/4 done, 0 running")
    assert len(progress) >= 3  # it printed as it went
    tuning = local.describe_tuning_job("tune-cli")
    assert f"Best training job: {tuning.best.name}" in out and "Tuning job tune-cli: Completed" in err

    assert cli.main(["tuning-jobs"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tune-cli")]
    assert "Completed" in row and "4/4 ok" in row and f"{tuning.best.objective:.4g}" in row

    assert cli.main(["tuning", "tune-cli"]) == 0
    shown = capsys.readouterr().out.splitlines()
    rows = [line for line in shown if line[2:].startswith("tune-cli-")]
    assert len(rows) == 4 and rows[0].startswith(f"* {tuning.best.name}")  # best first, marked
    assert [r.split()[-2:] for r in rows] == [[c.tuned["mosaic"], c.tuned["optimizer"]]
                                              for c in tuning.children_by_objective()]
    (static,) = [line for line in shown if "Static hyperparameters" in line]
    assert "epochs=3" in static and "mosaic" not in static and "lr0" not in static  # tuned ones not repeated

    assert cli.main(["jobs"]) == 0
    assert capsys.readouterr().out.count("(tuning job tune-cli)") == 4


def test_stop_a_tuning_job_by_name(local, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "1")
    assert cli.main([*TUNE, "--epochs", "30", "--range", "mosaic", "--max-jobs", "4", "--parallel", "2",
                     "--name", "tune-stop"]) == 0
    from tests.conftest import wait_until

    wait_until(lambda: local.describe_tuning_job("tune-stop").running == 2, 30, "two running children")
    capsys.readouterr()
    assert cli.main(["stop", "tune-stop"]) == 0
    assert capsys.readouterr().out.startswith("Tuning job tune-stop: Stopping")
    done = wait_until(lambda: (d := local.describe_tuning_job("tune-stop")).is_terminal and d, 30, "the stop")
    assert done.status == "Stopped" and [c.status for c in done.children] == ["Stopped", "Stopped"]
    child = done.children[0].name
    assert cli.main(["stop", child]) == 0  # a training job's name still stops a training job
    assert capsys.readouterr().out.strip() == f"Job {child}: Stopped"
