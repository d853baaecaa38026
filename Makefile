# medvault -- the user's entry points.  CMake does the building; this file
# makes sure the machine has what CMake needs, then calls it.
#
#   make run     install missing dependencies, build, create and seed the demo store, serve it
#   make test    the whole suite, then again under ASan + UBSan
#   make asan    the whole suite under AddressSanitizer + UBSan only
#   make bench   the benchmarks (bench/), results for BENCHMARKS.md
#   make clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
VAR        ?= var

# Libraries the build needs, probed with pkg-config; headers without a .pc
# file and the commands the tests drive are probed directly.  Any miss runs
# scripts/install-deps (apt-get).
PC_MODULES := libsodium sqlite3 jansson cmocka libmicrohttpd gnutls liboath libqrencode libcurl
HEADERS    := /usr/include/unistr.h /usr/include/passwdqc.h
COMMANDS   := cmake pkg-config sqlite3 curl oathtool npm

.PHONY: all deps build build-asan test asan unit-test bench run clean fuzz fuzz-short

all: build

deps:
	@if ! for c in $(COMMANDS); do command -v $$c >/dev/null 2>&1 || exit 1; done \
	    || ! pkg-config --exists $(PC_MODULES) \
	    || ! for h in $(HEADERS); do [ -f $$h ] || exit 1; done; then \
	    echo "medvault: installing missing build dependencies (scripts/install-deps)"; \
	    ./scripts/install-deps; \
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

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
