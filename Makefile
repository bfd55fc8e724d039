# sockharness: the front door. As root: `make test`, `make run`. Never calls sudo itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test run lint bench fuzz mutate clean kernels kernel-tools browser-tools soak coverage

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Everything: model unit tests, kernel tests, the scenario corpus on both backends.
# Without root it runs the model half, says loudly that the kernel half did not run, and
# fails unless ALLOW_NO_ROOT=1.
# On a kernel without a profile of its own, as root, the profile is inferred first (and said).
test: install
	$(BIN)/python -m harness.running
	$(BIN)/python -m pytest -ra tests

# The whole scenario corpus on model and kernel, a summary table, and the JSON report.
run: install
	mkdir -p reports
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

# A million injected SYNs (SOAK_SYNS, SOAK_SEED) on model and kernel: groups of 1-256, IPv4 and
# IPv6, hash, cBPF, eBPF and SO_INCOMING_CPU steering, closes, shutdowns, re-listens and
# migrations; prints how many lookups were exact, by property and divergent (reports/soak/).
# About 2.5 minutes here. SOAK_KERNELS=1: instead 10^5 SYNs in each of Debian's four guests (TCG:
# about 5 minutes each, one at a time with 2 CPUs: the SO_INCOMING_CPU plans need a second one).
SOAK_SYNS ?= 1000000
SOAK_SEED ?= 1
soak: install $(if $(SOAK_KERNELS),kernel-tools)
ifeq ($(SOAK_KERNELS),)
	$(BIN)/python -m harness.soak --syns $(SOAK_SYNS) --seed $(SOAK_SEED)
else
	$(BIN)/sockharness kernels --soak 100000 --timeout 3600 --jobs 1 --cpus 2 --scenarios tests/scenarios/lookup --kernel-tests --no-probe \
	  --no-host --out reports/kernels-soak
endif

# Branch coverage of model/ over the kernel-checked runs only (corpus on both backends, fuzz,
# kernel tests, a short soak), per file, every branch not taken checked against
# docs/coverage.md. As root; about 15 minutes here. Fails under 97% or with a gap not accounted for.
coverage: install
	$(BIN)/python -m tests.coverage_run

# 20,000 malformed scenario files mutated from the corpus (MUTATE_SEED, MUTATE_COUNT) through
# the parser and the model in one process: every one must end as a parse error or a model run,
# within 10 s and 1 GiB each; failures are kept in reports/mutate/. `make test` runs 2,000.
MUTATE_SEED ?= 1
MUTATE_COUNT ?= 20000
mutate: install
	$(BIN)/python -m harness.mutate --seed $(MUTATE_SEED) --count $(MUTATE_COUNT)

# Boot Debian's 5.10, 6.1, 6.12 and 7.2 cloud kernels under QEMU (KVM if it can boot them, else
# TCG) and run the corpus in each: the scenario x kernel matrix in reports/kernels/. Not part of
# `make test`: it downloads ~250 MB (cached in .cache/kernels/) and takes minutes.
# VERSIONS="5.10 7.2" boots only those.
VERSIONS ?=
kernels: install kernel-tools
	$(BIN)/sockharness kernels $(if $(VERSIONS),--versions $(VERSIONS))

# QEMU 10 from bookworm-backports when qemu-system-x86_64 is missing (Debian 12 hosts), through
# a private apt list: the host's apt sources are left as they are.
QEMU_APT := $(CURDIR)/.cache/kernels/qemu-apt
APT_PRIVATE := -o Dir::Etc::SourceList=$(QEMU_APT)/sources.list -o Dir::Etc::SourceParts=/dev/null \
	-o Dir::State::Lists=$(QEMU_APT)/lists -o Dir::Cache=$(QEMU_APT)/cache
kernel-tools:
	@if ! command -v qemu-system-x86_64 >/dev/null; then \
	  mkdir -p $(QEMU_APT)/lists/partial $(QEMU_APT)/cache/archives/partial && \
	  printf 'deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian bookworm-backports main\n' \
	    > $(QEMU_APT)/sources.list && \
	  apt-get -q $(APT_PRIVATE) update && \
	  DEBIAN_FRONTEND=noninteractive apt-get -q -y $(APT_PRIVATE) install -t bookworm-backports \
	    --no-install-recommends qemu-system-x86; \
	fi

