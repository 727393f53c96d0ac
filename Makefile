# Fresh machine: `make run` or `make test`; both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Installed first and explicitly so pip takes the local CPU wheel (a bare `torch` pulls CUDA).
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: venv run test lint format typecheck clean distclean label-studio

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install '$(TORCH_SPEC)'
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

# Label Studio (the review queue's server) pins numpy/pyarrow below ours: its own venv. The tests'
# `label_studio` fixture finds it here (tests/label_studio.py).
LS_VENV := .venv-label-studio
LS_STAMP := $(LS_VENV)/.installed
label-studio: $(LS_STAMP)

$(LS_STAMP):
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q 'label-studio==1.23.2'
	touch $(LS_STAMP)

run: venv
	$(BIN)/python -m jobs self-train

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: venv label-studio
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(LS_VENV)
