"""A tuning card: status and SageMaker's counters, the objective of each finished child over time with the
best so far, a parallel-coordinates chart of the tuned values against the objective, the children's
table (a row opens that child's job card), Stop, Download best model and Train again with the best."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable

import anywidget
import ipywidgets as w
import traitlets as tl

from amc_widgets.ui.models.jobs import DownloadState
from amc_widgets.ui.models.tuning import TuningCard
from amc_widgets.ui.views.common import button, chart, facts, guarded, import_plotly, message
from amc_widgets.ui.views.jobs import close_order

ESM = r"""
function render({ model, el: root }) {
  root.classList.add("amc-tuning-children");
  const table = document.createElement("table");
  table.className = "amc-tc";
  root.append(table);
  const css = (key) => "amc-tc-" + key.replace(/[^a-zA-Z0-9_-]/g, "_");
  function draw() {
    const columns = model.get("columns");
    const head = document.createElement("tr");
    for (const [key, heading] of columns) {
      const cell = document.createElement("th");
      cell.className = css(key);
      cell.textContent = heading;
      head.append(cell);
    }
    const rows = model.get("rows").map((values) => {
      const row = document.createElement("tr");
      row.className = "amc-tc-row" + (values.best ? " amc-tc-best" : "");
      row.dataset.job = values.name;
      row.title = "Open " + values.name + " on the Jobs tab";
      for (const [key] of columns) {
        const cell = document.createElement("td");
        cell.className = css(key) + (key === "status" ? " amc-tc-status-" + values.status : "");
        cell.textContent = values[key] ?? "";
        row.append(cell);
      }
      row.addEventListener("click", () => model.send({ open: values.name }));
      return row;
    });
    const thead = document.createElement("thead"), tbody = document.createElement("tbody");
    thead.append(head);
    tbody.append(...rows);
    table.replaceChildren(thead, tbody);
  }
  draw();
  model.on("change:rows", draw);
  model.on("change:columns", draw);
  return () => { model.off("change:rows", draw); model.off("change:columns", draw); };
}
export default { render };
"""

CSS = """
.amc-tuning-children { font-size: 13px; overflow-x: auto; max-height: 420px; overflow-y: auto; margin: 4px 0; }
.amc-tc { border-collapse: collapse; width: 100%; }
.amc-tc th { text-align: left; color: #475569; font-weight: 600; padding: 4px 10px; border-bottom: 2px solid #cbd5e1;
             white-space: nowrap; position: sticky; top: 0; background: #fff; }
.amc-tc td { padding: 3px 10px; border-bottom: 1px solid #e2e8f0; white-space: nowrap; }
.amc-tc-row { cursor: pointer; }
.amc-tc-row:hover { background: #f1f5f9; }
.amc-tc-row.amc-tc-best { background: #ecfdf5; font-weight: 600; }
.amc-tc td.amc-tc-best { color: #b45309; font-size: 15px; }
.amc-tc td.amc-tc-name { font-family: ui-monospace, monospace; font-size: 12px; }
.amc-tc-status-Completed { color: #166534; }
.amc-tc-status-Failed { color: #991b1b; }
.amc-tc td.amc-tc-reason { color: #64748b; white-space: normal; min-width: 160px; }
"""


class ChildrenTable(anywidget.AnyWidget):
    """The children, best first, each cell set as text; a click on a row sends ``{"open": name}``."""

    _esm = ESM
    _css = CSS
    columns = tl.List().tag(sync=True)
    rows = tl.List().tag(sync=True)


def counters_html(card: TuningCard) -> str:
    """SageMaker's two sets of counters as small labelled numbers."""
    training, objective = card.counters()

    def group(title: str, counts: dict[str, int]) -> str:
        items = "".join(f'<span class="amc-counter amc-counter-{html.escape(k)}">{html.escape(k)} <b>{v}</b></span>'
                        for k, v in counts.items())
        return f'<span class="amc-counter-group"><span class="amc-fact-label">{html.escape(title)}</span>{items}</span>'

    return (f'<div class="amc-counters">{group("Training jobs", training)}'
            f'{group("Objective", objective)}</div>')


def objective_figure(card: TuningCard) -> w.DOMWidget:
    """Each finished child's objective at the time it ended, and the best so far as a step line."""
    import_plotly()
    import plotly.graph_objects as go

    series = card.objective_over_time()
    objective = card.description.objective
    figure = go.Figure()
    figure.add_scatter(x=series["minutes"], y=series["objective"], text=series["names"], mode="markers",
                       name=f"{objective} of a training job", marker=dict(size=9, color="#0891b2"),
                       hovertemplate="%{text}<br>%{y:.4f} after %{x} min<extra></extra>")
    figure.add_scatter(x=series["minutes"], y=series["best"], mode="lines", line_shape="hv", name="best so far",
                       line=dict(color="#16a34a", width=2))
    figure.update_layout(height=300, template="plotly_white", margin=dict(l=50, r=10, t=30, b=40),
                         title=dict(text="Objective over time", font=dict(size=13)),
                         xaxis=dict(title="minutes since the tuning job started", rangemode="tozero"),
                         yaxis_title=objective,
                         legend=dict(orientation="h", x=0, y=-0.3, yanchor="top"))
    return chart(figure)


def _parcoords(card: TuningCard) -> dict:
    dimensions = card.parallel_dimensions()
    return {"dimensions": dimensions,
            "line": dict(color=dimensions[-1]["values"], colorscale="Viridis",  # the last axis is the scale
                         reversescale=card.description.objective_type == "Minimize")}


def parallel_figure(card: TuningCard) -> w.DOMWidget:
    """One line per scored child across the tuned hyperparameters to the objective, coloured by it."""
    import_plotly()
    import plotly.graph_objects as go

    figure = go.Figure(go.Parcoords(**_parcoords(card)))
    figure.update_layout(height=320, template="plotly_white", margin=dict(l=60, r=60, t=60, b=20),
                         title=dict(text="Hyperparameters against the objective", font=dict(size=13), y=0.98))
    return chart(figure)


class TuningCardView:
    """One tuning card; charts are built by :meth:`draw_charts` (never at page load), then kept up to date."""

    def __init__(self, card: TuningCard, on_stop: Callable[[str], None], on_open_child: Callable[[str], None],
                 on_download_best: Callable[[str], DownloadState], on_train_again: Callable[[TuningCard], None]):
        self.card = card
        self.on_download_best = on_download_best
        self.title = w.HTML()
        self.details = w.HTML()
        self.counters = w.HTML()
        self.failure = w.HTML()
        self.objective_chart = self.parallel_chart = None
        self.charts_button = button("Show charts", icon="line-chart", css="amc-tuning-charts-button",
                                    tooltip="Objective over time and the hyperparameters against it")
        self.charts_box = w.VBox([self.charts_button])
        self.children = ChildrenTable(columns=[list(c) for c in card.columns()], rows=card.children_rows())
        self.children.on_msg(self._on_message)
        self.stop_button = button("Stop", "warning", icon="stop", css="amc-stop-tuning",
                                  tooltip="Stop the tuning job and its running training jobs")
        self.download_button = button("Download best model", "primary", icon="download", css="amc-download-best",
                                      tooltip="Download the best training job's model (its card opens on the Jobs tab)")
        self.again_button = button("Train again with the best hyperparameters", "success", icon="repeat",
                                   css="amc-train-again", tooltip="Fill the Train tab with the best job's values")
        self.progress = w.FloatProgress(min=0, max=1, description="Download", layout=w.Layout(display="none"))
        self.action_status = w.HTML()
        self.action_status.add_class("amc-tuning-action")
        self.widget = w.VBox([self.title, self.details, self.counters, self.failure, self.charts_box,
                              w.HTML('<b style="font-size:13px">Training jobs</b> '
                                     '<span class="amc-fact-label">(best first; click one to open its card)</span>'),
                              self.children,
                              w.HBox([self.stop_button, self.download_button, self.again_button, self.progress]),
                              self.action_status])
        self.widget.add_class("amc-tuning-card")  # not amc-card: that class is a job's card
        self.widget.add_class(f"amc-tuning-{card.name}")
        guard = guarded(self.action_status)
        self.stop_button.on_click(guard(lambda _b: on_stop(card.name)))
        self.download_button.on_click(guard(self._on_download))
        self.again_button.on_click(guard(lambda _b: on_train_again(self.card)))
        self.charts_button.on_click(guard(lambda _b: self.draw_charts()))
        self._on_open_child = on_open_child
        self._download: DownloadState | None = None
        self.links: list = []
        self._charted: list[tuple[str, float]] = []
        self._drawing = threading.Lock()  # the poller updates while the charts may be drawn in the background
        self.update(True)

    @property
    def charts_drawn(self) -> bool:
        return self.objective_chart is not None

    def _on_message(self, _widget, content: dict, _buffers) -> None:
        name = content.get("open") if isinstance(content, dict) else None
        if name in {child.name for child in self.card.description.children}:
            guarded(self.action_status)(self._on_open_child)(name)

    def update(self, changed: bool) -> None:
        """Redraw the header (its duration moves); the rest only when the tuning job ``changed``."""
        card, job = self.card, self.card.description
        self.details.value = facts(card.header())
        if not changed:
            return
        self.title.value = (f'<div style="display:flex;gap:12px;align-items:center">'
                            f'<span class="amc-fact-label">Tuning job</span>'
                            f'<b style="font-size:15px">{html.escape(card.name)}</b>'
                            f'<span class="amc-badge amc-badge-{html.escape(job.status)} amc-tuning-status">'
                            f'{html.escape(job.status)}</span></div>')
        self.counters.value = counters_html(card)
        reason = job.failure_reason or card.error
        self.failure.value = (f'<div class="amc-failure"><b>{"Failure reason" if job.failure_reason else "Note"}:'
                              f'</b> {html.escape(reason)}</div>') if reason else ""
        self.children.columns = [list(c) for c in card.columns()]
        self.children.rows = card.children_rows()
        self.stop_button.disabled = job.is_terminal or job.status == "Stopping"
        has_best = job.best is not None
        self.download_button.disabled = not has_best or bool(self._download and self._download.running)
        self.again_button.disabled = not has_best
        with self._drawing:
            if self.charts_drawn and self._charted != self._scores():
                self._redraw_charts()

    def draw_charts(self) -> None:
        """Build the two charts (plotly loads with the first)."""
        with self._drawing:
            if self.charts_drawn:
                return
            self.objective_chart, self.parallel_chart = objective_figure(self.card), parallel_figure(self.card)
            self.charts_box.children = [self.objective_chart, self.parallel_chart]
            self._charted = self._scores()
        self.charts_button.close()

    def _scores(self) -> list[tuple[str, float]]:
        """What the charts show: the scored children and their objectives."""
        return [(child.name, child.objective) for child in self.card.scored()]

    def _redraw_charts(self) -> None:
        """New charts in place of the old: a tuning job changes only when a child ends, and a chart made now
        reaches the page whole (updates sent to a chart made after the page was shown did not show)."""
        old = (self.objective_chart, self.parallel_chart)
        self.objective_chart, self.parallel_chart = objective_figure(self.card), parallel_figure(self.card)
        self.charts_box.children = [self.objective_chart, self.parallel_chart]
        self._charted = self._scores()
        for chart_widget in old:
            chart_widget.close()

    def _on_download(self, _button: w.Button) -> None:
        best = self.card.description.best
        if best is None:
            return
        state = self.on_download_best(best.name)
        if state is not self._download:
            for link in self.links:
                link.unlink()
            self.links = [w.dlink((state, "fraction"), (self.progress, "value"))]
            state.observe(self._show_download, ["running", "error", "result"])
            self._download = state
        self._show_download()

    def _show_download(self, _change: dict | None = None) -> None:
        state, best = self._download, self.card.description.best
        self.progress.layout.display = "flex" if state.running or state.result else "none"
        self.download_button.disabled = state.running
        if state.error:
            self.action_status.value = message("error", state.error)
        elif state.result is None:
            self.action_status.value = message("info", f"Downloading the model of {best.name}...")
        else:
            onnx = f"; ONNX model: {state.result.onnx}" if state.result.onnx else ""
            self.action_status.value = message("ok", f"Downloaded the best model ({best.name}) to "
                                                     f"{state.result.folder}{onnx}. Its card on the Jobs tab "
                                                     "shows a preview.")

    def close(self) -> None:
        for link in self.links:
            link.unlink()
        if self._download is not None:
            self._download.unobserve(self._show_download)
        for widget in close_order(self.widget):
            widget.close()
