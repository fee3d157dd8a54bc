"""Tabs whose pages are built when first shown: the page opens with one tab's widgets, not every tab's
(each widget is a message to the browser and a view it renders, hidden or not)."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w


class LazyTabs:
    """A Tab of ``pages`` (title -> a function making that page's widget); a page is made the first time
    its tab is selected, and kept; the ``eager`` ones at once."""

    def __init__(self, pages: dict[str, Callable[[], w.Widget]], selected: int = 0, eager: tuple[str, ...] = ()):
        self.titles = tuple(pages)
        self._makers = list(pages.values())
        self._boxes = [w.VBox() for _ in self._makers]
        self.widget = w.Tab(children=self._boxes, titles=self.titles, selected_index=selected)
        self.widget.observe(self._on_select, "selected_index")
        for index in sorted({selected, *(self.titles.index(title) for title in eager)}):
            self._build(index)

    def is_built(self, title: str) -> bool:
        return bool(self._boxes[self.titles.index(title)].children)

    def select(self, title: str) -> None:
        self.widget.selected_index = self.titles.index(title)

    @property
    def selected(self) -> str | None:
        index = self.widget.selected_index
        return None if index is None else self.titles[index]

    def _on_select(self, change: dict) -> None:
        if change["new"] is not None:
            self._build(change["new"])

    def _build(self, index: int) -> None:
        box = self._boxes[index]
        if not box.children:
            box.children = (self._makers[index](),)
