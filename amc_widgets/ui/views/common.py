"""Shared view helpers: page style, messages, labelled fields, safe callbacks, background work."""

from __future__ import annotations

import functools
import html
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from amc_widgets.core.errors import user_message

if TYPE_CHECKING:  # plotly's figure classes take seconds to import: loaded with the first chart
    import plotly.graph_objects as go

CSS = """
<style>
.amc-app { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1e293b;
           max-width: 1280px; margin: 0 auto; }
.amc-app .widget-label, .amc-app .widget-inline-hbox .widget-label { color: #334155; }
.amc-header { background: #0f3d5e; color: #fff; padding: 12px 18px; border-radius: 8px; margin-bottom: 8px; }
.amc-header h1 { font-size: 22px; margin: 0; color: #fff; }
.amc-header .amc-sub { font-size: 13px; opacity: .85; }
.amc-panel { border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px 14px; margin: 6px 0; background: #fff; }
.amc-panel h3 { margin: 2px 0 8px 0; font-size: 16px; color: #0f3d5e; }
.amc-msg { font-size: 13px; padding: 4px 0; }
.amc-msg-error { color: #b91c1c; font-weight: 600; }
.amc-msg-ok { color: #15803d; font-weight: 600; }
.amc-msg-info { color: #334155; }
.amc-field-error { color: #b91c1c; font-size: 12px; min-height: 0; line-height: 1.2; padding-left: 4px; }
.amc-field-help { color: #64748b; font-size: 12px; line-height: 1.2; padding-left: 4px; }
.amc-invalid input, .amc-invalid select { border: 2px solid #dc2626 !important; background: #fef2f2 !important; }
.amc-kv { border-collapse: collapse; font-size: 13px; }
.amc-kv td { padding: 2px 14px 2px 0; vertical-align: top; }
.amc-kv td:first-child { color: #64748b; }
.amc-facts { display: flex; flex-wrap: wrap; gap: 4px 26px; font-size: 13px; margin: 2px 0 4px 0; }
.amc-fact-label { color: #64748b; }
.amc-badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-size: 12px; font-weight: 600; }
.amc-badge-InProgress { background: #dbeafe; color: #1d4ed8; }
.amc-badge-Stopping { background: #fef3c7; color: #92400e; }
.amc-badge-Completed { background: #dcfce7; color: #166534; }
.amc-badge-Failed { background: #fee2e2; color: #991b1b; }
.amc-badge-Stopped { background: #e2e8f0; color: #334155; }
.amc-badge-Creating, .amc-badge-Deleting { background: #fef3c7; color: #92400e; }
.amc-badge-InService { background: #dcfce7; color: #166534; }
.amc-cards { flex-direction: column-reverse !important; }
.amc-card { border: 1px solid #cbd5e1; border-left: 5px solid #0f3d5e; border-radius: 8px; padding: 8px 12px;
            margin: 10px 0; background: #fff; }
.amc-failure { background: #fef2f2; border: 1px solid #fecaca; color: #991b1b; padding: 6px 10px;
               border-radius: 6px; white-space: pre-wrap; font-size: 13px; }
.amc-primary button, button.amc-primary { font-weight: 600; }
.amc-problems li { margin: 2px 0; }
.amc-results { border-top: 1px solid #e2e8f0; margin-top: 8px; padding-top: 4px; }
.amc-results h3 { margin: 4px 0; font-size: 15px; color: #0f3d5e; }
.amc-per-class { border-collapse: collapse; font-size: 13px; margin: 4px 0 8px 0; }
.amc-per-class th, .amc-per-class td { padding: 2px 12px; text-align: right; border-bottom: 1px solid #e2e8f0; }
.amc-per-class th:first-child, .amc-per-class td:first-child { text-align: left; }
.amc-per-class tr:nth-child(2) td { font-weight: 600; }
.amc-gallery { max-height: 900px; overflow-y: auto; }
.amc-gallery > .widget-box, .amc-gallery img { flex-shrink: 0; }  /* scroll, never squash the images */
.amc-tuning-card { border: 1px solid #cbd5e1; border-left: 5px solid #7c3aed; border-radius: 8px; padding: 8px 12px;
                    margin: 10px 0; background: #fff; }
.amc-counters { display: flex; flex-wrap: wrap; gap: 6px 24px; font-size: 13px; margin: 2px 0 6px 0; }
.amc-counter-group { display: flex; gap: 8px; align-items: center; }
.amc-counter { background: #f1f5f9; color: #334155; border-radius: 10px; padding: 1px 8px; }
.amc-counter-Completed, .amc-counter-Succeeded { background: #dcfce7; color: #166534; }
.amc-counter-InProgress, .amc-counter-Pending { background: #dbeafe; color: #1d4ed8; }
.amc-counter-Failed { background: #fee2e2; color: #991b1b; }
.amc-range { margin: 2px 0; }
</style>
"""


