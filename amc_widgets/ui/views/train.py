"""Train panel: dataset, run settings, the hyperparameter editor, presets, instance and cost, Start."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from amc_widgets.core.errors import user_message
from amc_widgets.core.hyperparameters import HYPERPARAMETERS, HyperparameterError
from amc_widgets.core.jobs import JobSpec
from amc_widgets.ui.models.dataset import DatasetModel
from amc_widgets.ui.models.parameters import (
    EDITOR_GROUPS,
    INSTANCE_ERROR_KEY,
    RUN_KEYS,
    ParametersModel,
    editor_keys,
)
from amc_widgets.ui.models.weights import FILE, JOB, KIND_LABELS, KINDS, WeightsModel
from amc_widgets.ui.views.common import Field, button, guarded, message, panel

GROUP_TITLES = {"learning": "Learning rate and optimizer", "loss": "Loss gains", "augmentation": "Augmentation"}


def _shown(widget: w.Widget, value: object) -> object:
    """A parameter's value as its input widget holds it (text fields hold text)."""
    return str(value) if isinstance(widget, w.Text) else value


def _input_for(key: str) -> w.Widget:
    spec = HYPERPARAMETERS[key]
    if spec.kind == "choice":
        return w.Dropdown(options=list(spec.choices), description=key)
    if spec.kind == "bool":
        return w.Checkbox(description=key, indent=False)
    return w.Text(description=key, continuous_update=False, layout=w.Layout(width="260px"))


