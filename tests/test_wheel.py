"""The built wheel, installed without the checkout (what `pip install git+...` on a SageMaker notebook
instance gives): it carries the dashboard notebook and the README, `amc serve` serves the page, and
a local job runs the installed training program.

The fresh venv gets the wheel alone (--no-deps); a .pth line lists the dev venv's site-packages for
the third-party packages.  A path line in a .pth adds the folder but runs none of the .pth files
inside it, so the dev venv's editable finder (which points at the checkout) stays out.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from amc_widgets.core.demo_dataset import make_demo_dataset
from tests.conftest import free_port, stop_process_group, wait_until

REPO = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("dashboard.ipynb", "README.md")

pytestmark = pytest.mark.slow


@dataclass
class Installed:
    venv: Path
    site_packages: Path
    wheel: Path
    cwd: Path  # outside the checkout

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self, **extra: str) -> dict[str, str]:
        """This environment without the checkout on the path, the venv's bin first."""
        env = {key: value for key, value in os.environ.items()
               if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_PATH")}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return {**env, **extra}

    def run(self, *args, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(arg) for arg in args], cwd=self.cwd, env=self.env(**extra_env),
                              capture_output=True, text=True, timeout=300)


def checkout_files(destination: Path) -> None:
    """Copy what a fresh clone would hold (tracked and new, not ignored files): no build/, no .venv."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the work tree is not there
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    checkout_files(tmp / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp / "dist"), str(tmp / "source")], check=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("amc_widgets-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "--no-deps", "-q", str(wheel)], check=True, timeout=300)
    site_packages = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        capture_output=True, text=True, check=True).stdout.strip())
    dev_paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site_packages / "amc-dev-venv.pth").write_text("".join(f"{path}\n" for path in dev_paths))
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    return Installed(venv, site_packages, wheel, cwd)


def test_the_wheel_carries_the_checkouts_notebook_and_readme(installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        for name in PROJECT_FILES:
            assert wheel.read(f"amc_widgets/ui/_data/{name}") == (REPO / name).read_bytes()


def test_the_installed_package_finds_its_files_not_the_checkouts(installed):
    probe = """if True:
        import json, amc_widgets
        from amc_widgets.ui.serve import NOTEBOOK
        from amc_widgets.ui.app import README, help_html
        from amc_widgets.backends.local_runner import container_command
        print(json.dumps({"package": amc_widgets.__file__, "notebook": str(NOTEBOOK), "readme": str(README),
                          "help": help_html(), "container": container_command()}))"""
    result = installed.run(installed.python, "-c", probe)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    inside = installed.site_packages / "amc_widgets"
    assert Path(found["package"]).is_relative_to(inside), found["package"]
    assert Path(found["notebook"]) == inside / "ui" / "_data" / "dashboard.ipynb"
    assert Path(found["readme"]) == inside / "ui" / "_data" / "README.md"
    assert "<h1>AMC — Automated Model Creator</h1>" in found["help"]
    assert "not installed" not in found["help"]
    # local jobs run the installed training program (there is no container/train next to it)
    assert found["container"] == [str(installed.python), "-m", "amc_widgets.training"]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_amc_serve_from_the_wheel_serves_the_dashboard(installed, tmp_path):
    port = free_port()
    log_path = tmp_path / "serve.log"
    # voila's templates and the widgets' JavaScript are data files in the dev venv's prefix; a real
    # install puts them in its own, which serve() puts first on JUPYTER_PATH
    env = installed.env(AMC_HOME=str(tmp_path / "home"), JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"))
    with open(log_path, "w") as log:
        server = subprocess.Popen([str(installed.venv / "bin" / "amc"), "serve", "--port", str(port)],
                                  cwd=installed.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        # one GET only: each page view starts a kernel and runs the notebook
        wait_until(lambda: port_open(port) or server.poll() is not None, timeout=120, what="amc serve")
        assert server.poll() is None, log_path.read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=180) as response:
            status, page = response.status, response.read().decode()
    finally:
        stop_process_group(server)  # voila and its kernel
    served = log_path.read_text()
    assert status == 200, served
    assert "Stored the demo dataset as 'demo-solder'" in served
    assert "application/vnd.jupyter.widget-view+json" in page  # the notebook ran: the dashboard's widget
    assert "amc-app" in page
    assert '"output_type": "error"' not in page and "Traceback" not in page


def test_a_local_job_trains_with_the_installed_program(installed, tmp_path):
    make_demo_dataset(tmp_path / "small", train=16, val=8, size=96, seed=1)
    home = {"AMC_HOME": str(tmp_path / "home")}
    amc = installed.venv / "bin" / "amc"
    stored = installed.run(amc, "datasets", "upload", tmp_path / "small", "--name", "small", **home)
    assert stored.returncode == 0, stored.stdout + stored.stderr
    trained = installed.run(amc, "train", "small", "--model", "yolov5n", "--epochs", "1", "--imgsz", "64",
                            "--batch", "8", "--workers", "0", "--set", "plots=false", "--wait", **home)
    assert trained.returncode == 0, trained.stdout[-4000:] + trained.stderr[-4000:]
    assert "ONNX model checked with onnxruntime" in trained.stdout
    assert list((tmp_path / "home" / "jobs").glob("*/ml/model/best.onnx"))
