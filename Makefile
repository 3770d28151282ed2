# Each target sets up what it needs on a fresh machine: a virtual environment in .venv
# with the project installed (editable) plus its test tools.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The main job on the embedded (synthetic) demo data.
demo: $(STAMP)
	$(BIN)/python tuning/run.py --trials 12 --epochs 6 --image-size 96 --retrain-seeds 2 --name demo

# The whole test suite; slow tests included. COVIDXR_DATA points at ../shared/data when present.
test: $(STAMP)
	COVIDXR_DATA=$${COVIDXR_DATA:-$(abspath ../shared/data)} $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy
