"""A stand-in for container/train in fast tests of the local backend: same /opt/ml contract,
no training.  FAKE_EPOCHS metrics lines (plausible learning curves), FAKE_EPOCH_SECONDS apart;
FAKE_BEST_PT a real checkpoint to save as the model (best.pt is a few bytes without it);
FAKE_FAIL=1 fails like the real one; FAKE_RESULTS=1 leaves results (tests/results_fakes.py).
For tuning jobs: FAKE_SCORE_BY=NAME scales the scores (precision, recall, mAP) with hyperparameter NAME
(0.2 + 0.8 x its value; 1 when not given), so a tuning job over it has a best child; FAKE_WORSE_BELOW=NAME:VALUE
makes every score a tenth when hyperparameter NAME is below VALUE.  FAKE_CHILD starts a long-lived child, as
the real one starts torchrun: 'linked' as the launcher does (it dies with this process), 'detached' in its own session
without that link (as torchrun starts its workers, which outlive a torchrun killed hard)."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from amc_widgets.core.container_contract import (
    EXIT_FAILED,
    EXIT_STOPPED,
    ML_ROOT_ENV,
    TRAINING_CHANNEL,
    WEIGHTS_CHANNEL,
    MLPaths,
)
from amc_widgets.core.metrics import format_metrics_line
from amc_widgets.core.processes import die_with_parent

paths = MLPaths(Path(os.environ[ML_ROOT_ENV]))
epochs = int(os.environ.get("FAKE_EPOCHS", "3"))
pause = float(os.environ.get("FAKE_EPOCH_SECONDS", "0.3"))
stopped = []
sent = json.loads(paths.hyperparameters.read_text()) if paths.hyperparameters.is_file() else {}
worse_name, _, worse_below = os.environ.get("FAKE_WORSE_BELOW", "").partition(":")
score_by = os.environ.get("FAKE_SCORE_BY")
quality = 0.2 + 0.8 * float(sent.get(score_by, 1.0)) if score_by else 1.0
if worse_name and float(sent.get(worse_name, "inf")) < float(worse_below):
    quality *= 0.1
signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))


def save_model():
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    best = os.environ.get("FAKE_BEST_PT")  # a real checkpoint to leave as the model, for jobs that start from it
    (paths.model_dir / "best.pt").write_bytes(Path(best).read_bytes() if best else b"weights")
    paths.output_data_dir.mkdir(parents=True, exist_ok=True)
    (paths.output_data_dir / "results.csv").write_text("epoch\n1\n")
    if os.environ.get("FAKE_RESULTS"):  # a tiny ONNX model, a card with validation results, a gallery
        from tests.results_fakes import write_results

        write_results(paths.model_dir, paths.output_data_dir)


child_mode = os.environ.get("FAKE_CHILD")
if child_mode:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                             preexec_fn=die_with_parent() if child_mode == "linked" else None,
                             start_new_session=child_mode == "detached")
    print(f"fake container, child {child.pid}", flush=True)
print(f"fake container, dataset files: {len(list(paths.channel(TRAINING_CHANNEL).rglob('*')))}", flush=True)
print("train: Fast image access \u2705 (ping: 0.0\u00b10.0 ms, read: 90.1\u00b112.3 MB/s) \U0001f680", flush=True)
if paths.channel(WEIGHTS_CHANNEL).is_dir():
    print(f"fake container, weights: {sorted(p.name for p in paths.channel(WEIGHTS_CHANNEL).iterdir())}", flush=True)
for epoch in range(1, epochs + 1):
    deadline = time.monotonic() + pause
    while time.monotonic() < deadline and not stopped:
        time.sleep(0.02)
    if stopped:
        save_model()
        print("stopped", flush=True)
        sys.exit(EXIT_STOPPED)
    progress = quality * (1 - math.exp(-4 * epoch / epochs))  # 0 -> ~1 over the run, like a learning curve
    losses = {f"{split}_{kind}_loss": round(start * (1 - 0.6 * progress) + (0.05 if split == "val" else 0), 4)
              for split in ("train", "val") for kind, start in (("box", 2.2), ("cls", 2.8), ("dfl", 1.6))}
    print(format_metrics_line({"epoch": epoch, "epochs": epochs, **losses, "precision": round(0.9 * progress, 4),
                               "recall": round(0.85 * progress, 4), "mAP50": round(0.92 * progress, 4),
                               "mAP50-95": round(0.6 * progress, 4), "lr": 0.01, "epoch_seconds": pause}),
          flush=True)
if os.environ.get("FAKE_FAIL"):
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    paths.failure_file.write_text("The dataset exploded: class 9 in labels/x.txt")
    sys.exit(EXIT_FAILED)
save_model()
sys.stdout.write("last line without newline")
