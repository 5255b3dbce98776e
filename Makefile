# Every target installs what it needs on a fresh machine: uv, the locked environment, PostgreSQL.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export UV_PYTHON := 3.11

.PHONY: help uv env postgres browser test lint demo bench clean

help:
	@echo "make demo   run opsflows on the embedded sandbox (offline)"
	@echo "make test   lint, layering contracts and the whole test suite"
	@echo "make bench  benchmarks (figures, not pass/fail timings)"

uv:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	@command -v $(UV) >/dev/null 2>&1 || { echo "could not install uv (pip install uv)"; exit 1; }

env: uv
	@$(UV) sync --locked --quiet

# PostgreSQL server binaries (initdb, pg_ctl) for the sandbox and the tests.
postgres:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "PostgreSQL server binaries are missing: install PostgreSQL (initdb, pg_ctl)"; exit 1; fi

# Debian's Chromium for the browser test (Playwright drives it; it never downloads a browser).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "Chromium is missing: install it (Debian package chromium) for the browser test"; exit 1; fi

lint: env
	$(UV) run --locked ruff check .
	$(UV) run --locked lint-imports

test: env postgres browser lint
	$(UV) run --locked pytest

demo: env postgres
	$(UV) run --locked opsflows demo

bench: env postgres
	$(UV) run --locked python -m tests.bench

clean:
	-$(UV) run --locked opsflows sandbox down
	rm -rf .sandbox .prefect .demo test-artifacts
