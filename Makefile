# Two commands on a fresh machine (Python 3.11, make, git):
#   make demo   sets up .venv and runs the whole job on the committed sample
#   make test   sets up .venv and runs lint, format check and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/train.py
	$(BIN)/python bench/send.py
	$(BIN)/python bench/daily.py
	$(BIN)/python bench/calibration.py

clean:
	rm -rf $(VENV) demo-out
