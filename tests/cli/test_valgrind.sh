#!/bin/sh
# Memory errors and leaks of a real ptl run under valgrind: any invalid access or definitely
# lost block fails. (BLIS keeps its packing-buffer pools until exit: "possibly lost" and
# "still reachable" blocks are expected and not errors.) One thread, and OpenMP threads that
# sleep instead of spin: valgrind runs threads one at a time, and a spinning OpenMP worker
# makes a second-long run take many minutes. Skipped when valgrind is not installed.
set -u
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIP: valgrind not installed (Debian: apt-get install valgrind)"
    exit 77
fi
b=${top_builddir:-.}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
OMP_WAIT_POLICY=passive "$b/libtool" --mode=execute valgrind -q --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite --error-exitcode=99 \
    --log-file="$log" \
    "$b/ptl" bench ops --layer 2,3,9,9,4,3,2,1 --layer 2,8,5,5,8,1,1,0 --reps 1 --warmup 0 \
    --threads 1 >/dev/null
status=$?
cat "$log"
if [ "$status" -ne 0 ]; then
    echo "FAIL: ptl bench ops under valgrind exited $status"
    exit 1
fi
echo "valgrind: no memory errors, no definite leaks"
