"""``amc serve`` / ``make dashboard``: store the demo dataset on a fresh workspace, then run Voila."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

from amc_widgets.backends.base import Backend
from amc_widgets.ui.project_files import project_file

DEMO_DATASET = "demo-solder"
DEFAULT_PORT = 8866
WEBSOCKET_MAX_MESSAGE_BYTES = 200 * 1024 * 1024  # browser uploads travel as one websocket message
NOTEBOOK = project_file("dashboard.ipynb")


def ensure_demo_dataset(backend: Backend) -> str | None:
    """Store the synthetic solder-joint dataset as ``demo-solder`` when no dataset is stored yet;
    returns its name, or None when there was something already."""
    if backend.list_datasets():
        return None
    from amc_widgets.core.demo_dataset import make_demo_dataset

    with tempfile.TemporaryDirectory(prefix="amc-demo-") as tmp:
        make_demo_dataset(Path(tmp) / DEMO_DATASET)
        backend.store_dataset(Path(tmp) / DEMO_DATASET, name=DEMO_DATASET)
    return DEMO_DATASET


def voila_arguments(notebook: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """Voila's command line: the dashboard only, on ``host:port``, with a raised websocket message limit."""
    settings = {"websocket_max_message_size": WEBSOCKET_MAX_MESSAGE_BYTES}
    return [str(notebook), f"--port={port}", f"--Voila.ip={host}", "--no-browser",
            f"--Voila.tornado_settings={settings}", "--theme=light"]


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1", notebook: Path = NOTEBOOK) -> int:
    """Prepare the local workspace and serve the dashboard until interrupted."""
    from voila.app import Voila

    from amc_widgets.ui.models.connection import local_backend_from_env

    if not notebook.exists():
        raise FileNotFoundError(f"The dashboard notebook is missing: {notebook}")
    stored = ensure_demo_dataset(local_backend_from_env())
    if stored:
        print(f"Stored the demo dataset as '{stored}'", flush=True)
    # the kernel must be this environment's python: put its kernelspec first
    share = Path(sys.prefix) / "share" / "jupyter"
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(share), os.environ.get("JUPYTER_PATH")]))
    print(f"AMC dashboard: http://{host}:{port}/", flush=True)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="traitlets")
    Voila.launch_instance(argv=voila_arguments(notebook, port, host))
    return 0
