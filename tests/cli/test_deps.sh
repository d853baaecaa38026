#!/usr/bin/env bash
# The Makefile's dependency probe (`make deps`), run against the real
# Makefile with the installer replaced by a stub that records its call.
#
# Why this exists: the probe once ended the recipe's shell with `exit 1` on
# the first missing command, so on a fresh Debian `make run` stopped with
# "Error 1" and never called scripts/install-deps.  Each kind of miss (a
# command, a pkg-config module, a header) must call the installer once and
# let the recipe go on; nothing missing must not call it; an installer that
# fails must fail the recipe, saying so.
. "$(dirname "$0")/lib.sh"

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STUB="$WORK/install-stub"
CALLS="$WORK/calls"
cat > "$STUB" <<EOF
#!/bin/sh
echo called >> "$CALLS"
EOF
chmod +x "$STUB"
NOPE="medvault-no-such-command-$$"
# Run from ctest under `make test`: the outer make's flags are not ours.
unset MAKEFLAGS MFLAGS MAKELEVEL

# deps_run EXPECTED_STATUS [VARIABLE=VALUE...]: make deps with the stub and
# present-everywhere defaults, except for the overrides given.
deps_run() {
    local want=$1; shift
    rm -f "$CALLS"
    run "$want" make -s -C "$ROOT" deps INSTALL="$STUB" \
        COMMANDS=sh PC_MODULES= HEADERS="$ROOT/Makefile" "$@"
}
calls() { [ -f "$CALLS" ] && grep -c called "$CALLS" || echo 0; }

# Nothing missing: the installer is not called.
deps_run 0
expect_eq "$(calls)" 0 "installer calls with nothing missing"

# A command that cannot exist, first in the list: installer called, recipe on.
deps_run 0 COMMANDS="$NOPE sh"
expect_eq "$(calls)" 1 "installer calls for a missing command"
expect_contains "$OUT" "command:$NOPE" "the probe names the missing command"

# A missing pkg-config module and a missing header each call it, once.
deps_run 0 PC_MODULES="medvault-no-such-module-$$"
expect_eq "$(calls)" 1 "installer calls for a missing pkg-config module"
deps_run 0 HEADERS="/nonexistent/medvault-$$.h"
expect_eq "$(calls)" 1 "installer calls for a missing header"

# Everything missing at once: still one call.
deps_run 0 COMMANDS="$NOPE" PC_MODULES="medvault-no-such-module-$$" \
    HEADERS="/nonexistent/medvault-$$.h"
expect_eq "$(calls)" 1 "installer calls with every kind missing"

# The recipe goes on after the installer: a target that depends on deps runs.
rm -f "$CALLS"
run 0 make -s -C "$ROOT" -f Makefile -f - deps-then INSTALL="$STUB" \
    COMMANDS="$NOPE" PC_MODULES= HEADERS="$ROOT/Makefile" <<'EOF'
deps-then: deps
	@echo went-on
EOF
expect_eq "$(calls)" 1 "installer calls before the dependent target"
expect_contains "$OUT" "went-on" "the dependent target ran after the install"

# An installer that fails stops the build, with a line saying which.
run 2 make -s -C "$ROOT" deps INSTALL=false COMMANDS="$NOPE" PC_MODULES= HEADERS="$ROOT/Makefile"
expect_contains "$ERR" "false failed" "a failing installer is named"

finish
