"""The Tune tab: dataset, the Train tab's settings as the static ones, the ranges editor, objective,
strategy, budget, warm start, the whole tuning job's cost, Start; then one tuning card per tuning job."""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as w

from amc_widgets.core.errors import user_message
from amc_widgets.core.hyperparameters import HYPERPARAMETERS, HyperparameterError
from amc_widgets.core.instances import THIS_MACHINE
from amc_widgets.core.tuning import (
    MAX_PARALLEL_JOBS,
    MAX_TRAINING_JOBS,
    OBJECTIVE_METRICS,
    SCALINGS,
    STRATEGIES,
    TuningSpecError,
)
from amc_widgets.ui.models.dataset import DatasetModel
from amc_widgets.ui.models.jobs import DownloadState
from amc_widgets.ui.models.parameters import ParametersModel
from amc_widgets.ui.models.tuning import TuneModel, TuningBoard, TuningCard
from amc_widgets.ui.models.weights import KIND_LABELS, WeightsModel
from amc_widgets.ui.views.common import Field, button, guarded, in_background, message, panel
from amc_widgets.ui.views.jobs import close_order
from amc_widgets.ui.views.tuning_card import TuningCardView

STRATEGY_HELP = {
    "Bayesian": "learns from the finished jobs which values to try next (Optuna's TPE on this machine)",
    "Random": "picks values at random: as good as any with few jobs, and fully parallel",
    "Hyperband": "starts many jobs and stops the weaker ones early, by the metric of every epoch",
    "Grid": "trains every combination of the listed values (lists only; max jobs is their number)",
}
CHARTS_DRAWN_AT_ONCE = 3  # the newest cards (and every running one) get charts when the tab is shown


class RangeRowView:
    """One tuned parameter: its name, low / high / scaling or the values to try, Remove, its problem."""

    def __init__(self, row: dict[str, str], on_edit: Callable[[str, str, str], None],
                 on_remove: Callable[[str], None]):
        self.name = name = row["name"]
        label = w.HTML(f'<b title="{html.escape(HYPERPARAMETERS[name].help)}">{html.escape(name)}</b>',
                       layout=w.Layout(width="130px"))
        self.inputs: dict[str, w.Widget] = {}
        if "values" in row:
            self.inputs["values"] = w.Text(description="values", placeholder="comma-separated",
                                           continuous_update=False, layout=w.Layout(width="460px"))
        else:
            for key in ("low", "high"):
                self.inputs[key] = w.Text(description=key, continuous_update=False, layout=w.Layout(width="170px"))
            self.inputs["scaling"] = w.Dropdown(options=SCALINGS, description="scaling", layout=w.Layout(width="230px"))
        for key, widget in self.inputs.items():
            widget.style.description_width = "50px" if key != "scaling" else "60px"
            widget.add_class(f"amc-range-{key}")
        self.remove_button = button("Remove", icon="times", css="amc-remove-range", tooltip=f"Do not tune {name}")
        self.remove_button.layout.min_width = "90px"
        self.error = w.HTML()
        self.error.add_class("amc-field-error")
        self.box = w.VBox([w.HBox([label, *self.inputs.values(), self.remove_button]), self.error])
        self.box.add_class("amc-range")
        self.box.add_class(f"amc-range-{name}")
        self.show(row)
        for key, widget in self.inputs.items():
            widget.observe(lambda change, key=key: on_edit(name, key, change["new"]), "value")
        self.remove_button.on_click(lambda _b: on_remove(name))

    def show(self, row: dict[str, str]) -> None:
        for key, widget in self.inputs.items():
            if widget.value != row[key]:
                widget.value = row[key]

    def show_error(self, problem: str | None) -> None:
        self.error.value = html.escape(problem or "")
        (self.box.add_class if problem else self.box.remove_class)("amc-invalid")

    def close(self) -> None:
        for widget in close_order(self.box):
            widget.close()


