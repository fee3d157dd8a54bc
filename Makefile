# AMC developer entry points.  `make test` works on a fresh machine: it builds .venv and runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The CPU build of PyTorch (this machine's pip finds it in its local wheel folder). Installed in the same
# pip call as the project, so that no other requirement (torchvision's newest release pins a newer torch)
# can swap it for the multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: test test-fast venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)" -e ".[train,dev]"
	@# PyPI's torchvision wheels are CUDA builds whose operators do not load against a CPU torch.
	@# ultralytics detects and trains without torchvision, so a torchvision that cannot import is removed.
	$(PY) -c "import torchvision" 2>/dev/null || $(PY) -m pip uninstall -q -y torchvision
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache
