"""Plain-text helpers shared by the CLI and the dashboard: cleaning and escaping logs, durations, sizes."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

# CSI sequences (colours, cursor moves) and OSC sequences (window titles, links)
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_log_line(line: str) -> str:
    """What a terminal would finally show: ANSI codes gone, only the last carriage-return frame."""
    line = _ANSI.sub("", line.rstrip("\r\n"))
    if "\r" in line:
        frames = [frame for frame in line.split("\r") if frame.strip()]
        line = frames[-1] if frames else ""
    return _CONTROL.sub("", line)


def log_html(lines: Iterable[str]) -> str:
    """Log lines as a <pre> block, every line HTML-escaped, newest at the bottom, kept scrolled there."""
    body = "\n".join(html.escape(line) for line in lines)
    # column-reverse keeps the scroll position at the bottom as lines arrive, without JavaScript
    return ('<div class="amc-log-box" style="height:220px;overflow:auto;display:flex;flex-direction:column-reverse;'
            'background:#0f172a;border-radius:6px;padding:6px 10px">'
            '<pre class="amc-log" style="margin:0;overflow:visible;flex-shrink:0;color:#e2e8f0;font-size:12px;'
            'line-height:1.35;'
            f'white-space:pre-wrap;word-break:break-all">{body}</pre></div>')


def human_duration(seconds: float | None) -> str:
    """``3725`` -> ``1:02:05``; None -> ``-``."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def human_bytes(size: float) -> str:
    """``1536`` -> ``1.5 KB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
