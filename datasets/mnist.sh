#!/bin/sh
# MNIST (IDX, 60000 + 10000 grey 28x28 digits, 10 classes):
# packs it into one HDF5 file (layout in docs/data.md).
#
# Usage: datasets/mnist.sh SRC OUT.h5 [more ptl data pack options, e.g. --on-error skip]
#   SRC: the folder with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-*
# Runs: ptl data pack SRC OUT.h5 --format idx
# The ptl binary is $PTL, else ptl on the PATH, else build/ptl of this checkout.
set -eu
usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 64; }
src=$1 out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
ptl=${PTL:-$(command -v ptl || echo "$here/../build/ptl")}
[ -e "$src" ] || { echo "mnist.sh: $src: no such file or folder" >&2; exit 1; }
exec "$ptl" data pack "$src" "$out" --format idx "$@"
