# swarmkey — one Makefile is the entry point.
#   make demo   a throwaway PostgreSQL, a demo role, three rotations per strategy
#   make install  build and install swarmkey and swarmkey-exec in $(PREFIX)/bin
#   make test   the whole suite against a real PostgreSQL and a real Locust,
#               provisioned by scripts/test-deps and scripts/with-postgres
#   make chaos  the long fault-injection run (internal/chaos): 1,000 kills and more
#   make bench  benchmarks, as ratios against baselines measured in the same run
#   make bench-scale  issue 16's figures at 100,000 policies (about an hour)
#   make lint   gofmt, go vet, staticcheck
#   make fuzz   short fuzzing runs: the config loader, the secret-document
#               parsers, the API's lease bodies, the Scrubber

GO       ?= go
GOFLAGS  ?=
PKGS     ?= ./...
TESTFLAGS ?= -count=1 -timeout 20m
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build install test test-go chaos demo bench bench-programs bench-idle bench-scale lint fuzz clean

all: build

# swarmkey is everything; swarmkey-exec is `swarmkey exec --api` alone, for
# load generators (docs/design.md, "Two binaries").
build:
	$(GO) build -o bin/swarmkey ./cmd/swarmkey
	$(GO) build -o bin/swarmkey-exec ./cmd/swarmkey-exec

# install puts the binaries where the README's `swarmkey ...` finds them:
# /usr/local/bin by default (run as root), or PREFIX=$$HOME/.local for you
# alone; DESTDIR stages them for a package.
PREFIX ?= /usr/local
install: build
	install -D -m 0755 bin/swarmkey $(DESTDIR)$(PREFIX)/bin/swarmkey
	install -D -m 0755 bin/swarmkey-exec $(DESTDIR)$(PREFIX)/bin/swarmkey-exec
	@echo "installed $(DESTDIR)$(PREFIX)/bin/swarmkey and $(DESTDIR)$(PREFIX)/bin/swarmkey-exec"

# test-deps installs Debian's Locust (and the unit-check tools) when missing;
# with-postgres starts a throwaway PostgreSQL for the run.
test:
	scripts/test-deps
	scripts/with-postgres $(MAKE) --no-print-directory test-go

# The vault store's tests run on a real OpenBao dev server when the machine
# provides its start script beside the repository, and on their in-process
# fake of KV v2 otherwise (the test output says which).
OPENBAO_START ?= $(abspath ../shared/tools/openbao/start-dev)
ifneq ($(wildcard $(OPENBAO_START)),)
export SWARMKEY_TEST_OPENBAO_START := $(OPENBAO_START)
endif

test-go:
	@echo "make test: the vault store's tests run on $(if $(SWARMKEY_TEST_OPENBAO_START),a real OpenBao dev server ($(SWARMKEY_TEST_OPENBAO_START)),the in-process fake of KV v2 (no OpenBao start script at $(OPENBAO_START)))"
	$(GO) test $(TESTFLAGS) $(PKGS)
	cd locust && PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m unittest

# The long fault-injection run: kill -9 of `rotate --local` and of serve
# replicas at chosen steps, PostgreSQL restarts, a read-only store folder,
# AWS proxy faults and another writer, GCP faults (internal/chaos; `make
# test` runs a short one). Bounded by counts and by CHAOS_DURATION; the
# report (counts per kind, violations per invariant, load average before
# and after) is printed and written to CHAOS_REPORT. CHAOS_FLAGS passes
# more -chaos.* flags (e.g. -chaos.seed N to repeat a run's choices).
CHAOS_DURATION ?= 50m
CHAOS_REPORT   ?= bin/chaos-report.md
CHAOS_FLAGS    ?=

chaos:
	scripts/test-deps
	@mkdir -p $(dir $(abspath $(CHAOS_REPORT)))
	scripts/with-postgres $(GO) test -count=1 -timeout 80m -run '^TestChaos$$' -v ./internal/chaos/ \
		-args -chaos.long -chaos.duration $(CHAOS_DURATION) -chaos.report $(abspath $(CHAOS_REPORT)) $(CHAOS_FLAGS)

