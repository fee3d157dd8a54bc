# AMC developer entry points.  `make test` works on a fresh machine: it builds .venv and runs the suite.
# Note: ultralytics' validator imports torchvision, and PyPI's torchvision wheels are CUDA builds that only
# load against PyPI's (CUDA) torch; so the venv takes that pair (several GB), which runs fine on a CPU.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

DEMO_DIR ?= demo
DEMO_EPOCHS ?= 15

.PHONY: test test-fast venv demo clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

# The main job until the dashboard lands: make the demo dataset (once), lay out an emulated /opt/ml
# and train with the very program SageMaker runs.  Each run gets its own folder under $(DEMO_DIR)/runs.
demo: $(STAMP)
	@test -f $(DEMO_DIR)/dataset/data.yaml || $(VENV)/bin/amc demo-dataset $(DEMO_DIR)/dataset
	@run=$(DEMO_DIR)/runs/$$(date +%Y%m%d-%H%M%S) && mkdir -p $$run/input/config $$run/input/data && \
	cp -r $(DEMO_DIR)/dataset $$run/input/data/training && \
	echo '{"model": "yolov5n", "epochs": "$(DEMO_EPOCHS)", "imgsz": "160", "batch": "16", "close_mosaic": "5"}' \
		> $$run/input/config/hyperparameters.json && \
	AMC_ML_ROOT=$$run $(PY) container/train && \
	echo "ONNX model: $$run/model/best.onnx"

clean:
	rm -rf $(VENV) .pytest_cache
