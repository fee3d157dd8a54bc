"""The finished jobs' table: one small browser-side widget (anywidget), whatever the number of jobs.

The model (:class:`~amc_widgets.ui.models.job_table.JobTable`) filters, sorts and pages; this widget
shows the current page, and sends the filter, the sort, the page and a clicked row back. Every cell
is set as text (never as HTML), so names from the backend cannot inject markup.
"""

from __future__ import annotations

from collections.abc import Callable

import anywidget
import ipywidgets as w
import traitlets as tl

from amc_widgets.ui.models.job_table import COLUMNS, JobTable

ESM = r"""
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render({ model, el: root }) {
  root.classList.add("amc-job-table");
  const bar = el("div", "amc-jt-bar");
  const filter = el("input", "amc-jt-filter");
  filter.type = "search";
  filter.placeholder = "Filter by job, dataset, model or status";
  filter.value = model.get("query");
  const count = el("span", "amc-jt-count");
  bar.append(filter, count);
  const table = el("table", "amc-jt");
  const head = el("thead"), body = el("tbody");
  table.append(head, body);
  const pager = el("div", "amc-jt-pager");
  const previous = el("button", "amc-jt-previous", "‹ Newer"), next = el("button", "amc-jt-next", "Older ›");
  const where = el("span", "amc-jt-page");
  pager.append(previous, where, next);
  root.append(bar, table, pager);

  let typing;
  filter.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { model.set("query", filter.value); model.save_changes(); }, 250);
  });
  const turn = (step) => { model.set("page", model.get("page") + step); model.save_changes(); };
  previous.addEventListener("click", () => turn(-1));
  next.addEventListener("click", () => turn(1));

  function drawHead() {
    const row = el("tr");
    for (const [key, heading] of model.get("columns")) {
      const sorted = model.get("sort_by") === key;
      const arrow = sorted ? (model.get("descending") ? " ▼" : " ▲") : "";
      const cell = el("th", sorted ? "amc-jt-sorted" : "", heading + arrow);
      cell.title = "Sort by " + heading.toLowerCase();
      cell.addEventListener("click", () => {
        if (sorted) model.set("descending", !model.get("descending"));
        else { model.set("sort_by", key); model.set("descending", key !== "name" && key !== "dataset"); }
        model.save_changes();
      });
      row.append(cell);
    }
    head.replaceChildren(row);
  }

  function drawBody() {
    const open = new Set(model.get("open_names"));
    const rows = model.get("rows").map((values) => {
      const row = el("tr", "amc-jt-row" + (open.has(values.name) ? " amc-jt-open" : ""));
      row.dataset.job = values.name;
      row.title = "Open " + values.name;
      for (const [key] of model.get("columns")) {
        const cell = el("td", "amc-jt-" + key, values[key]);
        if (key === "status") cell.classList.add("amc-jt-status-" + values[key]);
        row.append(cell);
      }
      row.addEventListener("click", () => model.send({ open: values.name }));
      return row;
    });
    body.replaceChildren(...rows);
    const matching = model.get("matching"), total = model.get("total");
    count.textContent = matching === total ? `${total} finished job${total === 1 ? "" : "s"}`
                                           : `${matching} of ${total} finished jobs`;
    const page = model.get("page"), pages = model.get("page_count");
    where.textContent = `page ${page + 1} of ${pages}`;
    previous.disabled = page <= 0;
    next.disabled = page >= pages - 1;
    pager.style.display = pages > 1 ? "" : "none";
  }

  drawHead();
  drawBody();
  const onHead = () => drawHead();
  const onBody = () => drawBody();
  model.on("change:sort_by", onHead);
  model.on("change:descending", onHead);
  const bodyTraits = ["rows", "open_names", "matching", "total", "page", "page_count"];
  for (const name of bodyTraits) model.on("change:" + name, onBody);
  return () => {
    model.off("change:sort_by", onHead);
    model.off("change:descending", onHead);
    for (const name of bodyTraits) model.off("change:" + name, onBody);
  };
}

export default { render };
"""

CSS = """
.amc-job-table { font-size: 13px; margin: 6px 0; overflow-x: auto; }  /* a narrow column scrolls the table */
.amc-jt-bar { display: flex; gap: 14px; align-items: center; margin-bottom: 6px; }
.amc-jt-filter { width: 340px; padding: 4px 8px; border: 1px solid #cbd5e1; border-radius: 6px; }
.amc-jt-count { color: #475569; }
.amc-jt { border-collapse: collapse; width: 100%; }
.amc-jt th { text-align: left; color: #475569; font-weight: 600; padding: 5px 10px; border-bottom: 2px solid #cbd5e1;
             cursor: pointer; user-select: none; white-space: nowrap; }
.amc-jt th.amc-jt-sorted { color: #0f3d5e; }
.amc-jt td { padding: 4px 10px; border-bottom: 1px solid #e2e8f0; white-space: nowrap; }
.amc-jt-row { cursor: pointer; }
.amc-jt-row:hover { background: #f1f5f9; }
.amc-jt-row.amc-jt-open { background: #e0f2fe; }
.amc-jt td.amc-jt-name { font-family: ui-monospace, monospace; font-size: 12px; }
.amc-jt td.amc-jt-map, .amc-jt td.amc-jt-cost, .amc-jt td.amc-jt-duration { text-align: right; }
.amc-jt-status-Completed { color: #166534; font-weight: 600; }
.amc-jt-status-Failed { color: #991b1b; font-weight: 600; }
.amc-jt-status-Stopped { color: #334155; font-weight: 600; }
.amc-jt-pager { display: flex; gap: 12px; align-items: center; margin-top: 6px; }
.amc-jt-pager button { padding: 2px 10px; }
"""


class JobTableWidget(anywidget.AnyWidget):
    """Shows a page of rows; a click on a row sends ``{"open": name}``."""

    _esm = ESM
    _css = CSS
    columns = tl.List().tag(sync=True)
    rows = tl.List().tag(sync=True)
    query = tl.Unicode("").tag(sync=True)
    sort_by = tl.Unicode("created").tag(sync=True)
    descending = tl.Bool(True).tag(sync=True)
    page = tl.Int(0).tag(sync=True)
    page_count = tl.Int(1).tag(sync=True)
    matching = tl.Int(0).tag(sync=True)
    total = tl.Int(0).tag(sync=True)
    open_names = tl.List().tag(sync=True)


class FinishedJobsView:
    """'Finished jobs': the table, hidden while there are none; a row opens the job's card."""

    def __init__(self, table: JobTable, on_open: Callable[[str], None]):
        self.table = table
        self.on_open = on_open
        self.grid = JobTableWidget(columns=[list(column) for column in COLUMNS])
        self.links = [w.link((table, name), (self.grid, name)) for name in ("query", "sort_by", "descending", "page")]
        self.links += [w.dlink((table, name), (self.grid, name)) for name in ("rows", "page_count", "matching")]
        self.links.append(w.dlink((table, "jobs"), (self.grid, "total"), len))
        self.grid.on_msg(self._on_message)
        self.heading = w.HTML('<h3 class="amc-finished-heading">Finished jobs</h3>')
        self.widget = w.VBox([self.heading, self.grid])
        self.widget.add_class("amc-finished-jobs")
        table.observe(self._show, "jobs")
        self._show()

    def _on_message(self, _widget, content: dict, _buffers) -> None:
        name = content.get("open") if isinstance(content, dict) else None
        if name in self.table.names():
            self.on_open(name)

    def mark_open(self, names: list[str]) -> None:
        self.grid.open_names = names

    def _show(self, _change: dict | None = None) -> None:
        self.widget.layout.display = "flex" if self.table.jobs else "none"
