#!/bin/sh
# Command-line contract of the ptl binary: version, help, exit codes, clear one-line errors,
# and a real (tiny) `ptl bench ops` run.
set -u
ptl="${top_builddir:-.}/ptl"
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect STATUS CMD...: run CMD, compare its exit status
expect() {
    want=$1; shift
    "$@" >"$out" 2>"$err"
    got=$?
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want ($(head -c 300 "$err"))"
}
grep_out() { grep -q -- "$1" "$out" || fail "stdout lacks '$1': $(head -c 300 "$out")"; }
grep_err() { grep -q -- "$1" "$err" || fail "stderr lacks '$1': $(head -c 300 "$err")"; }

expect 0 "$ptl" --version
grep_out "^ptl [0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*$"
grep_out "^BLIS [0-9.]*, kernels [a-z0-9]* ("
# A user's BLIS_ARCH_TYPE is theirs: ptl reports it and changes nothing (3 is haswell in BLIS 0.9).
if [ "$(uname -m)" = x86_64 ]; then
    expect 0 env BLIS_ARCH_TYPE=3 "$ptl" --version
    grep_out "kernels haswell (set by BLIS_ARCH_TYPE=3)"
fi
expect 0 "$ptl" --help
grep_out "bench ops"
grep_out "PTL_THREADS"
expect 64 "$ptl"
grep_err "Usage: ptl"
expect 64 "$ptl" frobnicate
grep_err "unknown command 'frobnicate'"

# A real run on two custom layers (3x3 stride 2 on a 9x9 image; a 1x1 fast-path layer).
expect 0 "$ptl" bench ops --layer 2,3,9,9,4,3,2,1 --layer 2,8,5,5,8,1,1,0 --reps 2 --warmup 1 --threads 1
grep_out "ours/sgemm"
grep_out "d_in  *d_w"
[ "$(grep -c "3x3" "$out")" -ge 1 ] || fail "bench table lacks the 3x3 layer"
expect 0 "$ptl" bench ops --layer 2,3,9,9,4,3,2,1 --reps 1 --warmup 0 --threads 1 --format tsv
[ "$(grep -c '	' "$out")" -ge 2 ] || fail "tsv output has no tab-separated rows"
# d_in and d_weight are timed alone too, with positive times, for bench/ops_vs_torch.py.
awk -F'\t' '/^layer\t/ { for (i = 1; i <= NF; i++) col[$i] = i; next }
     /^layer1\t/ { ok = col["din_ms"] && col["dw_ms"] && $col["din_ms"] > 0 && $col["dw_ms"] > 0 }
     END { exit !ok }' "$out" || fail "tsv lacks positive din_ms and dw_ms"
expect 0 "$ptl" bench ops --help
grep_out "\-\-layer"

# A real training step with its profile: every node is timed, and the per-kind rows add up.
expect 0 "$ptl" bench step --arch ptl-resnet18-small --input 3x32x32 --batch 4 --classes 10 \
    --steps 2 --warmup 1 --threads 1 --profile
grep_out "images/s"
grep_out "by op kind"
grep_out "^bconv-cell "
grep_out "^conv2d "
grep_out "slowest 15 nodes"
awk '/by op kind/ {on = 1; next} on && /^all nodes/ {all = $4; exit}
     on && NF == 6 && $2 ~ /^[0-9]+$/ {sum += $5; nodes += $2}
     END {if (all == "" || sum < all * 0.99 || sum > all * 1.01 + 0.02) exit 1}' "$out" ||
    fail "profile rows do not add up to the 'all nodes' total: $(head -c 600 "$out")"
expect 64 "$ptl" bench step --arch resnet18 --profile=yes
grep_err "profile"
# More threads than the cores the process may run on: the cores' count, reported as such (2
# threads on one core ran BLIS's spinning barriers for minutes).
if command -v taskset >/dev/null 2>&1; then
    expect 0 taskset -c 0 "$ptl" bench step --arch ptl-resnet18-small --input 3x32x32 --batch 4 \
        --classes 10 --steps 1 --warmup 0 --threads 2 --format tsv
    [ "$(cut -f3 "$out")" = 1 ] || fail "bench step on one core with --threads 2: $(cat "$out")"
fi

# Bad input: one clear line naming the culprit, exit 64, never a crash.
expect 64 "$ptl" bench ops --layer 2,3,9
grep_err "\-\-layer"
expect 64 "$ptl" bench ops --layer 2,3,4,4,8,7,1,0
grep_err "\-\-layer"
expect 64 "$ptl" bench ops --reps zero
grep_err "\-\-reps"
expect 64 "$ptl" bench ops --no-such-flag
grep_err "no-such-flag"
expect 64 "$ptl" bench nothing
grep_err "nothing"
export PTL_THREADS=abc
expect 64 "$ptl" bench ops --layer 1,1,3,3,1,1,1,0 --reps 1
grep_err "PTL_THREADS"
unset PTL_THREADS

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all CLI checks passed"
