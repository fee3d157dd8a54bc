"""Keeping a job's processes together (amc_widgets.core.processes), with real processes."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

import psutil
import pytest

from amc_widgets.core.processes import kill_processes, processes_with_environment
from tests.conftest import wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal and procfs: Linux")

# A parent that starts a sleeping child (with or without the parent-death link), prints its pid, waits.
PARENT = """
import subprocess, sys, time
from amc_widgets.core.processes import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         preexec_fn=die_with_parent() if sys.argv[1] == "linked" else None)
print(child.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def sleepers(count: int, **env: str) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, **env})
            for _ in range(count)]


def start_parent(mode: str) -> tuple[subprocess.Popen, int]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True)
    return parent, int(parent.stdout.readline())


@pytest.mark.parametrize("mode, survives", [("linked", False), ("unlinked", True)])
def test_a_child_ends_with_its_parent_killed_hard(mode, survives):
    parent, child = start_parent(mode)
    try:
        parent.kill()  # SIGKILL: no handler, no goodbye
        parent.wait()
        if survives:  # without the link the child lives on: the test can tell
            time.sleep(1)
            assert alive(child)
        else:
            wait_until(lambda: not alive(child), timeout=5, what="the child to end")
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_processes_are_found_by_their_environment():
    mark = f"AMC_TEST_MARK={secrets.token_hex(4)}"
    marked, other = sleepers(2, AMC_TEST_MARK=mark.split("=")[1]), sleepers(1, AMC_TEST_MARK="other")
    try:
        wait_until(lambda: len(processes_with_environment(mark)) == 2, timeout=10, what="both found")
        assert sorted(processes_with_environment(mark)) == sorted(p.pid for p in marked)
    finally:
        for process in marked + other:
            process.kill()
            process.wait()
    assert processes_with_environment(mark) == []  # reaped: gone


def test_kill_processes_kills_every_one_found_also_in_later_rounds():
    first, later = sleepers(3), sleepers(2)
    rounds = [[p.pid for p in first], [p.pid for p in first + later]]  # two more appear while killing
    try:
        killed = kill_processes(lambda: rounds.pop(0) if rounds else [])
        assert sorted(killed) == sorted(p.pid for p in first + later)
        assert [p.wait(timeout=5) for p in first + later] == [-signal.SIGKILL] * 5
    finally:
        for process in first + later:
            process.kill()
