# BML Studio. `make up` starts the product, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BML := $(VENV)/bin/bml
STAMP := $(VENV)/.installed-stamp
PORT ?= 8501

.PHONY: install up test test-fast lint bench bench-store bench-strategies bench-tune bench-lab bench-compare-venv bench-dashboard vendor-plotly services system-deps clean

# torch first and pinned exactly: a looser range pulls a multi-GB CUDA build on these machines.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@bash scripts/system_deps.sh

services:
	@bash scripts/ensure_services.sh

up: install
	$(BML) db upgrade
	$(BML) up --port $(PORT)

test: install system-deps services
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow and not browser"

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy bml_core db worker services app bml_cli

bench: install
	$(PY) bench/step_overhead.py

# Store benchmarks (docs/benchmarks.md, section Store). The overhead comparison with MLflow
# and TensorBoard runs when `make bench-compare-venv` has built .venv-compare; else it is skipped.
bench-store: install
	$(PY) bench/store_ingest.py
	$(PY) bench/store_reads.py
	$(PY) bench/store_memory.py
	$$(test -x .venv-compare/bin/python && echo .venv-compare/bin/python || echo $(PY)) bench/store_overhead.py

# A lab at scale (docs/benchmarks.md, "Lab scale"; issue 22): 8 `bml worker` processes draining
# 1,000 real runs, 50 replay streams x 20 steps/s x 30 keys through the sink, page data timed,
# on this machine's PostgreSQL (own database) and Redis (own key prefix). QUICK=1: the CI size.
bench-lab: install services
	mkdir -p bench/results && $(PY) bench/lab_scale.py $(if $(QUICK),--quick) --json bench/results/lab-scale$(if $(QUICK),-quick).json

# Dashboard benchmarks (docs/benchmarks.md, section Dashboard): the Compare page with 20 runs x
# 10k steps drawn in Chromium, and the cost of one Live refresh.
bench-dashboard: install system-deps
	$(PY) bench/dashboard_compare.py
	$(PY) bench/dashboard_live.py

# The charts' plotly.js (app/plotly_chart.py): the official "basic" distribution from npm at
# the pinned version (npm checks the registry's integrity hash); update PLOTLY_BASIC_VERSION and
# PLOTLY_BASIC_SHA256 in app/plotly_chart.py with it (tests/app/test_plotly_bundle.py checks both).
PLOTLY_BASIC_VERSION ?= 4.1.1
vendor-plotly:
	tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent plotly.js-basic-dist-min@$(PLOTLY_BASIC_VERSION) >/dev/null \
	  && tar xzf plotly.js-basic-dist-min-$(PLOTLY_BASIC_VERSION).tgz \
	  && cp package/plotly-basic.min.js $(CURDIR)/app/static/plotly-basic.min.js \
	  && cp package/LICENSE $(CURDIR)/app/static/plotly-basic.LICENSE.txt && rm -rf $$tmp
	sha256sum app/static/plotly-basic.min.js

# Every strategy x 3 seeds on mfeat and synthetic through two workers (docs/benchmarks.md,
# "Every strategy on mfeat and synthetic"); tables and every number under bench/results/.
bench-strategies: install
	$(PY) bench/strategy_grid.py --markdown bench/results/strategy-grid.md --json bench/results/strategy-grid.json

# ASHA vs the full grid of OPM q_base x lr on mfeat through two workers (docs/benchmarks.md,
# "Tuning: ASHA vs the full grid").
bench-tune: install
	$(PY) bench/tune_vs_grid.py --json bench/results/tune-vs-grid.json

bench-compare-venv: install
	PYTHON=$(PYTHON) bash bench/compare_venv.sh

clean:
	rm -rf $(VENV) .venv-compare .bml .pytest_cache .mypy_cache .ruff_cache
