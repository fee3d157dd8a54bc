"""The dashboard's state as traitlets models: no widgets, backends and clocks injected, unit-testable.
Views observe the traits they show and link their widgets to them."""

from __future__ import annotations

import traitlets as tl


class Transfer(tl.HasTraits):
    """One upload or download as its progress bar shows it: how far, whether it runs, what failed."""

    done = tl.Int(0)
    total = tl.Int(0)
    fraction = tl.Float(0.0, help="done / total, 1.0 once finished")
    running = tl.Bool(False)
    error = tl.Unicode("")

    def clear(self) -> None:
        """Forget the last outcome (a running transfer keeps running)."""
        with self.hold_trait_notifications():
            self.done = self.total = 0
            self.fraction = 0.0
            self.error = ""

    def start(self) -> None:
        with self.hold_trait_notifications():
            self.clear()
            self.running = True

    def progress(self, done: int, total: int) -> None:
        """The backends' ProgressCallback; a total of 0 (unknown) leaves the bar where it is."""
        with self.hold_trait_notifications():
            self.done, self.total = done, total
            if total:
                self.fraction = done / total
