"""The dashboard notebook and the README: the copies a built wheel carries, else the checkout's own.

setup.py copies the top-level ``dashboard.ipynb`` and ``README.md`` into ``amc_widgets/ui/_data/``
when it builds a wheel; a source checkout (and an editable install of it) reads them where they are.
"""

from __future__ import annotations

from pathlib import Path

PACKAGED = Path(__file__).resolve().parent / "_data"
CHECKOUT = Path(__file__).resolve().parents[2]


def project_file(name: str) -> Path:
    """The wheel's copy of ``name``, else the checkout's; the wheel's path when neither exists."""
    # the package first: an installed copy's parents[2] is site-packages, where any project may drop a README
    for folder in (PACKAGED, CHECKOUT):
        if (folder / name).is_file():
            return folder / name
    return PACKAGED / name
