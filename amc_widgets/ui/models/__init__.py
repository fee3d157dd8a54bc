"""The dashboard's state as plain objects: no widgets, backends and clocks injected, unit-testable."""

from __future__ import annotations

from typing import Any, Callable

Listener = Callable[[str], None]


class Observable:
    """Minimal change notification: views subscribe, models call ``_notify(what)``."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _notify(self, what: str, *_: Any) -> None:
        for listener in list(self._listeners):
            listener(what)
