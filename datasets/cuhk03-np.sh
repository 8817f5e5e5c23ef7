#!/bin/sh
# CUHK03-NP person re-identification (the new protocol: 767 training identities, 2 cameras),
# labelled or detected boxes: packs one of them into one HDF5 file (layout in docs/data.md).
#
# Usage: datasets/cuhk03-np.sh SRC labeled|detected OUT.h5 [more ptl data pack options]
#   SRC: cuhk03-np/ (labeled/ and detected/, each with bounding_box_train/, query/,
#        bounding_box_test/)
# Runs: ptl data pack SRC OUT.h5 --format cuhk03-labeled|cuhk03-detected --size $SIZE
#       (default 384x128)
# The ptl binary is $PTL, else ptl on the PATH, else build/ptl of this checkout.
set -eu
usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -ge 3 ] || { usage >&2; exit 64; }
src=$1 boxes=$2 out=$3
shift 3
case "$boxes" in
labeled | detected) ;;
*) echo "cuhk03-np.sh: '$boxes': expected labeled or detected" >&2; exit 64 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
ptl=${PTL:-$(command -v ptl || echo "$here/../build/ptl")}
[ -e "$src" ] || { echo "cuhk03-np.sh: $src: no such file or folder" >&2; exit 1; }
exec "$ptl" data pack "$src" "$out" --format "cuhk03-$boxes" --size "${SIZE:-384x128}" "$@"
