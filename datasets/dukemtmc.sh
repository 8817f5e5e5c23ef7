#!/bin/sh
# DukeMTMC-reID person re-identification (702 training identities, 8 cameras):
# packs it into one HDF5 file (layout in docs/data.md).
#
# Usage: datasets/dukemtmc.sh SRC OUT.h5 [more ptl data pack options, e.g. --on-error skip]
#   SRC: DukeMTMC-reID/ (bounding_box_train/, query/, bounding_box_test/)
# Runs: ptl data pack SRC OUT.h5 --format dukemtmc --size $SIZE (default 384x128)
# The ptl binary is $PTL, else ptl on the PATH, else build/ptl of this checkout.
set -eu
usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 64; }
src=$1 out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
ptl=${PTL:-$(command -v ptl || echo "$here/../build/ptl")}
[ -e "$src" ] || { echo "dukemtmc.sh: $src: no such file or folder" >&2; exit 1; }
exec "$ptl" data pack "$src" "$out" --format dukemtmc --size "${SIZE:-384x128}" "$@"
