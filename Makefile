# Two commands on a fresh machine (Python 3.11, make, git):
#   make demo   sets up .venv and runs the whole job on the committed sample
#   make test   sets up .venv and runs lint, format check and the test suite
#   make lab    opens the notebooks in JupyterLab (kernel: this .venv)
#   make notebooks  executes the notebooks against ./mlruns into out/notebooks/*.html
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# setuptools' "Editable installation" banner is a notice for package authors, not for users of the repo.
QUIET_PIP := PYTHONWARNINGS="ignore:::setuptools.command.editable_wheel" $(BIN)/python -m pip install --quiet

.PHONY: install demo test bench lab notebooks clean

$(STAMP): pyproject.toml
	@echo "== creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "== upgrading pip"
	@$(QUIET_PIP) --upgrade pip
	@echo "== installing pltv-toolkit and its dev tools (pytest, ruff, JupyterLab, pyspark) into $(VENV): 1-3 min with a warm pip cache, more on a cold one"
	@$(QUIET_PIP) -e '.[dev,spark]'
	@touch $(STAMP)
	@echo "== installed: $(BIN)/pltv, $(BIN)/pytest, $(BIN)/jupyter"

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

# The notebooks read ./pltv.toml like the CLI (default store sqlite:///mlruns/mlflow.db); train once if it is empty.
lab: $(STAMP)
	@test -f mlruns/mlflow.db || $(BIN)/pltv train
	$(BIN)/jupyter lab notebooks/

notebooks: $(STAMP)
	@test -f mlruns/mlflow.db || $(BIN)/pltv train
	$(BIN)/jupyter nbconvert --to html --execute --ExecutePreprocessor.kernel_name=python3 \
		--output-dir out/notebooks notebooks/calibration.ipynb notebooks/event_design.ipynb notebooks/readout.ipynb
	@echo "== executed notebooks: out/notebooks/calibration.html, out/notebooks/event_design.html, out/notebooks/readout.html"

# What the demo, the notebooks and dry runs write: the venv, the default MLflow store, demo-out/, out/, outbox/.
# A spec or a ledger of your own (./eventspec.json, ./pltv_ledger.duckdb) is kept: the ledger is what stops a resend.
clean:
	rm -rf $(VENV) demo-out out mlruns outbox
