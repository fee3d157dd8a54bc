"""``amc serve`` / ``make dashboard``: store the demo dataset on a fresh workspace, then run Voila."""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
import tempfile
import warnings
from pathlib import Path

from amc_widgets.backends.base import Backend
from amc_widgets.ui.project_files import project_file

DEMO_DATASET = "demo-solder"
DEFAULT_PORT = 8866
WEBSOCKET_MAX_MESSAGE_BYTES = 200 * 1024 * 1024  # browser uploads travel as one websocket message
DEFAULT_CULL_AFTER = 300  # seconds a page's kernel lives on once the page is gone
CULL_AFTER_ENV = "AMC_CULL_AFTER"
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


def cull_after_from_env(default: int = DEFAULT_CULL_AFTER) -> int:
    """``$AMC_CULL_AFTER`` (whole seconds), else ``default``."""
    value = os.environ.get(CULL_AFTER_ENV, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${CULL_AFTER_ENV} must be a whole number of seconds (got {value!r})") from None


def cull_interval(cull_after: int) -> int:
    """How often kernels are checked: a fifth of the timeout, between 1 s and 60 s, so a gone page's
    kernel ends at most that much after ``cull_after``."""
    return max(1, min(60, cull_after // 5))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def voila_arguments(notebook: Path, port: int, host: str = "127.0.0.1",
                    cull_after: int = DEFAULT_CULL_AFTER, token: str = "") -> list[str]:
    """Voila's command line: the dashboard only, on ``host:port``, with a raised websocket message limit,
    each page's kernel ended ``cull_after`` seconds after its page is gone (0: never); with ``token``,
    every page and socket asks for it (Jupyter Server's token login)."""
    settings = {"websocket_max_message_size": WEBSOCKET_MAX_MESSAGE_BYTES}
    return [str(notebook), f"--port={port}", f"--Voila.ip={host}", "--no-browser",
            f"--Voila.tornado_settings={settings}", "--theme=light",
            "--VoilaConfiguration.multi_kernel_manager_class=amc_widgets.ui.kernels.PageKernelManager",
            f"--MappingKernelManager.cull_idle_timeout={max(0, cull_after)}",
            f"--MappingKernelManager.cull_interval={cull_interval(cull_after)}",
            "--MappingKernelManager.cull_connected=False",  # an open page keeps its kernel, however idle
            "--MappingKernelManager.cull_busy=False"] + ([f"--Voila.token={token}"] if token else [])


def voila_config():
    """The settings a command line cannot carry: the prelaunch hook that lets a page that unloads end
    its kernel at once (culling is the fallback for pages that could not say goodbye)."""
    from traitlets.config import Config

    from amc_widgets.ui.kernels import set_xsrf_cookie

    config = Config()
    config.VoilaConfiguration.prelaunch_hook = set_xsrf_cookie
    return config


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1", notebook: Path = NOTEBOOK,
          cull_after: int = DEFAULT_CULL_AFTER, token: bool = False) -> int:
    """Prepare the local workspace and serve the dashboard until interrupted; off loopback (or with
    ``token``) only to whoever has the generated token, given in the printed URL as Jupyter does."""
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
    secret = secrets.token_urlsafe(32) if token or not is_loopback(host) else ""  # the page can start billed jobs
    print(f"AMC dashboard: http://{host}:{port}/" + (f"?token={secret}" if secret else ""), flush=True)
    if cull_after > 0:
        print(f"A page's kernel ends {cull_after} s after the page is gone (--cull-after)", flush=True)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="traitlets")
    # in-process: the token is on no process's command line
    Voila.launch_instance(argv=voila_arguments(notebook, port, host, cull_after, secret), config=voila_config())
    return 0
