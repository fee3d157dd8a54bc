"""Kernels of the served dashboard (issue 21): Voila's culling settings from `amc serve`, the rule that
ends a gone page's kernel (injected clock, no server), and the poller ending with its kernel."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from amc_widgets import cli
from amc_widgets.ui import kernels as kernels_module
from amc_widgets.ui import serve as serve_module
from amc_widgets.ui.kernels import PageKernelManager, set_xsrf_cookie
from amc_widgets.ui.serve import DEFAULT_CULL_AFTER, cull_interval, voila_arguments, voila_config


def options(argv: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)


# --- amc serve -> Voila -------------------------------------------------------------------------

def test_voila_arguments_cull_gone_pages_and_keep_open_ones(tmp_path):
    argv = options(voila_arguments(tmp_path / "dashboard.ipynb", 8866, cull_after=300))
    assert argv["VoilaConfiguration.multi_kernel_manager_class"] == "amc_widgets.ui.kernels.PageKernelManager"
    assert argv["MappingKernelManager.cull_idle_timeout"] == "300"
    assert argv["MappingKernelManager.cull_interval"] == "60"
    assert argv["MappingKernelManager.cull_connected"] == "False"
    assert argv["MappingKernelManager.cull_busy"] == "False"
    never = options(voila_arguments(tmp_path / "d.ipynb", 1, cull_after=0))
    assert never["MappingKernelManager.cull_idle_timeout"] == "0"


def test_voila_parses_the_culling_settings_into_its_kernel_manager(tmp_path):
    """The same argv and config through Voila's own parser: the settings reach PageKernelManager."""
    from voila.app import Voila

    app = Voila(config=voila_config())
    app.parse_command_line(voila_arguments(tmp_path / "d.ipynb", 1, cull_after=4))
    config = app.config
    assert config.VoilaConfiguration.multi_kernel_manager_class == "amc_widgets.ui.kernels.PageKernelManager"
    manager = PageKernelManager(config=config)
    assert (manager.cull_idle_timeout, manager.cull_interval, manager.cull_connected, manager.cull_busy) == (
        4, 1, False, False)
    assert config.VoilaConfiguration.prelaunch_hook is set_xsrf_cookie


@pytest.mark.parametrize(("cull_after", "interval"), [(1, 1), (4, 1), (30, 6), (300, 60), (86400, 60)])
def test_cull_interval_is_a_fifth_of_the_timeout_within_1_to_60_s(cull_after, interval):
    assert cull_interval(cull_after) == interval