# Debian's chromium when /usr/bin/chromium is missing, from the host's apt sources: the browser
# tests (tests/browser/) load the HTML reports in it headless; without it they skip and say so.
# About 115 MB downloaded, 415 MB installed (chromium 156 on Debian 12: 20 s here).
browser-tools:
	@if [ ! -x /usr/bin/chromium ]; then \
	  apt-get -q update && \
	  DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends chromium; \
	fi

# SIGINT (to the process group, as Ctrl-C), SIGTERM and SIGKILL at random points of `run`, of hash
# calibration, of `bench` and `fuzz` startup and of a QEMU boot (`kernels`, Debian's 6.12, fetched
# once into .cache/kernels): no process, namespace (named or not), TUN device or temp file of ours
# may be left, after SIGKILL once the next start has reaped. Slow, not part of `make test`:
# SOAK_RUNS runs of each command x signal (default 30: about an hour here; QUICK=1: 2 runs),
# SOAK_SEED repeats a session's random delays (printed), SOAK_K selects (pytest -k, e.g. "not kernels").
SOAK_RUNS ?= 30
.PHONY: soak-signals soak-export
soak-signals: install kernel-tools
	SOAK_RUNS=$(if $(QUICK),2,$(SOAK_RUNS)) $(BIN)/python -m pytest -q -s -ra -p no:cacheprovider -m soak \
	  tests/soak/test_signals.py tests/soak/test_leftovers_seen.py $(if $(SOAK_K),-k "$(SOAK_K)")

# A guest that remounts its view of the host root read-write and writes outside the writable
# folders gets EROFS from the host (virtiofsd exports a read-only bind of /: harness/guests/export.py).
soak-export: install kernel-tools
	$(BIN)/python -m pytest -q -ra -p no:cacheprovider -m soak tests/soak/test_readonly_export.py

# The kselftest entry point (tools/testing/selftests/sockharness/, a folder that drops into a
# kernel tree), run as the kernel's run_kselftest.sh runs a test: its `settings` timeout, its
# output prefixed "# ", one result line from its exit code (0 ok, 4 SKIP, 124 TIMEOUT, else
# not ok) and that status. SOCKHARNESS_SCENARIOS=PATHS runs only those. With KSFT_INSTALL=DIR
# (a kselftest install: `make -C tools/testing/selftests install INSTALL_PATH=DIR` in a kernel
# tree) it is installed there instead, pointed at this project and listed in
# DIR/kselftest-list.txt: then `DIR/run_kselftest.sh -c sockharness` runs it.
KSFT_DIR := tools/testing/selftests/sockharness
KSFT_INSTALL ?=
KSFT_NAME := selftests: sockharness: sockharness.sh
.PHONY: kselftest
kselftest: install
ifneq ($(KSFT_INSTALL),)
	mkdir -p $(KSFT_INSTALL)/sockharness
	sed 's|^default_dir=$$|default_dir=$(CURDIR)|' $(KSFT_DIR)/sockharness.sh > $(KSFT_INSTALL)/sockharness/sockharness.sh
	chmod +x $(KSFT_INSTALL)/sockharness/sockharness.sh
	cp $(KSFT_DIR)/settings $(KSFT_INSTALL)/sockharness/
	grep -qx 'sockharness:sockharness.sh' $(KSFT_INSTALL)/kselftest-list.txt 2>/dev/null || \
	  echo 'sockharness:sockharness.sh' >> $(KSFT_INSTALL)/kselftest-list.txt
else
	@t=$$(sed -n 's/^timeout=//p' $(KSFT_DIR)/settings); cd $(KSFT_DIR) && \
	echo "TAP version 13" && echo "1..1" && echo "# timeout set to $$t" && echo "# $(KSFT_NAME)" && \
	{ { { timeout --foreground $$t ./sockharness.sh 2>&1; echo $$? >&3; } | sed -u 's/^/# /' >&4; } 3>&1 | \
	  { read rc; exit $$rc; }; } 4>&1; rc=$$?; \
	case $$rc in \
	0) echo "ok 1 $(KSFT_NAME)";; \
	4) echo "ok 1 $(KSFT_NAME) # SKIP";; \
	124) echo "not ok 1 $(KSFT_NAME) # TIMEOUT $$t seconds";; \
	*) echo "not ok 1 $(KSFT_NAME) # exit=$$rc";; \
	esac; [ $$rc -eq 0 ] || [ $$rc -eq 4 ]
endif