# Plotly's toolbar without the logo, the lasso tools and "Share chart...", which uploads to Plotly Cloud;
# responsive: redrawn at the width of its box when the window resizes (chart_fit.FitCharts: when the box does).
CHART_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["sendChartToCloud", "lasso2d", "select2d"],
                "responsive": True}


# One thread at a time imports plotly: the page's loader thread and a chart's first drawing (a job card's
# on the poller thread, a tuning card's in the background) may start together, and two threads importing
# plotly's lazily linked modules at once can deadlock (Python then fails one of the imports).
_PLOTLY_IMPORT = threading.Lock()


def import_plotly() -> None:
    """Imports the plotly modules AMC draws with (seconds, once), under the lock: call it before a view
    imports plotly or a module that does."""
    with _PLOTLY_IMPORT:
        import plotly.graph_objects  # noqa: F401
        import plotly.io  # noqa: F401
        import plotly.subplots  # noqa: F401


def load_chart_classes() -> type:
    """Plotly's FigureWidget (seconds to import: loaded once, when first needed) and AMC's chart class."""
    import_plotly()
    return _chart_class()


@functools.cache
def _chart_class() -> type:
    import plotly.graph_objects as go

    class Chart(go.FigureWidget):
        """A FigureWidget that reaches the page with its whole first state.

        FigureWidget sets its data, layout and toolbar after ipywidgets has opened the widget's comm, as
        updates; a chart made after the page is shown loses them (the page builds the chart's model
        asynchronously and drops what arrives meanwhile), and shows empty axes. This one opens its comm
        once everything is set (:func:`chart`), so the state arrives in the opening message."""

        _open_deferred = True

        def open(self) -> None:
            if not self._open_deferred:
                super().open()

    return Chart


def chart(figure: go.Figure | None = None, **layout: Any) -> go.FigureWidget:
    """A live plotly chart (FigureWidget) with AMC's toolbar settings, as wide as its box (give no width);
    nothing leaves the machine."""
    widget = load_chart_classes()(figure, layout=layout or None)
    widget.layout.autosize = True
    widget._config = CHART_CONFIG  # FigureWidget has no public setter for plotly.js' config
    widget._open_deferred = False
    widget.open()
    return widget


def message(kind: str, text: str) -> str:
    """HTML for a one-line status message (text escaped); kind: ok, error or info."""
    return f'<div class="amc-msg amc-msg-{kind}">{html.escape(text)}</div>' if text else ""


def key_values(rows: dict[str, Any]) -> str:
    """A two-column table of labels and values (escaped)."""
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td><b>{html.escape(str(v))}</b></td></tr>"
                   for k, v in rows.items())
    return f'<table class="amc-kv">{body}</table>'


def facts(rows: dict[str, Any]) -> str:
    """Labels and values in one wrapping row (escaped), for compact card headers."""
    items = "".join(f"<span><span class='amc-fact-label'>{html.escape(str(k))}</span> "
                    f"<b>{html.escape(str(v))}</b></span>"
                    for k, v in rows.items())
    return f'<div class="amc-facts">{items}</div>'


def panel(title: str, *children: w.Widget, css: str = "") -> w.VBox:
    box = w.VBox([w.HTML(f"<h3>{html.escape(title)}</h3>"), *children])
    box.add_class("amc-panel")
    if css:
        box.add_class(css)
    return box


def guarded(status: w.HTML) -> Callable:
    """Decorator for callbacks: any exception becomes a red message in ``status`` instead of vanishing."""

    def wrap(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                status.value = message("error", user_message(exc))
                return None

        return run

    return wrap


def in_background(work: Callable[[], None], name: str) -> threading.Thread:
    """Run long work (uploads, downloads) off the kernel's main thread so the page stays responsive."""
    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    return thread


def button(label: str, style: str = "", icon: str = "", css: str = "", tooltip: str = "") -> w.Button:
    widget = w.Button(description=label, button_style=style, icon=icon, tooltip=tooltip or label,
                      layout=w.Layout(width="auto", min_width="120px"))
    if css:
        widget.add_class(css)
    return widget


class Field:
    """A labelled input with its help line and its problem underneath."""

    def __init__(self, name: str, widget: w.Widget, help_text: str = "", label_width: str = "130px"):
        self.name = name
        self.input = widget
        widget.style.description_width = label_width
        self.error = w.HTML("", layout=w.Layout(margin="0 0 0 " + label_width))
        self.error.add_class("amc-field-error")
        children = [widget]
        if help_text:
            note = w.HTML(html.escape(help_text), layout=w.Layout(margin="0 0 0 " + label_width))
            note.add_class("amc-field-help")
            children.append(note)
        children.append(self.error)
        self.box = w.VBox(children, layout=w.Layout(margin="0 0 4px 0"))
        self.box.add_class(f"amc-field-{name}")

    def show_error(self, problem: str | None) -> None:
        self.error.value = html.escape(problem) if problem else ""
        if problem:
            self.box.add_class("amc-invalid")
        else:
            self.box.remove_class("amc-invalid")
