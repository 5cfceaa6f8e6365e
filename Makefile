# Build and test the book and the magcore package.
#
#   make setup   create .venv (if missing) and install the pinned toolchain
#   make book    build the HTML book into _build/html
#   make test    build the book, then run the unit tests and every notebook
#   make clean   remove build outputs (keeps .venv)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Tools started by the build (notebook kernels, jupyter) come from the venv.
export PATH := $(abspath $(BIN)):$(PATH)

# pytest: unit tests, doctests and notebooks in one run, on two processes.
# --dist loadfile keeps all cells of a notebook on one worker (one kernel).
# Each worker and each notebook kernel computes on one thread: two workers
# that each start two torch threads on two cores stall one another, and a
# notebook's experiment then takes several times its CPU time.
PYTEST_ARGS := -n 2 --dist loadfile --durations=15 \
	--nbval-lax --nbval-current-env --nbval-cell-timeout 600 \
	--nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: setup book test clean

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The stamp is newer than both inputs once they are installed, so a second
# `make setup` does nothing.
$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $@

book: setup
	$(BIN)/jupyter-book build -W -n --keep-going .

test: book
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest $(PYTEST_ARGS) \
		tests magcore chapters

clean:
	rm -rf _build .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d \
		-exec rm -rf {} +