# Benchmarks print ratios against baselines measured in the same run, as
# medians over rounds. The list of benchmarks is bench/plan.txt (one command
# per line; add new ones there; BENCH_PLAN runs another list). bench/benchrun runs them one after another:
# before each it waits up to BENCH_QUIET_WAIT for a quiet machine (1-minute
# load average under BENCH_QUIET_LOAD, no other process above BENCH_QUIET_CPU
# % of a core), then runs it anyway with its figures marked BUSY; it prints
# one summary table at the end and writes it as Markdown to BENCH_MARKDOWN
# for the README. It fails when a benchmark failed.
BENCH_DURATION   ?= 5s
BENCH_ROUNDS     ?= 5
BENCH_QUIET_WAIT ?= 4m
BENCH_QUIET_LOAD ?= 0.4
BENCH_QUIET_CPU  ?= 5
BENCH_MARKDOWN   ?= bin/bench.md
BENCH_PLAN       ?= bench/plan.txt

# Every program and test binary is built before the first benchmark, so no
# compiler runs between benchrun's quiet check and a measurement.
BENCH_TESTS = schedule providers/aws providers/gcp providers/vault providers/ssm providers/azure
bench-programs: build
	$(GO) build -o bin/benchrun ./bench/benchrun
	@mkdir -p bin/bench
	$(GO) build -o bin/bench/ ./bench/rotationbench ./bench/daemonbench ./bench/execbench ./bench/emergencybench ./bench/scanbench
	for p in $(BENCH_TESTS); do $(GO) test -c -o bin/bench/$$(echo $$p | tr / -).test ./$$p || exit 1; done

bench: bench-programs
	BENCH_DURATION=$(BENCH_DURATION) BENCH_ROUNDS=$(BENCH_ROUNDS) bin/benchrun -plan $(BENCH_PLAN) \
		-quiet-wait $(BENCH_QUIET_WAIT) -quiet-load $(BENCH_QUIET_LOAD) -quiet-cpu $(BENCH_QUIET_CPU) \
		-markdown $(BENCH_MARKDOWN)

# Ten minutes of an idle daemon with 10,000 policies beside one with a single
# policy: peak RSS and CPU time (kept out of `make bench` for its length).
IDLE_DURATION ?= 10m
bench-idle: build
	scripts/with-postgres $(GO) run ./bench/daemonbench -mode idle -policies 10000 -duration $(IDLE_DURATION)

# Issue 16's scale figures at 100,000 policies (bench/plan-scale.txt; about
# an hour with the defaults), through benchrun as `make bench` runs.
SCALE_SPREAD ?= 10m
bench-scale: bench-programs
	BENCH_ROUNDS=$(BENCH_ROUNDS) IDLE_DURATION=$(IDLE_DURATION) SCALE_SPREAD=$(SCALE_SPREAD) bin/benchrun -plan bench/plan-scale.txt \
		-quiet-wait $(BENCH_QUIET_WAIT) -quiet-load $(BENCH_QUIET_LOAD) -quiet-cpu $(BENCH_QUIET_CPU) \
		-markdown bin/bench-scale.md

lint:
	$(GO) mod tidy -diff
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting" >&2; exit 1)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

clean:
	rm -rf bin

demo: build
	scripts/with-postgres scripts/demo

# Each fuzzer runs for FUZZTIME: five of them, about four minutes in all at
# the default with the builds. A new interesting input is minimized for at
# most 3s (the default minute stalls a short run). A crash stops the run and
# leaves its input under the package's testdata/fuzz/: fix the bug and keep
# the input there as a regression. The API's fuzzer needs a database.
FUZZTIME  ?= 30s
FUZZFLAGS  = -run '^$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
fuzz:
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzLoad$$' ./config/
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzParseDocument$$' ./targets/postgres/
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzParseDocument$$' ./targets/httpkey/
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzScrubber$$' ./secret/
	scripts/with-postgres $(GO) test $(FUZZFLAGS) -fuzz '^FuzzLeaseRequest$$' ./api/
