#!/bin/sh
# The optimizer oracle as an automake test: ptl's SGD / Adam / AMSGrad steps and learning-rate
# schedules against torch.optim and torch.optim.lr_scheduler (tests/unit/test_optim).
#
#   1. test_optim --filter 'optim_ref/layout' writes the reference model's parameter layout;
#   2. $PYTHON_ORACLE tests/reference/make_optim_fixtures.py runs torch.optim on it (5 steps per
#      case, per-role groups) and the schedulers, into a fixture file;
#   3. test_optim --filter 'optim_ref/torch' replays every case and compares params, state
#      buffers and learning rates (tolerance: see tests/unit/test_optim.c).
# The fixture (~60 MB) is generated live in a temporary folder and removed afterwards, unless
# the comparison fails: then it is kept and its path printed.
#
# Environment (set by Makefile.am's AM_TESTS_ENVIRONMENT; defaults for running it by hand):
#   top_srcdir, top_builddir, PYTHON_ORACLE (default /usr/bin/python3)
# Exit status: 0 pass, 1 a comparison failed, 77 skip (no torch/h5py), 99 the harness cannot run.

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
python=${PYTHON_ORACLE:-/usr/bin/python3}
generator="$top_srcdir/tests/reference/make_optim_fixtures.py"
harness="$top_builddir/tests/unit/test_optim"

if [ ! -x "$harness" ]; then
    echo "optim: $harness is not built (make check builds it)" >&2
    exit 99
fi
if [ "$python" = none ] || ! "$python" -c 'import torch, h5py, numpy' >/dev/null 2>&1; then
    echo "optim: SKIP: PYTHON_ORACLE='$python' cannot import torch, h5py and numpy; the" \
        "optimizer oracle generates its PyTorch reference live and needs them"
    exit 77
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/ptl-optim.XXXXXX") || exit 99
keep=0
cleanup() { [ $keep -eq 1 ] || rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 99' INT TERM HUP
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE

if ! PTL_OPTIM_LAYOUT="$dir/layout.txt" "$harness" --filter 'optim_ref/layout' ||
    [ ! -s "$dir/layout.txt" ]; then
    echo "optim: the layout writer failed" >&2
    exit 99
fi
echo "optim: reference from torch $("$python" -c 'import torch; print(torch.__version__)')"
if ! "$python" "$generator" --layout "$dir/layout.txt" --out "$dir/optim.h5"; then
    echo "optim: $generator failed" >&2
    exit 99
fi
if PTL_OPTIM_FIXTURES="$dir/optim.h5" "$harness" --filter 'optim_ref/torch'; then
    echo "optim: every optimizer step and schedule matches PyTorch"
    exit 0
fi
keep=1
echo "optim: FAILED: ptl differs from torch.optim; the fixture is kept: $dir/optim.h5" >&2
exit 1
