"""Plain-text helpers shared by the CLI and the dashboard: cleaning and escaping logs, durations, sizes."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

# CSI sequences (colours, cursor moves) and OSC sequences (window titles, links)
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Emoji ultralytics prints, as words: few fonts (none on a bare Linux server) draw them, and browsers show boxes.
GLYPH_WORDS = {"\u2705": "OK", "\u274c": "ERROR", "\u274e": "no", "\U0001f4a1": "Tip:", "\u2754": "?",
               "\U0001f603": ":)"}
# any other emoji (the rocket, "WARNING ⚠️", the stopwatch) is decoration: dropped with the space beside it
_EMOJI = "[\U0001f000-\U0001faff\u2600-\u26ff\u2700-\u27bf\u23e9-\u23fa]"
_GLYPH = re.compile(rf"^(\s*)({_EMOJI})\ufe0f? ?|( ?)({_EMOJI})\ufe0f?|\ufe0f")
# what DejaVu Sans Mono and the usual monospace fonts draw in that range: kept
_DRAWN = {"\u2713", "\u2714", "\u2717", "\u2718", "\u2022"}


def _glyph_text(match: re.Match) -> str:
    at_start = match.group(2) is not None
    space, glyph = (match.group(1), match.group(2)) if at_start else (match.group(3), match.group(4))
    if glyph is None:  # a lone variation selector
        return ""
    if glyph in _DRAWN:
        return match.group(0).replace("\ufe0f", "")
    word = GLYPH_WORDS.get(glyph)
    if not word:
        return space if at_start else ""
    return f"{space}{word} " if at_start and match.group(0).endswith(" ") else f"{space}{word}"


def plain_glyphs(line: str) -> str:
    """Emoji replaced by words (``export success ✅`` -> ``export success OK``) or dropped when decorative."""
    return _GLYPH.sub(_glyph_text, line)


def clean_log_line(line: str) -> str:
    """What a terminal would finally show, in glyphs any font has: ANSI codes gone, only the last
    carriage-return frame, emoji as words."""
    line = _ANSI.sub("", line.rstrip("\r\n"))
    if "\r" in line:
        frames = [frame for frame in line.split("\r") if frame.strip()]
        line = frames[-1] if frames else ""
    return plain_glyphs(_CONTROL.sub("", line))


def log_html(lines: Iterable[str]) -> str:
    """Log lines as a <pre> block, every line HTML-escaped, newest at the bottom, kept scrolled there."""
    body = "\n".join(html.escape(line) for line in lines)
    # column-reverse keeps the scroll position at the bottom as lines arrive, without JavaScript
    return ('<div class="amc-log-box" style="height:220px;overflow:auto;display:flex;flex-direction:column-reverse;'
            'background:#0f172a;border-radius:6px;padding:6px 10px">'
            '<pre class="amc-log" style="margin:0;overflow:visible;flex-shrink:0;color:#e2e8f0;font-size:12px;'
            "font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;"
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
