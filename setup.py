"""Puts the top-level dashboard.ipynb and README.md into the wheel, as amc_widgets/ui/_data/, so a
non-editable install can serve the dashboard and show its Help; the rest is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROJECT_FILES = ("dashboard.ipynb", "README.md")
TARGET = Path("amc_widgets", "ui", "_data")  # amc_widgets.ui.project_files.PACKAGED


class BuildPyWithProjectFiles(build_py):
    """build_py that also copies the project files (the checkout's files stay the only source)."""

    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads them in the checkout
            return
        target = Path(self.build_lib) / TARGET
        self.mkpath(str(target))
        for name in PROJECT_FILES:
            self.copy_file(str(ROOT / name), str(target / name))


setup(cmdclass={"build_py": BuildPyWithProjectFiles})
