"""Thin ipywidgets views over the models in :mod:`amc_widgets.ui.models`."""
