"""The dashboard under load: a real Voila server on 127.0.0.1 and a real headless chromium page.

1. Log line -> screen latency on the local backend.  A job's stand-in container prints
   ``tick <seq> <time.time()>`` at random 0.2-1.5 s intervals; in the page a MutationObserver
   notes Date.now() when each tick first appears in the card's log (the DOM update; the frame is
   painted right after).  Latency = seen - printed, one machine, one clock.  Target: p95 <= 0.5 s.
2. CPU with an idle page: the Jupyter kernel's CPU (% of one core, psutil over --window
   seconds) with (a) finished jobs listed at page load and (b) cards of jobs in progress whose
   containers print nothing during the window (one slot per job, so all of them are training).
   Target: kernel <= 2 %.  The Voila server's and chromium renderers' CPU are shown for context.
3. Page open after weeks of use: the time from asking for the page to its first widget, with 0,
   30 and 200 finished jobs in the workspace (made by tests/job_history.py in a blink, without
   training), median of --opens; the ratio 200 / 0 (target <= 1.5, and the first widget <= 5 s),
   then the time from clicking the Jobs tab (built with the page, shown on the click) to its table
   listing them all, and the kernel's memory with 200 finished jobs.  The peer: a notebook of one
   widget served the same way (Voila's floor on this machine).

Each measurement has its own temporary AMC_HOME and Voila server; jobs are started from this
process with the local backend and a stand-in container written to the temporary folder.
Everything started here (Voila and its kernel, chromium, job runners and containers) is stopped
at the end, also on Ctrl-C and errors.

    .venv/bin/python bench/dashboard.py [--samples 100] [--window 30] [--cards 20] [--opens 3]
                                        [--only latency|idle|open]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
from playwright.sync_api import Browser, Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amc_widgets.backends.local import LocalBackend  # noqa: E402
from amc_widgets.backends.local_jobs import JobFiles  # noqa: E402
from amc_widgets.core.demo_dataset import make_demo_dataset  # noqa: E402
from amc_widgets.core.jobs import COMPLETED, IN_PROGRESS, TRAINING, JobSpec  # noqa: E402
from tests.job_history import make_finished_jobs  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
USER = "bench"
DATASET = "demo-solder"
LATENCY_TARGET_S = 0.5
KERNEL_CPU_TARGET = 2.0  # % of one core
OPEN_TARGET_S = 5.0  # first widget, whatever the history
OPEN_RATIO_TARGET = 1.5  # first widget with 200 finished jobs / with none
WARMUP_S = 3.0  # ticks printed this soon after the observer started are not counted
SETTLE_S = 10.0  # after the cards are drawn: rendering done, the poll backoff at its slowest

CONTAINER = '''\
"""The bench's stand-in training container (run by the local job runner with AMC_ML_ROOT set).

ticks SEED   `tick <seq> <time.time()>` every 0.2-1.5 s, until SIGTERM
quiet        one line, then silence until SIGTERM
done EPOCHS  EPOCHS metrics lines, then exit 0 (the job completes, without a model)
"""
import random
import signal
import sys
import time

from amc_widgets.core.metrics import format_metrics_line

signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
mode = sys.argv[1]
if mode == "ticks":
    rng = random.Random(int(sys.argv[2]))
    seq = 0
    while True:
        time.sleep(rng.uniform(0.2, 1.5))
        seq += 1
        print(f"tick {seq} {time.time():.6f}", flush=True)
elif mode == "quiet":
    print("started; nothing more to say", flush=True)
    while True:
        signal.pause()
else:
    epochs = int(sys.argv[2])
    for epoch in range(1, epochs + 1):
        progress = epoch / epochs
        print(format_metrics_line({"epoch": epoch, "epochs": epochs, "train_box_loss": 2 - progress,
                                   "val_box_loss": 2.1 - progress, "precision": 0.9 * progress,
                                   "recall": 0.8 * progress, "mAP50": 0.85 * progress,
                                   "mAP50-95": 0.5 * progress}), flush=True)
'''

# Records, per tick, [printed, first seen] (seconds since the epoch) in window.__amcTicks.
OBSERVE_TICKS = """() => {
    const ticks = window.__amcTicks = {};
    const scan = () => {
        const now = Date.now() / 1000;
        for (const log of document.querySelectorAll('.amc-log')) {
            for (const m of log.textContent.matchAll(/tick (\\d+) (\\d+\\.\\d+)/g)) {
                if (!(m[1] in ticks)) ticks[m[1]] = [Number(m[2]), now];
            }
        }
    };
    new MutationObserver(scan).observe(document.body, {childList: true, subtree: true, characterData: true});
    scan();
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}")


