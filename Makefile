# Two commands do all the set-up on a fresh machine:
#   make demo   - install, build a synthetic demo collection, tag + index it, serve search on :5000
#   make test   - install, run the test suite (what CI runs: .ci/run)
# Before each commit: make test-fast (the tests that start no services, workers, browsers or
# training, and take seconds; at most ~3 minutes on 2 cores).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tagscope-installed
DEMO_HOME ?= demo-data
PORT ?= 5000

FAST_TIER := not slow and not services and not browser and not worker and not training

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch and torchvision in one command, pinned together (see constraints.txt)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tagscope --home $(DEMO_HOME) demo --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "$(FAST_TIER)"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m bench.throughput

clean:
	rm -rf $(DEMO_HOME) .pytest_cache build *.egg-info
