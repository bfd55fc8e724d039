# sockharness: the front door. As root: `make test`, `make run`. Never calls sudo itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test run lint bench fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Everything: model unit tests, kernel tests, the scenario corpus on both backends.
# Without root it runs the model half, says loudly that the kernel half did not run, and
# fails unless ALLOW_NO_ROOT=1.
test: install
	$(BIN)/python -m pytest -ra tests

# The whole scenario corpus on model and kernel, a summary table, and the JSON report.
run: install
	$(BIN)/sockharness run tests/scenarios --json reports/run.json -q

lint: install
	$(BIN)/ruff check model harness netns tests

clean:
	rm -rf $(VENV) reports .pytest_cache

# Verified listener lookups per second (groups of 8 and 256) against a scapy-built injector in
# the same run, and the hash-seed calibration time. A benchmark: it prints figures, it is not a test.
bench: install
	$(BIN)/python -m harness.bench

# Random bind/listen/connect sequences and injected handshakes on model and kernel (SEED,
# COUNT); divergences, minimized, go
# to reports/fuzz/.
SEED ?= 1
COUNT ?= 5000
fuzz: install
	$(BIN)/python -m harness.fuzz --seed $(SEED) --count $(COUNT)
