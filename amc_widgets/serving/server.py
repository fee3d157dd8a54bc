"""``container/train serve``: find the model under ``/opt/ml/model`` (``$AMC_ML_ROOT/model``; a
``model.tar.gz`` there is unpacked first), check it loads, and serve it with uvicorn's workers."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from amc_widgets.core.container_contract import (
    MODEL_ARCHIVE,
    SERVING_PORT,
    SERVING_PORT_ENV,
    SERVING_WORKERS_ENV,
    MLPaths,
)
from amc_widgets.core.errors import AmcError, user_message
from amc_widgets.core.storage import extract_tar_gz
from amc_widgets.serving.app import MODEL_FILE_ENV, THREADS_ENV, load_model

MODEL_FILE = "best.onnx"


def find_model(model_dir: Path) -> Path:
    """best.onnx in ``model_dir``, unpacking the ``model.tar.gz`` there first when needed."""
    model_dir = Path(model_dir)
    if not (model_dir / MODEL_FILE).is_file() and (model_dir / MODEL_ARCHIVE).is_file():
        extract_tar_gz(model_dir / MODEL_ARCHIVE, model_dir)
    found = model_dir / MODEL_FILE
    if not found.is_file():
        raise AmcError(f"No {MODEL_FILE} in {model_dir} (nor a {MODEL_ARCHIVE} holding one)")
    return found


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_args(argv: list[str], environ: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="serve", description=__doc__)
    parser.add_argument("--model", type=Path, default=None,
                        help="folder with best.onnx or model.tar.gz (default: the ML root's model/)")
    parser.add_argument("--host", default="0.0.0.0")  # SageMaker reaches the container from outside it
    parser.add_argument("--port", type=int, default=int(environ.get(SERVING_PORT_ENV) or SERVING_PORT))
    parser.add_argument("--workers", type=int, default=int(environ.get(SERVING_WORKERS_ENV) or usable_cpus()))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    args = parse_args(sys.argv[1:] if argv is None else argv, environ)
    try:
        onnx = find_model(args.model or MLPaths.from_env(environ).model_dir)
        names = load_model(onnx).names  # fail here, once, with a clear line, not in every worker
    except Exception as exc:  # noqa: BLE001 - any load failure ends the server with one line
        print(f"ERROR: cannot serve the model: {user_message(exc)}", file=sys.stderr, flush=True)
        return 1
    workers = max(1, args.workers)
    os.environ[MODEL_FILE_ENV] = str(onnx)  # each worker loads it (uvicorn spawns them)
    os.environ[THREADS_ENV] = str(max(1, usable_cpus() // workers))
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    print(f"AMC serving {onnx} ({len(names)} classes: {shown}) on {args.host}:{args.port}, "
          f"{workers} worker(s)", flush=True)
    import uvicorn

    uvicorn.run("amc_widgets.serving.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=workers, log_level="warning", timeout_graceful_shutdown=10)
    return 0
