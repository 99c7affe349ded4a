# Two commands do all set-up on a fresh machine:
#   make run    install, then serve on the embedded default (SQLite + files under ./data)
#   make test   install, then lint, type-check and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH ?= 2.13.0

.PHONY: setup run test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==$(TORCH)
	$(PIP) install -q -e '.[dev,images]' torch==$(TORCH)
	touch $@

run: setup
	$(VENV)/bin/minitoolai serve

lint: setup
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