def descendants(process: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return process.children(recursive=True)
    return []


def command_line(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(process.cmdline())
    return ""


class Workspace:
    """A temporary AMC_HOME holding the demo dataset, and the jobs this process starts on it."""

    def __init__(self, root: Path, container: Path, slots: int):
        self.home = root / "home"
        self.container = container
        self.slots = slots
        self.jobs: list[str] = []
        make_demo_dataset(root / "demo", train=16, val=8, size=128, seed=1)
        self.backend().store_dataset(root / "demo", name=DATASET)

    def backend(self, *container_args: str) -> LocalBackend:
        return LocalBackend(home=self.home, user=USER, max_concurrent_jobs=self.slots,
                            container_command=[sys.executable, str(self.container), *container_args])

    def start(self, name: str, *container_args: str) -> None:
        self.backend(*container_args).start_job(JobSpec(dataset=DATASET, hyperparameters={}, name=name))
        self.jobs.append(name)

    def wait_all(self, done, what: str, timeout: float = 120) -> None:
        backend = self.backend()
        wait_until(lambda: all(done(backend.describe_job(name)) for name in self.jobs), timeout, what, every=0.5)

    def stop_jobs(self) -> None:
        """Stop the jobs still running (each runner stops its container); kill the runners that
        linger, with their containers (each runner leads a process group of its own)."""
        backend = self.backend()
        runners = []
        for name in self.jobs:
            files = JobFiles(self.home / "jobs" / name)
            pid = files.runner_pid()
            if pid and files.runner_alive():  # alive and ours: its pid was not reused
                with contextlib.suppress(psutil.NoSuchProcess):
                    runners.append(psutil.Process(pid))
                with contextlib.suppress(Exception):
                    backend.stop_job(name)
        _gone, alive = psutil.wait_procs(runners, timeout=15)
        for runner in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(runner.pid, signal.SIGKILL)


# The peer of "page open": Voila's floor, a notebook of one widget served the same way (``serve``'s settings)
FLOOR_NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [
        "import ipywidgets as w\n", "box = w.VBox([w.HTML('One widget')])\n", "box.add_class('amc-app')\n", "box"]}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5}
SERVE_NOTEBOOK = ("import sys; from pathlib import Path; from amc_widgets.ui.serve import serve; "
                  "sys.exit(serve(port=int(sys.argv[1]), notebook=Path(sys.argv[2])))")