class TuneView:
    """The form (shown only when the backend tunes) and the tuning cards, newest first."""

    def __init__(self, model: TuneModel, board: TuningBoard, params: ParametersModel, datasets: DatasetModel,
                 weights: WeightsModel, on_open_child: Callable[[str], None],
                 on_download_best: Callable[[str], DownloadState], on_train_again: Callable[[TuningCard], None],
                 on_edit_train: Callable[[], None]):
        self.model, self.board, self.params, self.datasets, self.weights = model, board, params, datasets, weights
        self.on_open_child, self.on_download_best, self.on_train_again = on_open_child, on_download_best, on_train_again
        self.views: dict[str, TuningCardView] = {}
        self.rows: dict[str, RangeRowView] = {}
        self.shown = False

        self.unavailable = w.HTML()
        self.unavailable.add_class("amc-tune-unavailable")
        self.dataset = Field("tune-dataset", w.Dropdown(options=[], description="Dataset",
                                                        layout=w.Layout(width="420px")))
        self.static = w.HTML()
        self.static.add_class("amc-tune-static")
        self.edit_train = button("Change on the Train tab", icon="pencil", css="amc-tune-edit-train")
        self.edit_train.on_click(lambda _b: on_edit_train())

        self.add_choice = w.Dropdown(description="Parameter", layout=w.Layout(width="300px"))
        self.add_choice.style.description_width = "130px"
        self.add_choice.add_class("amc-tune-add-choice")
        self.add_button = button("Add", icon="plus", css="amc-tune-add")
        self.rows_box = w.VBox([])
        self.rows_box.add_class("amc-ranges")
        self.ranges_error = w.HTML()
        self.ranges_error.add_class("amc-field-error")

        self.objective = Field("tune-objective", w.Dropdown(options=OBJECTIVE_METRICS, description="Objective"))
        self.strategy = Field("tune-strategy", w.Dropdown(options=STRATEGIES, description="Strategy"))
        self.strategy_help = w.HTML(layout=w.Layout(margin="0 0 4px 130px"))
        self.strategy_help.add_class("amc-field-help")
        self.max_jobs = Field("tune-max-jobs", w.BoundedIntText(min=1, max=MAX_TRAINING_JOBS, description="Max jobs",
                                                                layout=w.Layout(width="230px")))
        self.parallel = Field("tune-parallel", w.BoundedIntText(min=1, max=MAX_PARALLEL_JOBS,
                                                                description="Parallel jobs",
                                                                layout=w.Layout(width="230px")))
        self.early = Field("tune-early-stopping", w.Checkbox(description="Early stopping (stop jobs that are clearly "
                                                                         "worse, by the metric of every epoch)",
                                                             indent=False, layout=w.Layout(width="auto")))
        self.warm = Field("tune-warm-start", w.SelectMultiple(options=[], rows=3, description="Warm start from",
                                                              layout=w.Layout(width="420px")),
                          "earlier tuning jobs whose results guide this one (Ctrl + click for several)")
        self.fields = {"dataset": self.dataset, "objective": self.objective, "objective type": self.objective,
                       "strategy": self.strategy, "max jobs": self.max_jobs, "parallel jobs": self.parallel,
                       "early stopping": self.early, "warm start": self.warm}
        self.instance = w.HTML()
        self.cost = w.HTML()
        self.cost.add_class("amc-tune-cost")
        self.start_button = button("Start tuning", "success", icon="play", css="amc-start-tuning")
        self.start_button.layout.min_width = "200px"
        self.start_status = w.HTML()
        self.start_status.add_class("amc-tune-status")

        self.form = w.VBox([
            panel("Dataset and static settings", self.dataset.box, self.static, w.HBox([self.edit_train])),
            panel("Hyperparameters to tune", w.HBox([self.add_choice, self.add_button]), self.rows_box,
                  self.ranges_error),
            panel("Objective and budget", self.objective.box, self.strategy.box, self.strategy_help,
                  w.HBox([self.max_jobs.box, self.parallel.box]), self.early.box, self.warm.box),
            panel("Instance and cost", self.instance, self.cost),
            w.HBox([self.start_button, self.start_status], layout=w.Layout(margin="8px 0")),
        ])
        self.form.add_class("amc-tune-form")
        self.cards_box = w.VBox([])
        self.cards_box.add_class("amc-cards")
        self.cards_box.add_class("amc-tuning-cards")
        self.widget = w.VBox([self.unavailable, self.form, self.cards_box])
        self.widget.add_class("amc-tune")

        self.links = [w.link((model, "objective"), (self.objective.input, "value")),
                      w.link((model, "strategy"), (self.strategy.input, "value")),
                      w.link((model, "max_jobs"), (self.max_jobs.input, "value")),
                      w.link((model, "max_parallel"), (self.parallel.input, "value")),
                      w.link((model, "early_stopping"), (self.early.input, "value")),
                      w.dlink((model, "strategy"), (self.max_jobs.input, "disabled"), lambda s: s == "Grid"),
                      w.dlink((model, "strategy"), (self.strategy_help, "value"),
                              lambda s: html.escape(STRATEGY_HELP[s]))]
        self.warm.input.observe(lambda change: setattr(model, "warm_start", list(change["new"])), "value")
        self.add_button.on_click(guarded(self.start_status)(lambda _b: self._add_range()))
        self.start_button.on_click(guarded(self.start_status)(self._on_start))
        model.observe(self._show_rows, "rows")
        model.observe(self._show_errors, "errors")
        model.observe(self._show_cost, ["rows", "strategy", "max_jobs", "max_parallel"])
        params.observe(self._show_cost, ["instance_type", "instance_count", "spot", "max_hours", "price_of", "errors",
                                         "max_wait_text"])
        params.observe(self._show_static, ["raw", "preset", "instance_type", "instance_count", "spot", "max_hours"])
        model.observe(self._show_static, "rows")
        weights.observe(self._show_static, "kind")
        datasets.observe(self._show_datasets, "datasets")
        self._show_rows()  # the models may be older than the view (a tab is built when first shown)
        self._show_static()
        self._show_cost()
        self._show_datasets()
        self.set_available(False, "Connect to a backend to tune hyperparameters.")

    # --- backend ------------------------------------------------------------------------------
    def set_available(self, available: bool, why: str = "") -> None:
        """The form and cards when the backend tunes, else one line saying why."""
        self.unavailable.value = "" if available else message("info", why)
        self.form.layout.display = self.cards_box.layout.display = "flex" if available else "none"

    def restore(self) -> None:
        """Cards for the tuning jobs not on the page (one listing; their charts wait for the tab)."""
        for card in self.board.restore():
            self.add(card)
        self._show_warm_start()
        if self.shown:
            self.draw_charts()

    def clear(self) -> None:
        self.board.clear()
        for view in self.views.values():
            view.close()
        self.views.clear()
        self.cards_box.children = []
        self._show_warm_start()

    # --- cards --------------------------------------------------------------------------------
    def add(self, card: TuningCard) -> TuningCardView:
        """A card, appended (the CSS shows them newest first; moving a chart's widget would re-make it)."""
        view = TuningCardView(card, self.stop, self.on_open_child, self.on_download_best, self.on_train_again)
        self.views[card.name] = view
        self.cards_box.children = [*self.cards_box.children, view.widget]
        return view

    def stop(self, name: str) -> None:
        self.board.stop(name)
        self.views[name].update(True)

    def on_change(self, card: TuningCard, changed: bool) -> None:
        """Called from the poller thread."""
        view = self.views.get(card.name)
        if view is not None:
            view.update(changed)
            if card.settled:
                self._show_warm_start()

    def on_shown(self) -> None:
        """The tab is shown: the charts of the newest and the running cards are drawn (in the background)."""
        self.shown = True
        in_background(guarded(self.start_status)(self.draw_charts), "amc-tuning-charts")

    def draw_charts(self) -> None:
        for rank, card in enumerate(self.board.cards()):
            view = self.views.get(card.name)
            if view is not None and (rank < CHARTS_DRAWN_AT_ONCE or not card.settled):
                view.draw_charts()

    # --- model -> widgets ---------------------------------------------------------------------
    def _show_rows(self, _change: dict | None = None) -> None:
        rows = {row["name"]: row for row in self.model.rows}
        for name in [n for n in self.rows if n not in rows]:
            self.rows.pop(name).close()
        for name, row in rows.items():
            if name in self.rows:
                self.rows[name].show(row)
            else:
                self.rows[name] = RangeRowView(row, self.model.set_field, self.model.remove)
        self.rows_box.children = [self.rows[name].box for name in rows]
        self.add_choice.options = self.model.available()
        self.add_choice.value = self.add_choice.options[0] if self.add_choice.options else None
        self._show_errors()

    def _show_errors(self, _change: dict | None = None) -> None:
        errors = self.model.errors
        for key, field in self.fields.items():
            if key != "objective type":
                field.show_error(errors.get(key) or (errors.get("objective type") if key == "objective" else None))
        for name, row in self.rows.items():
            row.show_error(errors.get(name))
        self.ranges_error.value = html.escape(errors.get("ranges", ""))

    def _show_cost(self, _change: dict | None = None) -> None:
        self.cost.value = message("info", self.model.cost_text())

    def _show_static(self, _change: dict | None = None) -> None:
        params, tuned = self.params, set(self.model.names())
        raw = params.raw
        shown = {"model": raw["model"], "imgsz": raw["imgsz"], "epochs": raw["epochs"], "batch": raw["batch"],
                 "optimizer": raw["optimizer"], "preset": params.preset,
                 "start from": KIND_LABELS.get(self.weights.kind, self.weights.kind)}
        items = " · ".join(f"{k}: {'tuned' if k in tuned else html.escape(str(v))}" for k, v in shown.items())
        self.static.value = (f'<div class="amc-msg amc-msg-info">Static hyperparameters are the Train tab\'s: '
                             f'{items}; every other value as set there.</div>')
        where = ("this machine" if params.instance_type == THIS_MACHINE
                 else f"{params.instance_count} x {params.instance_type}" + (" (spot)" if params.spot else ""))
        self.instance.value = message("info", f"Each training job runs on {where}, for at most {params.max_hours:g} h "
                                              "(set on the Train tab).")

    def _show_datasets(self, _change: dict | None = None) -> None:
        select = self.dataset.input
        current, names = select.value, self.datasets.names()
        select.options = names
        if names:
            select.value = current if current in names else names[0]

    def _show_warm_start(self) -> None:
        select = self.warm.input
        chosen = select.value
        ended = [card.name for card in self.board.cards() if card.settled]
        select.options = ended
        select.value = tuple(n for n in chosen if n in ended)

    # --- widgets -> model ---------------------------------------------------------------------
    def _add_range(self) -> None:
        if self.add_choice.value:
            self.model.add(self.add_choice.value)

    def _on_start(self, _button: w.Button) -> None:
        try:
            spec = self.model.request(self.dataset.input.value or "", self.weights.kind)
        except TuningSpecError as exc:
            elsewhere = {k: v for k, v in exc.problems.items() if k not in self.fields and k not in self.rows
                         and k != "ranges"}
            items = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in elsewhere.items())
            self.start_status.value = (message("error", "Fix the marked fields" + (" and:" if items else "."))
                                       + (f'<ul class="amc-problems">{items}</ul>' if items else ""))
            return
        except HyperparameterError as exc:
            self.start_status.value = message("error", "Fix the Train tab's marked fields: " + user_message(exc))
            return
        self.start_status.value = message("info", "Checking the weights to start from...")
        model_name = spec.hyperparameters.get("model") or str(self.params.value("model"))
        spec.hyperparameters.update(self.weights.prepare(model_name, spec.dataset))
        self.start_status.value = message("info", "Starting...")
        view = self.add(self.board.start(spec))
        self.start_status.value = message("ok", f"Started the tuning job {view.card.name}")
        if self.shown:
            in_background(guarded(view.action_status)(view.draw_charts), "amc-tuning-charts")
