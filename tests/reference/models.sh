#!/bin/sh
# The model oracle as an automake test: whole networks against PyTorch (tests/unit/test_models).
#
# Generates, with $PYTHON_ORACLE and tests/reference/make_model_fixtures.py, into
# $top_builddir/tests/reference/models/:
#   counts.json  the state_dict and parameter count of every architecture of ptl's registry
#                (models.counts compares them all);
#   <arch>.h5 + <arch>.weights.h5  three training batches and an eval forward of a randomly
#                initialised model (models.fixtures compares every output, gradient and running
#                statistic); each is compared as soon as it is written and deleted when it
#                passes (they are 10 MB to 1.6 GB each; a failing one is kept to look at).
# Fixtures are generated live, never committed. The default list keeps the run near three
# minutes on two cores: the five backbones the brief names plus one PTL, one PTL-v2 and the
# MGN-PTL network at small inputs. PTL_MODEL_ORACLE=all adds every other ptl-*/ptlv2-*/mgn*
# architecture the reference builds (tens of minutes).
#
# Environment (set by Makefile.am's AM_TESTS_ENVIRONMENT; defaults for running it by hand):
#   top_srcdir, top_builddir, PYTHON_ORACLE; PTL_MODEL_ORACLE (unset or "all")
# Exit status: 0 pass, 1 a comparison failed, 77 skip (no torch), 99 the harness cannot run.

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
generator="$top_srcdir/tests/reference/make_model_fixtures.py"
harness="$top_builddir/tests/unit/test_models"
out="$top_builddir/tests/reference/models"

if [ ! -x "$harness" ]; then
    echo "models: $harness is not built (make check builds it)" >&2
    exit 99
fi
if [ -z "$PYTHON_ORACLE" ] || [ "$PYTHON_ORACLE" = none ] ||
    ! "$PYTHON_ORACLE" -c 'import torch, torchvision, h5py' >/dev/null 2>&1; then
    echo "models: SKIP: PYTHON_ORACLE='$PYTHON_ORACLE' cannot import torch, torchvision and" \
        "h5py; the model oracle generates its PyTorch reference live and needs all three"
    exit 77
fi

# No bytecode next to the generator (the source tree may be read-only); one torch thread per
# process keeps the reference deterministic.
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE
mkdir -p "$out" || exit 99

echo "models: reference from torch $("$PYTHON_ORACLE" -c 'import torch; print(torch.__version__)')"
if ! "$PYTHON_ORACLE" "$generator" --counts "$out/counts.json"; then
    echo "models: $generator --counts failed" >&2
    exit 99
fi

# arch:CxHxW:batch. Small inputs, but large enough that every BatchNorm still normalises over
# >= 4 values per channel (a 2x1 map at batch 2) and MGN's part maps have >= 3 rows.
default_list="resnet18:3x64x32:2 resnet50:3x128x64:2 densenet121:3x64x64:2
densenet-bc-100:3x32x32:2 resnet18-small:3x32x32:2 ptl-resnet18-small:3x32x32:2
ptlv2-densenet-bc-100:3x32x32:2 mgn-ptl:3x96x32:2 ptl-resnet18-narrow:3x32x32:2"
list=$default_list
if [ "$PTL_MODEL_ORACLE" = all ]; then
    # every other architecture the reference could build (those in counts.json's "archs")
    more=$("$PYTHON_ORACLE" - "$out/counts.json" <<'EOF'
import json, sys
archs = json.load(open(sys.argv[1]))["archs"]
for a in archs:
    if a.startswith(("ptl-", "ptlv2-", "mgn")):
        shape = "3x96x32" if a.startswith("mgn") else \
            "3x32x32" if a.endswith(("-small", "-narrow", "bc-100")) else "3x64x64"
        print(f"{a}:{shape}:2")
EOF
)
    for spec in $more; do
        case " $(echo $default_list) " in *" ${spec%%:*}:"*) ;; *) list="$list $spec" ;; esac
    done
fi

# Three streams at once (two cores): the counts comparison; the generator writing one fixture
# after another; and this loop comparing each fixture as soon as its .done marker appears.
PTL_MODEL_COUNTS="$out/counts.json" "$harness" --filter 'models/counts' \
    >"$out/counts.log" 2>&1 &
counts_pid=$!
rm -f "$out"/*.h5 "$out"/*.done
"$PYTHON_ORACLE" "$generator" --fixtures-dir "$out" --list "$(echo $list)" &
gen_pid=$!
trap 'kill $gen_pid $counts_pid 2>/dev/null; exit 99' INT TERM HUP

status=0
failed=""
for spec in $list; do
    arch=${spec%%:*}
    fixture="$out/$arch.h5"
    # wait for the fixture, or for the generator to have stopped without writing it
    while [ ! -f "$out/$arch.done" ] && kill -0 $gen_pid 2>/dev/null; do
        sleep 1
    done
    if [ ! -f "$out/$arch.done" ]; then
        echo "models: $arch: fixture generation failed" >&2
        status=1
        failed="$failed $arch(generator)"
        break
    fi
    if PTL_MODEL_FIXTURES=$fixture "$harness" --filter 'models/fixtures'; then
        rm -f "$fixture" "$out/$arch.weights.h5"
    else
        echo "models: $arch differs from PyTorch; its fixture is kept: $fixture" >&2
        status=1
        failed="$failed $arch"
    fi
done
wait $gen_pid || {
    status=1
    failed="$failed generator"
}
if ! wait $counts_pid; then
    status=1
    failed="$failed counts"
fi
cat "$out/counts.log"
[ $status -eq 0 ] && echo "models: every network matches PyTorch" ||
    echo "models: FAILED:$failed" >&2
exit $status
