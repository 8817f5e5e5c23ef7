#!/bin/sh
# CIFAR-10 binary version (50000 + 10000 RGB 32x32 images, 10 classes):
# packs it into one HDF5 file (layout in docs/data.md).
#
# Usage: datasets/cifar10.sh SRC OUT.h5 [more ptl data pack options, e.g. --on-error skip]
#   SRC: cifar-10-batches-bin/ (from cifar-10-binary.tar.gz), or the folder that holds it
# Runs: ptl data pack SRC OUT.h5 --format cifar10
# The ptl binary is $PTL, else ptl on the PATH, else build/ptl of this checkout.
set -eu
usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 64; }
src=$1 out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
ptl=${PTL:-$(command -v ptl || echo "$here/../build/ptl")}
[ -e "$src" ] || { echo "cifar10.sh: $src: no such file or folder" >&2; exit 1; }
[ -d "$src/cifar-10-batches-bin" ] && src=$src/cifar-10-batches-bin
exec "$ptl" data pack "$src" "$out" --format cifar10 "$@"
