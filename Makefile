# Every target builds .venv first when it is missing or older than the project's metadata.
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# where runs write (the project's config reads the same variable)
DATA_DIR := $(or $(SHOPSTYLE_DATA_DIR),data)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[modeling,dev,scale]'
	@touch $@

.PHONY: help install demo review cycle test lint bench clean

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

## install: create .venv and install the project with modeling, its dev tools and the scale-out extras
install: $(STAMP)

## demo: run the whole job end to end on the built-in synthetic catalog
demo: $(STAMP)
	$(PY) -m shopstyle_spider.demo

## review: serve the review app on the demo's data with its model in service at http://127.0.0.1:8000/ (run `make demo` first)
# /api/predict files by the demo's rule (TARGET and LEVELS in shopstyle_spider/demo.py, which prints this command;
# tests/test_review.py holds the two to it), so a product the demo queued is not filed by the app
DEMO_FILING := --target-accuracy 0.95 --levels leaf
review: $(STAMP)
	@test -f $(DATA_DIR)/demo/crawl.db || { echo "no demo database in $(DATA_DIR)/demo: run make demo first" >&2; exit 2; }
	$(PY) -m modeling.review --db $(DATA_DIR)/demo/crawl.db --images $(DATA_DIR)/demo/images $(DEMO_FILING)

## cycle: one weekly cycle on data/crawl.db (refresh, predict, file, queue, audit, retrain if called for, report); CYCLE_ARGS adds options
cycle: $(STAMP)
	$(PY) -m modeling.cycle --db $(DATA_DIR)/crawl.db --images $(DATA_DIR)/images $(CYCLE_ARGS)

## test: lint, then run the test suite
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

## lint: ruff over the whole tree
lint: $(STAMP)
	$(PY) -m ruff check .

## bench: the benchmarks in bench/ (minutes; not part of test)
bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

## clean: remove run outputs under data/ (keeps .venv)
# data/ itself, never $(DATA_DIR): an rm -rf should not follow a path from the environment
clean:
	find data -mindepth 1 ! -name README.md -exec rm -rf {} +