class Voila:
    """`amc serve` on a workspace (or the same server on another ``notebook``): Voila in its own process
    group, and the kernels it starts."""

    def __init__(self, workspace: Workspace, log: Path, notebook: Path | None = None):
        self.url = f"http://127.0.0.1:{free_port()}/"
        self.log = open(log, "w")
        port = self.url.rsplit(":", 1)[1].strip("/")
        command = ([sys.executable, "-c", SERVE_NOTEBOOK, port, str(notebook)] if notebook else
                   [sys.executable, "-m", "amc_widgets.cli", "serve", "--port", port])
        self.process = subprocess.Popen(
            command,
            env={**os.environ, "AMC_HOME": str(workspace.home), "AMC_USER": USER, "PYTHONPATH": str(REPO)},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.server = psutil.Process(self.process.pid)
        try:
            wait_until(self._answers, 90, "Voila to start")
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        """Any HTTP answer will do; not the dashboard's URL: each GET of it starts a kernel."""
        if self.process.poll() is not None:
            raise RuntimeError(f"Voila exited; see {self.log.name}")
        try:
            urllib.request.urlopen(self.url + "favicon.ico", timeout=2)
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def kernel(self) -> psutil.Process:
        """The one kernel running the dashboard (a page must be open)."""
        def find():
            found = [p for p in descendants(self.server) if "ipykernel" in command_line(p)]
            return found[0] if len(found) == 1 else None
        return wait_until(find, 60, "exactly one kernel")

    def stop(self) -> None:
        """Voila and, should they outlive it, its kernels (they run in sessions of their own)."""
        children = descendants(self.server)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        _gone, alive = psutil.wait_procs(children, timeout=5)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.log.close()


@contextlib.contextmanager
def dashboard(browser: Browser, workspace: Workspace, log: Path) -> Iterator[tuple[Voila, Page]]:
    """Voila on ``workspace`` and a page showing its Jobs tab."""
    voila = Voila(workspace, log)
    page = None
    try:
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(voila.url)
        page.wait_for_selector(".amc-app")
        page.get_by_role("tab", name="Jobs").click()
        yield voila, page
    finally:
        if page is not None:
            page.close()
        voila.stop()


def chromium_renderers() -> list[psutil.Process]:
    return [p for p in descendants(psutil.Process()) if "--type=renderer" in command_line(p)]


def cpu_percent(processes: list[list[psutil.Process]], window: float) -> list[float]:
    """CPU of each group of processes over ``window`` seconds, as % of one core."""
    def busy(group):
        return sum(t.user + t.system for t in (p.cpu_times() for p in group))

    before, start = [busy(g) for g in processes], time.monotonic()
    time.sleep(window)
    after, wall = [busy(g) for g in processes], time.monotonic() - start
    return [100 * (a - b) / wall for a, b in zip(after, before)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure_latency(browser: Browser, root: Path, container: Path, samples: int) -> tuple[list[float], float]:
    """The latencies, and how busy the whole machine was meanwhile (% of all cores)."""
    workspace = Workspace(root, container, slots=1)
    try:
        workspace.start("bench-ticks", "ticks", "1")
        with dashboard(browser, workspace, root / "voila.log") as (_voila, page):
            page.wait_for_selector(".amc-job-bench-ticks .amc-log")
            page.evaluate(OBSERVE_TICKS)
            counted_from = time.time() + WARMUP_S
            psutil.cpu_percent()

            def collected():
                ticks = page.evaluate("() => Object.values(window.__amcTicks)")
                fresh = [seen - printed for printed, seen in ticks if printed >= counted_from]
                return fresh if len(fresh) >= samples else None

            latencies = wait_until(collected, WARMUP_S + samples * 3 + 60, f"{samples} ticks on screen", every=1)
            machine = psutil.cpu_percent()
    finally:
        workspace.stop_jobs()
    print(f"  latency: {len(latencies)} samples", flush=True)
    return latencies, machine


def measure_idle(browser: Browser, root: Path, container: Path, cards: int, window: float,
                 running: bool) -> list[float]:
    """CPU with ``cards`` idle cards on the page: kernel, Voila server, chromium renderers (% of one
    core), and the whole machine (% of all cores: other work on it skews the measurements)."""
    workspace = Workspace(root, container, slots=cards)
    kind = "quiet" if running else "done"
    try:
        for number in range(1, cards + 1):
            workspace.start(f"bench-{kind}-{number:02d}", *(["quiet"] if running else ["done", "20"]))
        if running:
            workspace.wait_all(lambda job: job.secondary_status == TRAINING, "every job to be training")
        else:
            workspace.wait_all(lambda job: job.status == COMPLETED, "every job to complete")
        with dashboard(browser, workspace, root / "voila.log") as (voila, page):
            if running:
                page.wait_for_function(
                    """([n, status, text]) => [...document.querySelectorAll('.amc-card')].filter(card =>
                           card.querySelector('.amc-status')?.textContent === status
                           && card.querySelector('.amc-log')?.textContent.includes(text)).length === n""",
                    arg=[cards, IN_PROGRESS, "nothing more to say"])
            else:
                page.wait_for_function("n => document.querySelector('.amc-jt-count')?.textContent === "
                                       "`${n} finished jobs`", arg=cards)
            kernel = voila.kernel()
            time.sleep(SETTLE_S)
            psutil.cpu_percent()
            usage = cpu_percent([[kernel], [voila.server], chromium_renderers()], window)
            usage.append(psutil.cpu_percent())
    finally:
        workspace.stop_jobs()
    print(f"  {cards} {'quiet running cards' if running else 'finished jobs'}: measured", flush=True)
    return usage


@contextlib.contextmanager
def opened_page(browser: Browser, url: str) -> Iterator[tuple[Page, float]]:
    """A new page of ``url`` and the seconds from asking for it to its first widget; closed after."""
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    page.set_default_timeout(180_000)
    try:
        start = time.monotonic()
        page.goto(url)
        page.wait_for_selector(".amc-app")
        yield page, time.monotonic() - start
    finally:
        page.close()


def measure_floor(browser: Browser, root: Path, container: Path, opens: int) -> float:
    """Median seconds from asking for a one-widget notebook, served as the dashboard is, to its widget."""
    workspace = Workspace(root, container, slots=1)
    notebook = root / "one-widget.ipynb"
    notebook.write_text(json.dumps(FLOOR_NOTEBOOK))
    voila = Voila(workspace, root / "voila.log", notebook)
    seconds = []
    try:
        for _ in range(opens):
            with opened_page(browser, voila.url) as (_page, first_widget):
                seconds.append(first_widget)
    finally:
        voila.stop()
    print(f"  one-widget notebook (Voila's floor): {statistics.median(seconds):.2f} s", flush=True)
    return statistics.median(seconds)


def measure_page_open(browser: Browser, root: Path, container: Path, finished: int, opens: int
                      ) -> tuple[float, float, float]:
    """Median seconds from asking for the page to its first widget with ``finished`` ended jobs in the
    workspace (a new page and kernel each time); median seconds from clicking the Jobs tab (built with the
    page, shown on the click) to its table listing them all; the kernel's resident memory (MiB) meanwhile."""
    workspace = Workspace(root, container, slots=1)
    make_finished_jobs(workspace.home, USER, finished, dataset=DATASET)
    voila = Voila(workspace, root / "voila.log")
    seconds, jobs_tab, memory = [], [], 0.0
    try:
        for _ in range(opens):
            with opened_page(browser, voila.url) as (page, first_widget):
                seconds.append(first_widget)
                start = time.monotonic()
                page.get_by_role("tab", name="Jobs").click()
                page.wait_for_function("n => (document.querySelector('.amc-jt-count')?.textContent || '')"
                                       ".startsWith(`${n} finished job`)", arg=finished)
                jobs_tab.append(time.monotonic() - start)
                if not memory:  # the first page's kernel (each page gets its own)
                    memory = voila.kernel().memory_info().rss / 2**20
    finally:
        voila.stop()
    print(f"  page open with {finished} finished jobs: {statistics.median(seconds):.2f} s, Jobs tab "
          f"{statistics.median(jobs_tab):.2f} s", flush=True)
    return statistics.median(seconds), statistics.median(jobs_tab), memory


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100, help="latency samples to collect (default 100)")
    parser.add_argument("--window", type=float, default=30.0, help="CPU measuring window in seconds (default 30)")
    parser.add_argument("--cards", type=int, default=20, help="idle cards on the page (default 20)")
    parser.add_argument("--opens", type=int, default=3, help="page opens per workspace size (default 3)")
    parser.add_argument("--only", choices=("latency", "idle", "open"), help="one measurement only")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} is missing: apt-get install chromium")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on SIGTERM as on Ctrl-C

    with tempfile.TemporaryDirectory(prefix="amc-bench-dashboard-") as tmp, sync_playwright() as playwright:
        tmp = Path(tmp)
        container = tmp / "container.py"
        container.write_text(CONTAINER)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        rows = []
        try:
            if args.only in (None, "latency"):
                print(f"log line -> screen latency, {args.samples} samples...", flush=True)
                latencies, machine = measure_latency(browser, tmp / "latency", container, args.samples)
                rows += [
                    ("log -> screen latency p50", f"{statistics.median(latencies):.3f} s", "", ""),
                    ("log -> screen latency p95", f"{percentile(latencies, 0.95):.3f} s",
                     f"<= {LATENCY_TARGET_S:g} s", verdict(percentile(latencies, 0.95), LATENCY_TARGET_S)),
                    ("log -> screen latency max", f"{max(latencies):.3f} s", "", ""),
                    ("  whole machine busy meanwhile", f"{machine:.0f} %", "", ""),
                ]
            if args.only in (None, "idle"):
                print(f"CPU with {args.cards} finished jobs, then {args.cards} idle cards, {args.window:g} s "
                      "windows...", flush=True)
                for label, running in ((f"{args.cards} finished jobs", False),
                                       (f"{args.cards} quiet running cards", True)):
                    kernel, server, renderers, machine = measure_idle(
                        browser, tmp / label.replace(" ", "-"), container, args.cards, args.window, running)
                    rows += [(f"kernel CPU, {label}", f"{kernel:.1f} %", f"<= {KERNEL_CPU_TARGET:g} %",
                              verdict(kernel, KERNEL_CPU_TARGET)),
                             (f"  voila server CPU, {label}", f"{server:.1f} %", "", ""),
                             (f"  chromium renderer CPU, {label}", f"{renderers:.1f} %", "", ""),
                             (f"  whole machine busy, {label}", f"{machine:.0f} %", "", "")]
            if args.only in (None, "open"):
                print(f"page open with 0, 30 and 200 finished jobs, median of {args.opens}...", flush=True)
                floor = measure_floor(browser, tmp / "open-floor", container, args.opens)
                opened = {count: measure_page_open(browser, tmp / f"open-{count}", container, count, args.opens)
                          for count in (0, 30, 200)}
                rows.append(("first widget, a one-widget notebook (Voila's floor)", f"{floor:.2f} s", "", ""))
                for count, (seconds, jobs_tab, _memory) in opened.items():
                    rows.append((f"first widget, {count} finished jobs", f"{seconds:.2f} s",
                                 f"<= {OPEN_TARGET_S:g} s", verdict(seconds, OPEN_TARGET_S)))
                    rows.append(("  then the Jobs tab listing them", f"{jobs_tab:.2f} s", "", ""))
                ratio = opened[200][0] / opened[0][0]
                rows += [("first widget, 200 / 0 finished jobs", f"{ratio:.2f}", f"<= {OPEN_RATIO_TARGET:g}",
                          verdict(ratio, OPEN_RATIO_TARGET)),
                         ("first widget, 200 finished jobs / Voila's floor", f"{opened[200][0] / floor:.2f}", "",
                          ""),
                         ("  kernel memory, 200 finished jobs", f"{opened[200][2]:.0f} MiB",
                          f"(0 jobs: {opened[0][2]:.0f} MiB)", "")]
        finally:
            with contextlib.suppress(Exception):  # after Ctrl-C chromium may be gone already
                browser.close()

    widths = [max(len(row[i]) for row in [("measurement", "value", "target", "result"), *rows]) for i in range(4)]
    print()
    for row in [("measurement", "value", "target", "result"), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
