#!/bin/sh
# Adds up automake's test-suite.log counts of the given build directories and prints one line
# "N passed, N failed, N skipped". Exits 1 if anything failed or a log is missing.
passed=0 failed=0 skipped=0 status=0
for dir in "$@"; do
    log="$dir/test-suite.log"
    if [ ! -f "$log" ]; then
        echo "summarize-tests.sh: no $log (the build or the test run did not complete)" >&2
        failed=$((failed + 1))
        status=1
        continue
    fi
    count() { sed -n "s/^# $1: *\([0-9][0-9]*\)$/\1/p" "$log" | head -n 1; }
    p=$(count PASS) xf=$(count XFAIL) f=$(count FAIL) xp=$(count XPASS) e=$(count ERROR)
    s=$(count SKIP)
    passed=$((passed + ${p:-0} + ${xf:-0}))
    failed=$((failed + ${f:-0} + ${xp:-0} + ${e:-0}))
    skipped=$((skipped + ${s:-0}))
done
[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
