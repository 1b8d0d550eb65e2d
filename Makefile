# Two commands do all the set-up on a fresh clone:  make demo  and  make test.
# Each creates .venv, installs torch==2.13.0 first (on this project's machines a local CPU wheel; a plain
# `torch` requirement resolved with nothing installed would pull a multi-GB CUDA build), then the project.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.advrep-installed
# Tests and benchmarks read MNIST from here unless ADVREP_DATA_DIR is set already.
export ADVREP_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(VENV)/bin/advrep train bigan --data digits --config configs/bigan_digits.toml --run-dir runs/demo
	$(VENV)/bin/advrep eval runs/demo
	$(VENV)/bin/advrep sample runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check advrep tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
