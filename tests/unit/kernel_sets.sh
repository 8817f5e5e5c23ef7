#!/bin/sh
# The tests of the drivers that call BLIS's micro-kernel on their own packed panels
# (test_conv2d's 'winograd' suite, test_weight_grad, test_weight_panels) on every BLIS kernel
# set this CPU runs, not only the one BLIS (or ptl) picks: they put the tiles, the output
# channels or the pixels on the side where the micro-kernel stores C contiguously, which
# differs between kernel sets (skx: 32x12, by columns; haswell: 6x16 and generic: 4x16, by
# rows), so both layouts get tested on any machine. The suites are small (a few seconds on the generic kernels).
set -u
top_builddir=${top_builddir:-.}
ptl="$top_builddir/ptl"
units="$top_builddir/tests/unit"
for p in "$ptl" "$units/test_conv2d" "$units/test_weight_grad" "$units/test_weight_panels"; do
    [ -x "$p" ] || { echo "FAIL: $p not built"; exit 1; }
done

# What the CPU runs: skx needs AVX-512 F/DQ/BW/VL, haswell AVX2 and FMA; generic runs anywhere.
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
has() { for f in "$@"; do case " $flags " in *" $f "*) ;; *) return 1 ;; esac; done; }
runs() {
    case $1 in
    skx) has avx512f avx512dq avx512bw avx512vl ;;
    haswell) has avx2 fma ;;
    generic) true ;;
    *) false ;;
    esac
}

# BLIS_ARCH_TYPE takes BLIS's numeric id, which depends on BLIS's version: ask ptl --version
# what each id is (ids BLIS was not built with make it abort: skipped).
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
tested="" fails=0
# suite WHAT CMD...: CMD on kernel set $name (BLIS_ARCH_TYPE=$id), its log's tail on failure
suite() {
    what=$1
    shift
    if ! BLIS_ARCH_TYPE=$id "$@" >"$log" 2>&1; then
        echo "FAIL: $what on BLIS's $name kernels (BLIS_ARCH_TYPE=$id):"
        tail -n 20 "$log"
        fails=$((fails + 1))
    fi
}
for id in $(seq 0 63); do
    # (the `true` keeps the subshell, so the shell's "Aborted" goes to /dev/null too)
    name=$( (BLIS_ARCH_TYPE=$id "$ptl" --version 2>/dev/null; true) 2>/dev/null |
        sed -n 's/.*, kernels \([A-Za-z0-9_]*\) (set by BLIS_ARCH_TYPE.*/\1/p')
    [ -n "$name" ] && runs "$name" || continue
    log="$t/$name.log"
    suite "test_conv2d's winograd tests" "$units/test_conv2d" --filter 'winograd/*'
    suite test_weight_grad "$units/test_weight_grad"
    suite test_weight_panels "$units/test_weight_panels"
    tested="$tested $name"
done
case $tested in
*generic*) ;;
*) echo "FAIL: no BLIS kernel set found through ptl --version (tried ids 0-63)"; exit 1 ;;
esac
echo "kernel sets tested:$tested"
[ "$fails" -eq 0 ]
