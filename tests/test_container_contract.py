"""The container contract as SageMaker documents it: any change here breaks jobs on real SageMaker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from amc_widgets.core import container_contract as contract
from amc_widgets.core.container_contract import MLPaths


def test_layout_under_opt_ml():
    paths = MLPaths.from_env({})
    relative = {name: getattr(paths, name).relative_to("/opt/ml").as_posix() for name in (
        "hyperparameters", "resourceconfig", "inputdataconfig", "model_dir", "output_data_dir", "failure_file",
        "checkpoints")}
    assert relative == {
        "hyperparameters": "input/config/hyperparameters.json",
        "resourceconfig": "input/config/resourceconfig.json",
        "inputdataconfig": "input/config/inputdataconfig.json",
        "model_dir": "model",
        "output_data_dir": "output/data",
        "failure_file": "output/failure",
        "checkpoints": "checkpoints",
    }
    assert paths.channel("training") == Path("/opt/ml/input/data/training")


def test_the_root_moves_with_the_environment(tmp_path):
    paths = MLPaths.from_env({"AMC_ML_ROOT": str(tmp_path)})
    assert paths.failure_file == tmp_path / "output" / "failure"


def test_exit_codes_and_failure_limit():
    codes = (contract.EXIT_COMPLETED, contract.EXIT_FAILED, contract.EXIT_BAD_INPUT, contract.EXIT_STOPPED)
    assert codes == (0, 1, 2, 143)
    assert contract.FAILURE_LIMIT == 1024


def test_the_contract_imports_nothing_heavy():
    """The backends and the tests' SageMaker stand-in read it without the training stack."""
    code = ("import sys, amc_widgets.core.container_contract; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ultralytics', 'ipywidgets', 'boto3')"
            " or m.startswith(('amc_widgets.training', 'amc_widgets.backends', 'amc_widgets.ui'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
