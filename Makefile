# Two commands on a fresh Debian/Ubuntu machine with Python 3.10+:
#   make demo   set up (venv, packages, data, extension) and run the main job
#   make test   set up and run the whole test suite
# Both are idempotent: stamps in the venv record what is done.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# The tested torch pair (a CUDA build; it runs on the CPU too).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= dev,encoders,hf
DEBIAN_DATA := fonts-noto-color-emoji unicode-data dataset-fashion-mnist wordnet-base
PYTEST_ARGS ?=
# make bench writes here (refused if not empty: BENCH_ARGS=--force overwrites).
BENCH_OUT ?= bench-results
BENCH_ARGS ?=

SOURCES := setup.py setup.cfg pyproject.toml $(wildcard csrc/*.cpp csrc/*/*.cpp csrc/*/*.cu csrc/*/*.h)

.PHONY: demo test lint format setup data gpu-compile bench clean

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/hypervldd demo

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

setup: $(VENV)/.installed $(VENV)/.data

$(BIN)/python:
	@bash tools/bootstrap_system.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(PIP) install --upgrade pip
	$(PIP) install $(TORCH_SPEC)
	touch $@

# The package itself; rebuilt (extension included) when the build inputs change.
$(VENV)/.installed: $(VENV)/.torch $(SOURCES)
	$(PIP) install ninja setuptools wheel
	$(PIP) install --no-build-isolation -e ".[$(EXTRAS)]"
	touch $@

# Debian data packages for the built-in datasets, when apt-get can be used.
$(VENV)/.data: | $(BIN)/python
	@bash tools/install_debian_data.sh $(DEBIAN_DATA)
	touch $@

data: $(VENV)/.data

# Compile every Triton GPU kernel ahead of time for sm_80 and sm_90 with Triton's own
# ptxas (no GPU needed; the kernels themselves run in the tests under the interpreter).
gpu-compile: setup
	$(BIN)/python tools/compile_gpu.py

bench: setup
	$(BIN)/python benchmarks/run_all.py --out $(BENCH_OUT) $(BENCH_ARGS)

clean:
	rm -rf build hypervldd/_C*.so *.egg-info
