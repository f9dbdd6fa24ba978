# The two commands the README starts with, plus the checks CI runs.
# Needs only Python 3.11+ and make: the first target run builds .venv with everything in it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Django 6 needs Python 3.12 or later: pyenv's 3.12 where there is one, else python3.12.
PYTHON312 ?= $(shell p=$$(ls -d "$$(pyenv root 2>/dev/null)"/versions/3.12.*/bin/python 2>/dev/null \
	| sort -V | tail -n 1); [ -n "$$p" ] && echo "$$p" || command -v python3.12)
VENV6 := .venv-django6

.PHONY: demo test test-django6 lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)  ## start the demo site on http://127.0.0.1:8000 (embedded SQLite)
	$(BIN)/python -m demo_app $(DEMO_ARGS)

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest

test-django6:  ## the Django tests again, on Python 3.12 with Django 6 (CI runs both)
	@[ -n "$(PYTHON312)" ] || { echo "test-django6: no Python 3.12 found (pyenv or python3.12 on PATH); set PYTHON312=" >&2; exit 1; }
	$(PYTHON312) -m venv $(VENV6)
	$(VENV6)/bin/python -m pip install --quiet --upgrade pip
	$(VENV6)/bin/python -m pip install --quiet -e ".[dev]"
	$(VENV6)/bin/python -c "import django, django.tasks; print('Django', django.__version__)"
	$(VENV6)/bin/python -m pytest tests/django

lint: $(STAMP)  ## ruff and mypy, as CI runs them
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)  ## the benchmarks against peers (see bench/)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) $(VENV6) .pytest_cache .mypy_cache .ruff_cache
