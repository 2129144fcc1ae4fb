# Two commands set everything up on a fresh clone:
#   make demo   -- venv + install + the main job on the embedded digits data
#   make test   -- venv + install + notebooks/library sync checks + all tests
#   make docs   -- the book as a static website in _site/ (open _site/index.html; no Quarto, no network)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# torch and torchvision must be installed as a matching pair, first (see README "Install").
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: install demo test test-slow sync nbtest pytest bench docs docs-check clean-venv

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

# nbdev's own runner; `make test` does not call it, since tests/test_notebooks.py runs every notebook the same
# way (one pytest test per notebook) and running them twice doubled the suite's time.
nbtest: install
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2

pytest: install
	$(BIN)/pytest -q tests

test: sync pytest
	@echo "make test: all checks passed"

test-slow: install
	FT_TEST_FLAGS="slow" $(BIN)/pytest -q tests

bench: install
	$(PY) -m bench

# Every nbs/*.ipynb becomes a page (book order = file names, index.ipynb first); stored outputs, not re-run.
docs: install
	$(PY) tools/build_docs.py --out _site --work _mkdocs

# Opens every page in headless Chromium (Debian package chromium) and checks it renders with its figures.
docs-check: docs
	$(PY) tools/check_docs.py --site _site --work _mkdocs

clean-venv:
	rm -rf $(VENV)
