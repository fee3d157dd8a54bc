# AMC developer entry points.  `make test` works on a fresh machine: it builds .venv and runs the suite.
# Note: ultralytics' validator imports torchvision, and PyPI's torchvision wheels are CUDA builds that only
# load against PyPI's (CUDA) torch; so the venv takes that pair (several GB), which runs fine on a CPU.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: test test-fast venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache
