"""Where the dashboard notebook and the README come from: a wheel's copy first, else the checkout."""

from __future__ import annotations

from pathlib import Path

from amc_widgets.ui import project_files
from amc_widgets.ui.app import help_html
from amc_widgets.ui.project_files import project_file

REPO = Path(__file__).resolve().parent.parent


def test_a_checkout_reads_its_own_files():
    assert project_file("dashboard.ipynb") == REPO / "dashboard.ipynb"
    assert project_file("README.md") == REPO / "README.md"


def test_a_wheels_copy_comes_before_the_folder_above_the_package(tmp_path, monkeypatch):
    packaged, above = tmp_path / "site-packages" / "amc_widgets" / "ui" / "_data", tmp_path / "site-packages"
    monkeypatch.setattr(project_files, "PACKAGED", packaged)
    monkeypatch.setattr(project_files, "CHECKOUT", above)
    packaged.mkdir(parents=True)
    (packaged / "README.md").write_text("# AMC")
    (above / "README.md").write_text("# some other project")
    assert project_file("README.md") == packaged / "README.md"
    (packaged / "README.md").unlink()
    assert project_file("README.md") == above / "README.md"
    assert project_file("dashboard.ipynb") == packaged / "dashboard.ipynb"  # neither: the wheel's path


def test_help_says_when_the_readme_is_missing(tmp_path):
    assert "not installed" in help_html(tmp_path / "README.md")
    assert "<h1>AMC — Automated Model Creator</h1>" in help_html()
