#!/bin/sh
# An ImageNet-style class-folder dataset (ImageNet, or any train/<class>/*.jpg tree):
# packs it into one HDF5 file (layout in docs/data.md).
#
# Usage: datasets/imagenet-folders.sh SRC OUT.h5 [more ptl data pack options, e.g. --on-error skip]
#   SRC: the folder with train/<class>/ (and val/<class>/, test/<class>/ when present); the class list
#        is train's, so val/ must be sorted into the same class folders
# Runs: ptl data pack SRC OUT.h5 --format folders --size $SIZE (default 256x256)
# The ptl binary is $PTL, else ptl on the PATH, else build/ptl of this checkout.
set -eu
usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 64; }
src=$1 out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
ptl=${PTL:-$(command -v ptl || echo "$here/../build/ptl")}
[ -e "$src" ] || { echo "imagenet-folders.sh: $src: no such file or folder" >&2; exit 1; }
exec "$ptl" data pack "$src" "$out" --format folders --size "${SIZE:-256x256}" "$@"
