# Two commands: `make run` serves on 127.0.0.1:8080 (SQLite + ./data + espeak-ng);
# `make test` runs the whole suite. Both install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: run test lint bench system-deps bench-deps clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,neural,pipecat,livekit]'
	touch $(STAMP)

# espeak-ng is the default engine; sox is the reference codec in tests; PostgreSQL and
# Ceph's radosgw (with a mon and an osd) are the real database and S3 server of the tests;
# nginx is the load balancer of the deployment test; Debian's chromium runs the web page's
# Playwright tests (no browser download).
SYSTEM_TOOLS := espeak-ng sox radosgw ceph-mon ceph-osd nginx /usr/lib/postgresql/15/bin/initdb /usr/bin/chromium
SYSTEM_PACKAGES := espeak-ng sox radosgw ceph-mon ceph-osd postgresql nginx-light chromium
system-deps:
	@missing=0; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null || missing=1; done; \
	if [ $$missing = 1 ]; then \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $(SYSTEM_PACKAGES); \
	fi

bench-deps: system-deps
	@if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends wrk nginx-light; \
	fi

run: system-deps $(STAMP)
	$(VENV)/bin/audiocache serve --data-dir ./data

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests $(wildcard bench)
	$(VENV)/bin/mypy

test: system-deps $(STAMP) lint
	$(VENV)/bin/pytest

bench: bench-deps $(STAMP)
	$(PY) bench/hit_path.py --workers 1
	$(PY) bench/hit_path.py --workers 2
	$(PY) bench/engines.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
