#!/bin/sh
# MSMT17 person re-identification (1041 training identities, 15 cameras):
# packs it into one HDF5 file (layout in docs/data.md).
#
# Usage: datasets/msmt17.sh SRC OUT.h5 [more ptl data pack options, e.g. --on-error skip]
#   SRC: MSMT17_V1/ (list_train.txt, list_query.txt, list_gallery.txt, train/, test/)
# Runs: ptl data pack SRC OUT.h5 --format msmt17 --size $SIZE (default 384x128)
# The ptl binary is $PTL, else ptl on the PATH, else build/ptl of this checkout.
set -eu
usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 64; }
src=$1 out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
ptl=${PTL:-$(command -v ptl || echo "$here/../build/ptl")}
[ -e "$src" ] || { echo "msmt17.sh: $src: no such file or folder" >&2; exit 1; }
exec "$ptl" data pack "$src" "$out" --format msmt17 --size "${SIZE:-384x128}" "$@"
