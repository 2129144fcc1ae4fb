# Two commands set everything up on a fresh clone:
#   make demo   -- venv + install + the main job on the embedded digits data
#   make test   -- venv + install + notebooks/library sync checks + all tests
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# torch and torchvision must be installed as a matching pair, first (see README "Install").
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: install demo test test-slow sync nbtest pytest bench clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: settings.ini setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PAIR)
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

demo: install
	$(BIN)/ft-study --preset demo

sync: install
	@bash tools/check_sync.sh $(BIN)

nbtest: install
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2

pytest: install
	$(BIN)/pytest -q tests

test: sync nbtest pytest
	@echo "make test: all checks passed"

test-slow: install
	FT_TEST_FLAGS="slow" $(BIN)/pytest -q tests

bench: install
	$(PY) -m bench

clean-venv:
	rm -rf $(VENV)