def serve_call(monkeypatch, argv, env=None):
    """What `amc serve` hands to serve(), without starting Voila."""
    seen = {}
    monkeypatch.setattr(serve_module, "serve", lambda **kwargs: seen.update(kwargs) or 0)
    monkeypatch.delenv("AMC_CULL_AFTER", raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    code = cli.main(["serve", *argv])
    return code, seen


def test_serve_takes_cull_after_from_option_then_environment(monkeypatch, capsys):
    assert serve_call(monkeypatch, [])[1]["cull_after"] == DEFAULT_CULL_AFTER
    assert serve_call(monkeypatch, [], {"AMC_CULL_AFTER": "600"})[1]["cull_after"] == 600
    assert serve_call(monkeypatch, ["--cull-after", "0"], {"AMC_CULL_AFTER": "600"})[1]["cull_after"] == 0
    assert serve_call(monkeypatch, ["--cull-after", "-5"]) == (cli.EXIT_ERROR, {})
    assert "--cull-after must be 0 (never) or more seconds" in capsys.readouterr().err
    assert serve_call(monkeypatch, [], {"AMC_CULL_AFTER": "5min"}) == (cli.EXIT_ERROR, {})
    assert "$AMC_CULL_AFTER must be a whole number of seconds (got '5min')" in capsys.readouterr().err


def test_prelaunch_hook_sets_the_xsrf_cookie_the_unload_beacon_needs():
    read = []

    class Handler:  # tornado's RequestHandler sets the cookie when xsrf_token is first read
        @property
        def xsrf_token(self):
            read.append(True)
            return b"token"

    assert set_xsrf_cookie(Handler(), notebook=None, cwd="") is None and read == [True]


# --- the culling rule ---------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture()
def culler(monkeypatch):
    """A PageKernelManager with cull_idle_timeout=10 and fake kernels; ``ended`` lists culled ids."""
    clock = Clock()
    monkeypatch.setattr(kernels_module, "utcnow", clock)
    manager = PageKernelManager(cull_idle_timeout=10, cull_interval=1)
    ended: list[str] = []

    async def shutdown_kernel(kernel_id, *args, **kwargs):
        ended.append(kernel_id)
        manager._kernels.pop(kernel_id)

    monkeypatch.setattr(manager, "shutdown_kernel", shutdown_kernel)

    def add(kernel_id: str, state: str = "idle"):
        manager._kernels[kernel_id] = SimpleNamespace(execution_state=state, last_activity=clock.now)
        manager._kernel_connections[kernel_id] = 0

    def check(seconds: float = 0.0) -> list[str]:
        clock.advance(seconds)
        for kernel_id in list(manager._kernels):
            asyncio.run(manager.cull_kernel_if_idle(kernel_id))
        return ended

    return SimpleNamespace(manager=manager, clock=clock, ended=ended, add=add, check=check)


def test_connected_page_is_never_culled_however_idle(culler):
    culler.add("open")
    culler.manager.notify_connect("open")
    assert culler.check(1) == [] and culler.check(3600) == []


def test_gone_page_is_culled_after_the_timeout_even_while_its_cards_update(culler):
    """A running job's card keeps sending widget messages (last_activity stays fresh): still culled."""
    culler.add("gone")
    culler.manager.notify_connect("gone")
    culler.check(100)
    culler.manager.notify_disconnect("gone")
    for _ in range(10):
        culler.check(1)
        culler.manager._kernels["gone"].last_activity = culler.clock.now
        assert culler.ended == []
    assert culler.check(1) == ["gone"]


def test_a_reconnect_within_the_timeout_keeps_the_kernel(culler):
    culler.add("flaky")
    culler.manager.notify_connect("flaky")
    culler.manager.notify_disconnect("flaky")
    culler.check(8)
    culler.manager.notify_connect("flaky")
    assert culler.check(60) == []


def test_busy_kernel_of_a_gone_page_waits_until_idle(culler):
    """Busy means rendering the page or answering it; culled the timeout after it was last seen busy."""
    culler.add("rendering", state="busy")
    assert culler.check(60) == []
    culler.manager._kernels["rendering"].execution_state = "idle"
    assert culler.check(9) == []
    assert culler.check(2) == ["rendering"]


def test_never_connected_kernel_is_culled_too(culler):
    culler.add("unseen")
    assert culler.check(0) == [] and culler.check(10.5) == ["unseen"]


def test_dead_kernel_is_ended_at_once(culler):
    culler.add("dead", state="dead")
    culler.manager._kernels["dead"].kernel_name = "python3"
    assert culler.check(0) == ["dead"]


def test_cull_connected_true_culls_open_pages_as_configured(culler):
    culler.manager.cull_connected = True
    culler.add("open")
    culler.manager.notify_connect("open")
    assert culler.check(5) == [] and culler.check(6) == ["open"]


# --- the poller ends with its kernel ------------------------------------------------------------

def test_poller_thread_stops_before_its_kernel_exits(tmp_path):
    """A real ipykernel runs a Poller, then is shut down as a culled page's kernel is: the thread is
    stopped by the time the kernel's exit handlers run (it does not just vanish with the process)."""
    from jupyter_client.manager import start_new_kernel

    report = tmp_path / "poller-at-exit.txt"
    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        code = textwrap.dedent(f"""
            import atexit, pathlib
            from amc_widgets.ui.models.jobs import JobBoard
            from amc_widgets.ui.poller import Poller
            report = pathlib.Path({str(report)!r})
            poller = Poller(JobBoard(lambda: None), on_change=lambda *_: None)
            # registered before the poller's own hook, so it runs after it (atexit is last in, first out)
            atexit.register(lambda: report.write_text("alive" if poller._thread.is_alive() else "stopped"))
            poller.start()
            assert poller._thread.is_alive()
        """)
        reply = client.execute_interactive(code, timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)  # shutdown_request, then up to 5 s before a kill
    assert report.read_text() == "stopped"


def test_python_exit_stops_a_started_poller():
    """The same without a kernel: a plain interpreter exit."""
    import subprocess

    code = textwrap.dedent("""
        import atexit
        from amc_widgets.ui.models.jobs import JobBoard
        from amc_widgets.ui.poller import Poller
        poller = Poller(JobBoard(lambda: None), on_change=lambda *_: None)
        atexit.register(lambda: print("alive" if poller._thread.is_alive() else "stopped"))
        poller.start()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=serve_module.NOTEBOOK.parent)
    assert out.stdout.strip() == "stopped", out.stderr
