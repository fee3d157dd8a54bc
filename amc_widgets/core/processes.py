"""Keeping a training job's processes together (Linux): a child that ends with the process that
started it, and finding the processes that still carry a job's mark in their environment."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for Popen: the child gets ``signum`` when the thread that starts it dies,
    however it dies (``kill -9``, the out-of-memory killer), so start it from the main thread;
    None where the kernel has no such thing (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child, between fork and exec, only calls it
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signum), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0))
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(128 + signum)

    return preexec


def processes_with_environment(entry: str) -> list[int]:
    """This user's processes whose environment holds ``entry`` (``NAME=value``), this one excepted;
    empty without procfs."""
    wanted = os.fsencode(entry)
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if wanted in proc.joinpath("environ").read_bytes().split(b"\0") and int(proc.name) != os.getpid():
                found.append(int(proc.name))
        except (OSError, ValueError):  # gone meanwhile, or another user's
            continue
    return found


def kill_processes(find: Callable[[], list[int]], rounds: int = 3) -> list[int]:
    """SIGKILL what ``find`` returns, again while it finds more (a child forked meanwhile); the pids killed."""
    killed: list[int] = []
    for _ in range(rounds):
        pids = [pid for pid in find() if pid not in killed]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed
