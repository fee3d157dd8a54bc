"""The Voila dashboard: models (plain state) in :mod:`.models`, ipywidgets views in :mod:`.views`."""

from __future__ import annotations


def build_dashboard():
    """The dashboard on the local backend; display its ``.widget`` (imports ipywidgets lazily)."""
    from amc_widgets.ui.app import Dashboard

    return Dashboard()
