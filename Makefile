# medvault -- the user's entry points.  CMake does the building; this file
# makes sure the machine has what CMake needs, then calls it.
#
#   make run     install missing dependencies, build, create and seed the demo store, serve it
#   make test    the whole suite, then again under ASan + UBSan
#   make asan    the whole suite under AddressSanitizer + UBSan only
#   make bench   the benchmarks (bench/), results for BENCHMARKS.md
#   make fresh-check   both commands on a brand-new Debian 12 root (on demand)
#   make clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
VAR        ?= var

# Libraries the build needs, probed with pkg-config; headers without a .pc
# file and the commands the tests drive are probed directly.  Any miss runs
# $(INSTALL) (scripts/install-deps: apt-get), then the build goes on.  The
# three lists and INSTALL can be overridden on the command line, which is how
# tests/cli/test_deps.sh proves that a miss really does call the installer.
PC_MODULES ?= libsodium sqlite3 jansson cmocka libmicrohttpd gnutls liboath libqrencode libcurl
HEADERS    ?= /usr/include/unistr.h /usr/include/passwdqc.h
COMMANDS   ?= cmake pkg-config sqlite3 curl oathtool npm
INSTALL    ?= ./scripts/install-deps

# Sub-makes of CMake's generated Makefiles would otherwise print an
# "Entering directory" pair for every step; one progress line each is enough.
MAKEFLAGS += --no-print-directory

.PHONY: all deps build build-asan test asan unit-test bench run clean fuzz fuzz-short fresh-check

all: build

# Each probe prints what it misses and the recipe goes on to the installer:
# a probe must never `exit` the recipe's shell (it once did, so a missing
# command stopped `make run` with no word at all).
deps:
	@missing=""; \
	for c in $(COMMANDS); do \
	    command -v "$$c" >/dev/null 2>&1 || missing="$$missing command:$$c"; \
	done; \
	for m in $(PC_MODULES); do \
	    pkg-config --exists "$$m" 2>/dev/null || missing="$$missing pkg-config:$$m"; \
	done; \
	for h in $(HEADERS); do \
	    [ -f "$$h" ] || missing="$$missing header:$$h"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "medvault: missing$$missing"; \
	    echo "medvault: installing build dependencies ($(INSTALL))"; \
	    $(INSTALL) || { echo "medvault: $(INSTALL) failed" >&2; exit 1; }; \
	fi

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMV_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

unit-test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# detect_leaks needs ptrace-free LSan; abort on the first UBSan report.
asan: build-asan
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -j $(JOBS)

test: unit-test asan fuzz-short

fuzz:
	@./scripts/fuzz 300

fuzz-short:
	@./scripts/fuzz 20

bench: build
	@./bench/run-all $(BUILD)

# The demo hospital seeded on the first run (scripts/demo; delete $(VAR) to
# start over).  1500 patients are about 27,000 resources: 45-55 s on 2 cores
# (the blind-index writes bound it at ~500-700 resources/s); 2000 took 65 s.
DEMO_PATIENTS ?= 1500
DEMO_STAFF    ?= 50

run: build
	@DEMO_PATIENTS=$(DEMO_PATIENTS) DEMO_STAFF=$(DEMO_STAFF) \
	    ./scripts/demo $(BUILD)/medvault $(VAR)

# On demand, never part of `make test`: the two commands on a brand-new
# Debian 12 root (mmdebstrap), from a clean clone of the committed HEAD.
fresh-check:
	@command -v mmdebstrap >/dev/null 2>&1 || \
	    { echo "medvault: installing mmdebstrap for fresh-check"; \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; }
	@./scripts/fresh-check

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
