#!/bin/sh
# Configures (once) and builds ptl out of tree; safe to run again, it only rebuilds what changed.
#   tools/build.sh                 -> build/       (ptl is build/ptl)
#   tools/build.sh --sanitizers    -> build-asan/  (ASan + UBSan)
# Extra arguments after the options go to ./configure on first configuration.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
dir=build
flags=""
if [ "${1:-}" = "--sanitizers" ]; then
    dir=build-asan
    flags="--enable-sanitizers"
    shift
fi
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
    # quiet on success; on failure run again so its errors are shown
    ./autogen.sh >/dev/null 2>&1 || ./autogen.sh
fi
mkdir -p "$dir"
cd "$dir"
if [ ! -f Makefile ]; then
    # shellcheck disable=SC2086
    ../configure -q $flags "$@"
fi
make -j"$(nproc)" >/dev/null