class TrainView:
    def __init__(self, params: ParametersModel, datasets: DatasetModel, on_start: Callable[[JobSpec], None],
                 weights: WeightsModel):
        self.params = params
        self.datasets = datasets
        self.weights = weights
        self.on_start = on_start
        self.fields: dict[str, Field] = {}

        self.dataset = w.Dropdown(options=[], description="Dataset", layout=w.Layout(width="420px"))
        self.dataset.style.description_width = "130px"
        self.dataset.add_class("amc-train-dataset")
        run_fields = [self._field(key, HYPERPARAMETERS[key].help) for key in RUN_KEYS]
        self.batch_auto = w.Checkbox(description="auto (16 per GPU x instances)", indent=False,
                                     layout=w.Layout(width="auto"))
        self.batch_auto.add_class("amc-batch-auto")
        self.fields["batch"].box.children = (w.HBox([self.fields["batch"].input, self.batch_auto]),
                                             *self.fields["batch"].box.children[1:])

        self.start_from = w.Dropdown(options=[(KIND_LABELS[k], k) for k in KINDS], description="Start from",
                                     layout=w.Layout(width="420px"))
        self.weights_path = w.Text(description=".pt file", placeholder="/path/to/best.pt",
                                   layout=w.Layout(width="600px", display="none"))
        self.weights_job = w.Dropdown(description="Job", layout=w.Layout(width="600px", display="none"))
        self.weights_progress = w.FloatProgress(min=0, max=1, description="Download",
                                                layout=w.Layout(width="420px", display="none"))
        self.weights_note = w.HTML()
        for widget, css in ((self.start_from, "amc-start-from"), (self.weights_path, "amc-weights-path"),
                            (self.weights_job, "amc-weights-job"), (self.weights_note, "amc-weights-note")):
            widget.style.description_width = "130px"
            widget.add_class(css)

        self.preset = w.Dropdown(options=params.presets(), description="Preset")
        self.preset.style.description_width = "130px"
        self.reset_button = button("Reset to preset", icon="undo", css="amc-reset-preset")
        sections = []
        for group in EDITOR_GROUPS:
            fields = [self._field(key) for key in editor_keys(group)]
            sections.append(w.GridBox([f.box for f in fields],
                                      layout=w.Layout(grid_template_columns="repeat(3, 340px)")))
        self.editor = w.Accordion(children=sections, titles=[GROUP_TITLES[g] for g in EDITOR_GROUPS])
        self.editor.add_class("amc-hyperparameters")

        self.preset_path = w.Text(description="Preset file", placeholder="solder-preset.yaml",
                                  layout=w.Layout(width="420px"))
        self.preset_path.style.description_width = "130px"
        self.preset_overwrite = w.Checkbox(description="replace an existing file", indent=False)
        self.save_button = button("Save preset", icon="save", css="amc-save-preset")
        self.load_button = button("Load preset", icon="folder-open", css="amc-load-preset")
        self.preset_status = w.HTML()

        self.instance = w.Dropdown(description="Instance", layout=w.Layout(width="800px"))
        self.instance.style.description_width = "130px"
        self.instance.add_class("amc-instance")
        self.count = w.BoundedIntText(value=1, min=1, max=64, description="Instances", layout=w.Layout(width="220px"))
        self.count.style.description_width = "130px"
        self.spot = w.Checkbox(description="spot (cheaper, may be interrupted and resumed)", indent=False,
                               layout=w.Layout(width="auto"))
        self.hours = w.BoundedFloatText(min=0.1, max=120, step=0.5,
                                        description="Max hours", layout=w.Layout(width="220px"))
        self.hours.style.description_width = "130px"
        self.max_wait = w.Text(description="Max wait hours", placeholder="2 x max hours",
                               tooltip="spot: the most hours the job may take, waiting for capacity and restarts "
                                       "included (at least max hours; at most 672)", layout=w.Layout(width="260px"))
        self.max_wait.style.description_width = "110px"
        self.max_wait.add_class("amc-max-wait")
        self.instance_error = w.HTML()
        self.cost = w.HTML()
        self.cost.add_class("amc-cost")
        self.time_estimate = w.HTML()
        self.time_estimate.add_class("amc-time-estimate")

        self.start_button = button("Start training", "success", icon="play", css="amc-start-training")
        self.start_button.layout.min_width = "200px"
        self.start_status = w.HTML()
        self.start_status.add_class("amc-start-status")

        self.widget = w.VBox([
            panel("Dataset and run", self.dataset, w.GridBox(
                [f.box for f in run_fields], layout=w.Layout(grid_template_columns="repeat(2, 480px)"))),
            panel("Start from", self.start_from, self.weights_path, self.weights_job, self.weights_progress,
                  self.weights_note),
            panel("Hyperparameters", w.HBox([self.preset, self.reset_button]), self.editor,
                  w.HBox([self.preset_path, self.preset_overwrite]), w.HBox([self.save_button, self.load_button]),
                  self.preset_status),
            panel("Instance", self.instance, w.HBox([self.count, self.hours, self.max_wait]), self.spot,
                  self.instance_error, self.cost, self.time_estimate),
            w.HBox([self.start_button, self.start_status], layout=w.Layout(margin="8px 0")),
        ])
        self.widget.add_class("amc-train")

        # the widgets that simply mirror a model value are linked to it; the links are kept to undo them
        self.links = [
            w.link((params, "batch_auto"), (self.batch_auto, "value")),
            w.dlink((params, "preset"), (self.preset, "value")),
            w.link((params, "instance_count"), (self.count, "value")),
            w.link((params, "spot"), (self.spot, "value")),
            w.link((params, "max_hours"), (self.hours, "value")),
            w.dlink((params, "local"), (self.spot, "disabled")),
            w.dlink((params, "local"), (self.hours, "disabled")),
            w.link((weights, "kind"), (self.start_from, "value")),
            w.link((weights, "path"), (self.weights_path, "value")),
            w.dlink((weights, "jobs"), (self.weights_job, "options")),
            w.link((weights, "job"), (self.weights_job, "value")),
            w.dlink((weights.download, "fraction"), (self.weights_progress, "value")),
            w.dlink((weights.download, "running"), (self.weights_progress.layout, "display"),
                    lambda running: "" if running else "none"),
            w.dlink((weights, "kind"), (self.weights_path.layout, "display"), lambda k: "" if k == FILE else "none"),
            w.dlink((weights, "kind"), (self.weights_job.layout, "display"), lambda k: "" if k == JOB else "none"),
            w.link((params, "max_wait_text"), (self.max_wait, "value")),
            w.dlink((params, "spot"), (self.max_wait, "disabled"), lambda spot: not spot),
        ]
        for key, field in self.fields.items():
            self.links.append(w.dlink((params, "raw"), (field.input, "value"),
                                      lambda raw, key=key, widget=field.input: _shown(widget, raw[key])))
            field.input.observe(lambda change, key=key: self._on_field(key, change["new"]), "value")
        params.observe(self._show_errors, "errors")
        params.observe(self._show_instance_choices, "local")
        params.observe(self._show_instance, "instance_type")
        params.observe(self.show_cost, ["local", "instance_type", "instance_count", "spot", "max_hours", "errors",
                                        "price_of"])
        params.observe(self.show_time, ["local", "raw", "errors", "history"])
        self.dataset.observe(self.show_time, "value")
        self.instance.observe(self._on_instance, "value")
        self.dataset.observe(self.show_cost, "value")
        self.reset_button.on_click(lambda _b: self.params.apply_preset(self.preset.value))
        self.save_button.on_click(guarded(self.preset_status)(self._on_save))
        self.load_button.on_click(guarded(self.preset_status)(self._on_load))
        self.start_button.on_click(guarded(self.start_status)(self._on_start))
        datasets.observe(self._show_datasets, "datasets")
        weights.observe(self._on_start_from, "kind")
        self._show_errors()  # the model may be older than the view (a tab is built when first shown)
        self._show_datasets()
        self._show_instance_choices()
        self.show_cost()
        self.show_time()

    def _field(self, key: str, help_text: str = "") -> Field:
        field = Field(key, _input_for(key), help_text,
                      label_width="130px")
        if key not in RUN_KEYS:
            field.input.tooltip = HYPERPARAMETERS[key].help
            if isinstance(field.input, w.Text):
                field.input.layout.width = "250px"
        self.fields[key] = field
        return field

    # --- model -> widgets ---------------------------------------------------------------------
    def _show_errors(self, change: dict | None = None) -> None:
        keys = set(change["old"]) | set(change["new"]) if change else self.fields
        for key in keys:
            if key in self.fields:
                self.fields[key].show_error(self.params.errors.get(key))

    def _show_datasets(self, _change: dict | None = None) -> None:
        current = self.dataset.value
        names = self.datasets.names()
        self.dataset.options = names
        if names:
            self.dataset.value = current if current in names else names[0]

    def _show_instance_choices(self, _change: dict | None = None) -> None:
        """Refill the instance picker for the backend in use. Its selection is cleared first, so the
        refill keeps none (instead of selecting the first choice, which would read as the user's)."""
        self.instance.index = None
        self.instance.options = self.params.instance_choices()
        self._show_instance()

    def _show_instance(self, _change: dict | None = None) -> None:
        if self.params.instance_type in {value for _label, value in self.instance.options}:
            self.instance.value = self.params.instance_type

    def show_cost(self, _change: dict | None = None) -> None:
        problem = self.params.errors.get(INSTANCE_ERROR_KEY)
        self.instance_error.value = message("error", problem or "")
        self.count.disabled = not self.params.allows_several_instances()
        estimate = self.params.cost()
        if self.params.local:
            self.cost.value = message("info", "Trains on this machine: no cost. The batch is 16 images unless set.")
        elif estimate is not None:
            self.cost.value = message("info", "Cost estimate: " + estimate.describe() + self._storage())
        else:
            self.cost.value = ""

    def _storage(self) -> str:
        """Where the chosen dataset goes on the chosen instance (a volume sized for it, or NVMe storage)."""
        info = next((d for d in self.datasets.datasets if d.name == self.dataset.value), None)
        if info is None:
            return ""
        return ". " + self.params.storage_note(info.bytes)

    def show_time(self, _change: dict | None = None) -> None:
        """The local time estimate beside the cost line, with smaller settings when it is long."""
        if not self.params.local:
            self.time_estimate.value = ""
            return
        files = {info.name: info.files for info in self.datasets.datasets}
        found = self.params.time_estimate(self.dataset.value or "", files)
        if found is None:
            self.time_estimate.value = message("info", "Time: estimated once a local job has finished "
                                                       "(a short one, e.g. 3 epochs at 160 px, is enough).")
            return
        self.time_estimate.value = (message("info", "Time: " + found.describe())
                                    + message("info", found.suggestion()))

    # --- widgets -> model ---------------------------------------------------------------------
    def _on_field(self, key: str, value: object) -> None:
        if value != _shown(self.fields[key].input, self.params.value(key)):  # not the model's own value
            self.params.set_value(key, value)

    def _on_instance(self, change: dict) -> None:
        if change["new"] is not None and change["new"] != self.params.instance_type:  # None: being refilled
            self.params.instance_type = change["new"]

    def _on_start_from(self, change: dict) -> None:
        self.weights_note.value = ""  # it described the last start, not this choice
        if change["new"] == JOB:  # the jobs finished since the list was made
            guarded(self.weights_note)(self.weights.refresh)(str(self.params.value("model")))

    def _on_save(self, _button: w.Button) -> None:
        path = self.params.save(self.preset_path.value, overwrite=self.preset_overwrite.value)
        self.preset_status.value = message("ok", f"Saved {path}")

    def _on_load(self, _button: w.Button) -> None:
        self.params.load(self.preset_path.value)
        self.preset_status.value = message("ok", f"Loaded {self.preset_path.value}")

    def _on_start(self, _button: w.Button) -> None:
        try:
            spec = self.params.job_spec(self.dataset.value or "")
        except HyperparameterError as exc:
            self.start_status.value = message("error", "Fix the marked fields: " + user_message(exc))
            return
        self.start_status.value = message("info", "Checking the weights to start from...")
        spec.hyperparameters.update(self.weights.prepare(spec.hyperparameters["model"], spec.dataset))
        self.weights_note.value = message("info", self.weights.note)
        self.start_status.value = message("info", "Starting...")
        self.on_start(spec)
        self.start_status.value = ""
