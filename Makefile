# Everyday commands. `make grade` and `make test` set up the virtual environment when it is missing.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: help install system grade test test-fast lint format bench release clean

help:            ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: system $(STAMP) ## create .venv and install the kit with its test tools (and bubblewrap, where it can)

system:          ## install the system packages the grader uses (bubblewrap), where this user can
	@bash tools/install-system-packages.sh

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,instructor]"
	touch $@

grade: install   ## grade the working tree (here: the reference solution), every assignment
	$(BIN)/grader grade . $(ARGS)

test: install    ## the project's tests, slow ones (notebooks, full grading runs) included
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install ## the tests without the slow ones
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install    ## ruff: lint and formatting (configured in pyproject.toml); `make format` fixes what it can
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install   ## speed and memory ratios against baselines measured in the same run
	$(BIN)/python -m bench $(ARGS)

release: install ## write the student kit and the autograder bundles into release/
	$(BIN)/grader release --out release --force

clean:           ## remove build and grading outputs (keeps .venv)
	rm -rf grader-results release build *.egg-info .pytest_cache
