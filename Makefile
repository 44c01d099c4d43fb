# Everyday commands. `make grade` and `make test` set up the virtual environment when it is missing.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: help install system grade test test-fast test-assignment test-platforms lint format bench cuda-check release clean

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

test: install    ## the project's tests, slow ones (notebooks, full grading runs) included; not the platform emulation
	$(BIN)/python -m pytest -m "not platform" $(PYTEST_ARGS)

test-assignment: install ## one assignment's tests (reference, checks, corpus, mutants, notebooks): make test-assignment A=a1_knn
	@test -n "$(A)" || { echo "make test-assignment: which assignment? For example: make test-assignment A=a1_knn" >&2; exit 2; }
	$(BIN)/python -m pytest -m "not platform" --assignment=$(A) $(PYTEST_ARGS)

test-platforms: install ## the bundle on an emulated Gradescope (setup.sh builds its image: minutes; root, cgroups)
	$(BIN)/python -m pytest -m platform $(PYTEST_ARGS)

test-fast: install ## the tests without the slow ones
	$(BIN)/python -m pytest -m "not slow and not platform" $(PYTEST_ARGS)

lint: install    ## ruff (lint, formatting) and lint-imports (the grader's rooms); `make format` fixes what it can
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install   ## speed and memory ratios against baselines measured in the same run
	$(BIN)/python -m bench $(ARGS)

# No install step (a GPU machine may be offline): .venv's Python where it exists, else $(PY). The module exits 77
# where there is no GPU; make cannot pass that on (a failed recipe makes make exit 2), so it is a pass, said aloud.
cuda-check:      ## grade the reference on CUDA and on the CPU (hidden checks) and fail on any difference; skips without a GPU
	@py=$(BIN)/python; [ -x "$$py" ] || py=$(PY); echo "$$py -m bench.cuda_check $(ARGS)"; \
	"$$py" -m bench.cuda_check $(ARGS); rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "cuda-check: skipped: no CUDA device (exit status 0)"; exit 0; fi; exit $$rc

release: install ## write the student kit and the autograder bundles into release/
	$(BIN)/grader release --out release --force

clean:           ## remove build and grading outputs (keeps .venv)
	rm -rf grader-results release build *.egg-info .pytest_cache
