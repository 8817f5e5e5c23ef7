#!/bin/sh
# The PyTorch oracle as an automake test: compares every op of ptl with torch (test_oracle).
#
# With a Python that has torch and h5py ($PYTHON_ORACLE, found by configure), the fixtures are
# regenerated into the build tree and compared live, so the check follows the installed torch.
# Without one, the committed tests/reference/ops.h5 is used. The source tree is only read
# (make distcheck builds from a read-only copy).
#
# Environment (set by Makefile.am's AM_TESTS_ENVIRONMENT; defaults for running it by hand):
#   top_srcdir, top_builddir, PYTHON_ORACLE
# Exit status: test_oracle's; 99 (automake "hard error") when the harness itself cannot run.

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
committed="$top_srcdir/tests/reference/ops.h5"
generator="$top_srcdir/tests/reference/make_op_fixtures.py"
harness="$top_builddir/tests/unit/test_oracle"

if [ ! -x "$harness" ]; then
    echo "oracle: $harness is not built (make check builds it)" >&2
    exit 99
fi

fixtures=$committed
if [ -n "$PYTHON_ORACLE" ] && [ "$PYTHON_ORACLE" != none ] &&
    "$PYTHON_ORACLE" -c 'import torch, h5py' >/dev/null 2>&1; then
    torch_version=$("$PYTHON_ORACLE" -c 'import torch; print(torch.__version__)')
    mkdir -p "$top_builddir/tests/reference" || exit 99
    fixtures="$top_builddir/tests/reference/ops-fresh.h5"
    rm -f "$fixtures"
    # No bytecode: nothing is written next to the generator in the (read-only) source tree.
    if ! PYTHONDONTWRITEBYTECODE=1 "$PYTHON_ORACLE" "$generator" --out "$fixtures"; then
        echo "oracle: $generator failed with torch $torch_version" >&2
        exit 99
    fi
    echo "oracle: live fixtures from torch $torch_version ($fixtures)"
    if [ -f "$committed" ] && ! cmp -s "$committed" "$fixtures"; then
        # Not a failure (another torch or h5py may round or lay out differently), but the
        # committed file is what machines without torch test against: keep it current.
        echo "oracle: note: the committed $committed differs from this generation;" \
            "regenerate it with make_op_fixtures.py --out if the generator changed"
    fi
else
    echo "oracle: no torch+h5py in PYTHON_ORACLE='$PYTHON_ORACLE':" \
        "using the committed fixtures $committed"
fi

PTL_OP_FIXTURES=$fixtures
export PTL_OP_FIXTURES
"$harness"
exit $?
