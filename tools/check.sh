#!/bin/sh
# The whole test suite: builds ptl, runs `make check` (unit tests, live PyTorch oracles for
# every op and every architecture, CLI),
# then builds with ASan+UBSan and runs the unit tests again. The last line is the summary
# "N passed, N failed, N skipped" over both runs; the exit status is non-zero if anything failed.
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

run() { # run DIR MAKE-TARGET: build and test one tree, keep going on failure
    echo "== $1: make $2"
    rm -f "$1/test-suite.log"
    if [ "$1" = build-asan ]; then build_flag=--sanitizers; else build_flag=""; fi
    # shellcheck disable=SC2086
    if ! tools/build.sh $build_flag; then
        echo "check.sh: build in $1 failed" >&2
        return
    fi
    make -C "$1" -s "$2" || true
    [ -f "$1/test-suite.log" ] && sed -n '/^# TOTAL/,/^# ERROR/p' "$1/test-suite.log"
}

# The full suite compares every PTL/MGN variant with PyTorch (plain `make check` only a subset).
PTL_MODEL_ORACLE=${PTL_MODEL_ORACLE:-all}
export PTL_MODEL_ORACLE
run build check
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export ASAN_OPTIONS
run build-asan check-unit
tools/summarize-tests.sh build build-asan
