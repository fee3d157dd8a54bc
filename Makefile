# AMC developer entry points.  `make test` works on a fresh machine: it builds .venv and runs the suite.
# Note: ultralytics' validator imports torchvision, and PyPI's torchvision wheels are CUDA builds that only
# load against PyPI's (CUDA) torch; so the venv takes that pair (several GB), which runs fine on a CPU.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_TOOLS := node_modules/.package-lock.json
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORT ?= 8866

DEMO_DIR ?= demo
DEMO_EPOCHS ?= 15

.PHONY: test test-fast lint venv demo dashboard clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[train,serve,dev]"
	touch $(STAMP)

# s3rver, the second S3 server of the upload compatibility test, and iam-simulate, the IAM policy
# evaluator of tests/test_iam.py (exact versions from package-lock.json; test-only, never shipped)
$(NODE_TOOLS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# Debian's chromium for the browser tests (Playwright drives it; it never downloads a browser)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: lint $(NODE_TOOLS) $(CHROMIUM)
	$(PY) -m pytest

test-fast: lint $(NODE_TOOLS) $(CHROMIUM)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The main job: the dashboard on the local backend at http://127.0.0.1:$(PORT) (stores the demo
# dataset first when the workspace, $$AMC_HOME or ~/.amc, has none).
dashboard: $(STAMP)
	$(VENV)/bin/amc serve --port $(PORT)

# The container alone: make the demo dataset (once), lay out an emulated /opt/ml and train with the
# very program SageMaker runs.  Each run gets its own folder under $(DEMO_DIR)/runs.
demo: $(STAMP)
	@test -f $(DEMO_DIR)/dataset/data.yaml || $(VENV)/bin/amc demo-dataset $(DEMO_DIR)/dataset
	@run=$(DEMO_DIR)/runs/$$(date +%Y%m%d-%H%M%S) && mkdir -p $$run/input/config $$run/input/data && \
	cp -r $(DEMO_DIR)/dataset $$run/input/data/training && \
	echo '{"model": "yolov5n", "epochs": "$(DEMO_EPOCHS)", "imgsz": "160", "batch": "16", "close_mosaic": "5"}' \
		> $$run/input/config/hyperparameters.json && \
	AMC_ML_ROOT=$$run $(PY) container/train && \
	echo "ONNX model: $$run/model/best.onnx"

clean:
	rm -rf $(VENV) .pytest_cache node_modules
