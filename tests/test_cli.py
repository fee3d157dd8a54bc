"""The `amc` command line, run as a user runs it: separate processes, one workspace."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import free_port
from tests.label_exports import write_coco

REPO = Path(__file__).resolve().parent.parent
FAST_JOB = ["--model", "yolov5n", "--imgsz", "96", "--batch", "8", "--set", "workers=0", "--set", "plots=false"]


@pytest.fixture()
def amc(tmp_path):
    env = {**os.environ, "AMC_HOME": str(tmp_path / "home"), "AMC_USER": "ana", "AMC_MAX_JOBS": "2",
           "PYTHONPATH": str(REPO)}

    def run(*args, check=True, timeout=120, extra_env=None):
        result = subprocess.run([sys.executable, "-m", "amc_widgets.cli", *map(str, args)],
                                env={**env, **(extra_env or {})},
                                capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    return run


def _one_clear_line(result):
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("amc: error: "), result.stderr
    return lines[0]


def test_bad_input_gets_one_clear_line(amc, tmp_path, small_dataset):
    assert "does not exist" in _one_clear_line(amc("datasets", "upload", tmp_path / "nope", check=False))
    missing = amc("check-dataset", tmp_path / "nope.zip", check=False)
    assert missing.returncode == 1 and "NOT READY" in missing.stdout and "Traceback" not in missing.stderr
    not_a_zip = tmp_path / "data.zip"
    not_a_zip.write_text("hello")
    assert "not a zip" in _one_clear_line(amc("datasets", "upload", not_a_zip, check=False)).lower()
    amc("datasets", "upload", small_dataset, "--name", "solder")
    line = _one_clear_line(amc("datasets", "upload", small_dataset, "--name", "solder", check=False))
    assert "already stored" in line
    line = _one_clear_line(amc("train", "solder", "--epochs", "0", "--set", "lr0=fast", check=False))
    assert "epochs" in line and "lr0" in line
    assert "Unknown preset" in _one_clear_line(amc("train", "solder", "--preset", "turbo", check=False))
    assert "No stored dataset" in _one_clear_line(amc("train", "missing", check=False))
    assert "No training job" in _one_clear_line(amc("logs", "nobody", check=False))
    assert "No training job" in _one_clear_line(amc("stop", "nobody", check=False))
    assert "no outputs" in _one_clear_line(amc("download", "nobody", tmp_path / "dl", check=False))


def test_weights_that_cannot_be_used_get_one_clear_line(amc, small_dataset, tmp_path):
    amc("datasets", "upload", small_dataset, "--name", "solder")
    assert "coco, scratch, job:NAME or the path of a .pt" in _one_clear_line(
        amc("train", "solder", "--weights", "model.onnx", check=False))
    assert "No training job named 'nobody'" in _one_clear_line(
        amc("train", "solder", "--weights", "job:nobody", check=False))
    assert "does not exist" in _one_clear_line(amc("train", "solder", "--weights", tmp_path / "no.pt", check=False))
    offline = _one_clear_line(amc("train", "solder", "--model", "yolov5s", "--weights", "coco", check=False,
                                  extra_env={"AMC_WEIGHTS_URL": f"http://127.0.0.1:{free_port()}/assets"}))
    assert f"put it at {tmp_path / 'home' / 'weights' / 'yolov5su.pt'}" in offline and "scratch" in offline
    assert "No training jobs yet" in amc("jobs").stdout  # nothing started


class _WebPage(http.server.BaseHTTPRequestHandler):
    """Answers every request with an ordinary web page, as a wrong endpoint URL or a proxy would."""

    def _page(self):
        body = b"<!DOCTYPE html><html><body><h1>Welcome</h1><p>Not AWS</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _page

    def log_message(self, *args):
        pass


def test_an_endpoint_that_is_not_aws_gets_one_clear_line(amc):
    keys = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "sekrit-example"}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = amc("--backend", "sagemaker", "--endpoint-url", f"http://127.0.0.1:{server.server_port}",
                     "--region", "us-east-1", "connect", check=False, extra_env=keys)
    finally:
        server.shutdown()
        server.server_close()
    line = _one_clear_line(result)
    assert "not an AWS response" in line and "<html" not in line.lower()


def test_check_dataset_reports_problems_with_exit_code(amc, dataset_copy):
    ok = amc("check-dataset", dataset_copy)
    assert "ready for training" in ok.stdout and "train: 32 images" in ok.stdout
    (dataset_copy / "val" / "labels" / "board_val_0001.txt").write_text("3 0.5 0.5 0.2 0.2\n")
    bad = amc("check-dataset", dataset_copy, check=False)
    assert bad.returncode == 1 and "class 3" in bad.stdout and "NOT READY" in bad.stdout


@pytest.mark.slow
def test_check_dataset_converts_coco_splits_and_writes_previews(amc, small_dataset, tmp_path):
    source = write_coco(small_dataset, tmp_path / "coco")
    out = amc("check-dataset", source, "--preview", tmp_path / "previews", "--per-class", "2", "--val-fraction", "0.25",
              "--split-seed", "5", "--image", "board_val_0003.jpg").stdout
    assert "format: COCO JSON, converted to YOLO" in out
    assert "split: 75/25 automatic split (seed 5, stratified by class): 36 train, 12 val images" in out
    previews = sorted(p.name for p in (tmp_path / "previews").iterdir())
    assert len(previews) == 3 * 2 + 1 and previews[-1] == "image-board_val_0003.jpg.png"
    assert previews[0].startswith("01-") and previews[0].split("-")[1] in {"good", "insufficient", "bridge"}
    again = amc("check-dataset", source, "--preview", tmp_path / "previews", check=False)
    _one_clear_line(again)
    assert "not empty" in again.stderr
    wrong = amc("check-dataset", source, "--preview", tmp_path / "other", "--image", "nope.jpg", check=False)
    _one_clear_line(wrong)
    assert "No image named 'nope.jpg'" in wrong.stderr and not (tmp_path / "other").exists()


def test_two_jobs_at_once_follow_stop_and_download(amc, tmp_path):
    amc("demo-dataset", tmp_path / "demo", "--train", "32", "--val", "16", "--size", "128")
    assert "Stored dataset 'solder'" in amc("datasets", "upload", tmp_path / "demo", "--name", "solder").stdout
    assert "solder" in amc("datasets").stdout

    def start(epochs):
        out = amc("train", "solder", "--epochs", epochs, *FAST_JOB).stdout
        return out.split("Started training job ")[1].split()[0]

    keep, stop = start(2), start(40)
    followed = amc("logs", keep, "--follow", timeout=600)  # returns when the job ends
    assert followed.stdout.count("[amc-metrics]") == 2 and "Completed" in followed.stderr

    deadline = time.monotonic() + 300
    while "[amc-metrics]" not in amc("logs", stop).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert stop in amc("stop", stop).stdout
    while "Stopped" not in amc("jobs").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    jobs = amc("jobs").stdout
    assert f"{keep}" in jobs and "Completed" in jobs and "Stopped" in jobs
    assert "mAP50-95" in amc("metrics", keep).stdout

    onnx = Path(amc("download", keep, tmp_path / "downloads").stdout.strip().splitlines()[-1])
    assert onnx.name == "best.onnx" and onnx.is_file()
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 96, 96), np.float32)})
    assert out.shape[:2] == (1, 7)
    again = amc("download", keep, tmp_path / "downloads", check=False)
    assert "already exists" in _one_clear_line(again)

    from amc_widgets.backends.local import LocalBackend

    backend = LocalBackend(home=tmp_path / "home", user="ana")
    a, b = backend.describe_job(keep), backend.describe_job(stop)
    train_a = next(t for t in a.transitions if t.status == "Training")
    train_b = next(t for t in b.transitions if t.status == "Training")
    assert train_a.start < train_b.end and train_b.start < train_a.end  # they really ran at once


class _TailBackend:
    """Stands in for SageMakerBackend in `amc logs --follow --live-tail`: history, then Live Tail
    lines and polling from Live Tail's cursor for the last ones, or a Live Tail the account refuses
    (then polling carries on from the history's cursor)."""

    def __init__(self, live_tail_refused: bool):
        from amc_widgets.core.jobs import COMPLETED, JobDescription

        self.refused = live_tail_refused
        self.cursors: list = []
        self.job = JobDescription("job-1", COMPLETED, "Completed", "solder", "ml.g4dn.xlarge", 1, {}, 0.0)

    def read_logs(self, name, cursor=None):
        from amc_widgets.backends.base import LogChunk

        self.cursors.append(cursor)
        if cursor is None:
            return LogChunk(["epoch 1", "epoch 2"], cursor="after-2")
        if cursor == "after-2":
            return LogChunk(["epoch 3 (polled)"], cursor="after-3", finished=True)
        return LogChunk(["epoch 4 (written as the job ended)"], cursor="after-4", finished=True)

    def tail_logs(self, name, on_line, cursor):
        from botocore.exceptions import ClientError

        self.tail_cursor = cursor
        if self.refused:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "StartLiveTail")
        on_line("epoch 3 (live)")
        return "after-3-live"

    def describe_job(self, name):
        return self.job


@pytest.mark.parametrize("refused", [False, True])
def test_live_tail_follows_after_the_history_or_falls_back_to_polling(refused, capsys):
    import io

    from amc_widgets.cli import follow_live

    backend, out = _TailBackend(live_tail_refused=refused), io.StringIO()
    assert follow_live(backend, "job-1", out) == 0
    if refused:
        assert out.getvalue() == "epoch 1\nepoch 2\nepoch 3 (polled)\n"  # nothing printed twice
        assert backend.cursors == [None, "after-2"] and "polling instead" in capsys.readouterr().err
    else:
        assert out.getvalue() == "epoch 1\nepoch 2\nepoch 3 (live)\nepoch 4 (written as the job ended)\n"
        assert backend.tail_cursor == "after-2" and backend.cursors == [None, "after-3-live"]


def test_live_tail_needs_the_sagemaker_backend(amc):
    line = _one_clear_line(amc("logs", "job-1", "--follow", "--live-tail", check=False))
    assert "--backend sagemaker" in line


def _finished_job_outputs(home: Path, job: str, validation="default") -> None:
    """model.tar.gz and output.tar.gz where the local backend keeps a finished job's outputs."""
    from amc_widgets.core.storage import pack_tar_gz
    from tests.results_fakes import VALIDATION, write_results

    staging = home.parent / f"staging-{job}"
    write_results(staging / "model", staging / "data", VALIDATION if validation == "default" else validation)
    outputs = home / "users" / "ana" / "training-jobs" / job / "output"
    pack_tar_gz(staging / "model", outputs / "model.tar.gz")
    pack_tar_gz(staging / "data", outputs / "output.tar.gz")


