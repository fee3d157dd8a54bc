"""Plain-text logs: no ANSI colour codes and no carriage-return progress frames.

CloudWatch and the dashboard show a log line by line.  :class:`CleanLineWriter` wraps stdout or
stderr, strips escape codes, and drops the in-place redraws of progress bars, letting one frame
through every ``progress_interval`` seconds so that a long epoch still shows signs of life.
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable
from typing import TextIO

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_SPLIT = re.compile(r"(\r\n|\r|\n)")


class CleanLineWriter(io.TextIOBase):
    """A text stream that forwards whole, clean lines to ``target``."""

    def __init__(self, target: TextIO, progress_interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self._target = target
        self._interval = progress_interval
        self._clock = clock
        self._buffer = ""
        self._last_progress = clock()
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:
        return getattr(self._target, "encoding", "utf-8")

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._target.fileno()

    def write(self, text: str) -> int:
        with self._lock:
            out = []
            for piece in _SPLIT.split(ANSI_ESCAPE.sub("", text)):
                if piece in ("\n", "\r\n"):
                    out.append(self._buffer.rstrip() + "\n")
                    self._buffer = ""
                elif piece == "\r":
                    frame, self._buffer = self._buffer.rstrip(), ""
                    if frame and self._clock() - self._last_progress >= self._interval:
                        self._last_progress = self._clock()
                        out.append(frame + "\n")
                else:
                    self._buffer += piece
            if out:
                self._target.write("".join(out))
                self._target.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._target.flush()

    def close_line(self) -> None:
        """Emit a pending partial line (at exit)."""
        with self._lock:
            if self._buffer.strip():
                self._target.write(self._buffer.rstrip() + "\n")
            self._buffer = ""
            self._target.flush()
