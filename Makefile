# The front door: `make run` and `make test` work on a fresh machine with nothing installed.
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# Test workers (pytest-xdist): the suite is the interpreter's Python, one core a worker.
JOBS    ?= 2

.PHONY: run test lint golden clean

$(VPY):
	$(PY) -m venv $(VENV)

# torch 2.13.0 first: it is the CPU build on this machine's disk; any other pin downloads gigabytes.
$(STAMP): $(VPY) pyproject.toml constraints.txt
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c constraints.txt torch==2.13.0
	$(VPY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/madc demo

test: $(STAMP)
	$(VPY) -m ruff check madc tests
	TRITON_INTERPRET=1 $(VPY) -m pytest -q -x -n $(JOBS) --timeout=900 tests

lint: $(STAMP)
	$(VPY) -m ruff check madc tests

golden: $(STAMP)
	$(VPY) -m pytest -q tests --update-golden

clean:
	rm -rf $(VENV) build *.egg-info