def test_results_prints_the_per_class_table_and_confusion_matrix(amc, tmp_path):
    _finished_job_outputs(tmp_path / "home", "solder-1")
    out = amc("results", "solder-1").stdout.splitlines()
    assert out[0].startswith("solder-1: yolov5n, 3 of 3 epochs; best.pt on the validation split (3 images)")
    assert out[1].split() == ["class", "images", "instances", "precision", "recall", "mAP50", "mAP50-95"]
    assert out[2].split() == ["all", "3", "4", "0.500", "0.750", "0.600", "0.400"]
    assert out[3].split() == ["good", "2", "2", "0.500", "1.000", "0.900", "0.600"]
    assert out[4].split() == ["bridge", "2", "2", "0.250", "0.500", "0.300", "0.200"]
    matrix = out.index("Confusion matrix (rows predicted, columns true; confidence >= 0.25, IoU 0.45):")
    assert out[matrix + 1].split() == ["good", "bridge", "background"]
    assert out[matrix + 2].split() == ["good", "2", "0", "3"]
    assert any(line.startswith("ONNX output: (1, 4 + classes, anchors)") for line in out)

    kept = amc("results", "solder-1", "--dest", tmp_path / "dl").stdout  # kept, then reused
    assert f"Outputs in {tmp_path / 'dl' / 'solder-1'}" in kept
    assert amc("results", "solder-1", "--dest", tmp_path / "dl").stdout == kept


def test_results_of_a_job_without_them_get_one_clear_line(amc, tmp_path):
    assert "has no outputs" in _one_clear_line(amc("results", "nothing-here", check=False))
    _finished_job_outputs(tmp_path / "home", "old-1", validation=None)
    old = amc("results", "old-1", check=False)  # after the download's progress line
    assert old.returncode == 1 and "Traceback" not in old.stderr
    assert old.stderr.strip().splitlines()[-1].startswith("amc: error: This model card has no per-class results")
