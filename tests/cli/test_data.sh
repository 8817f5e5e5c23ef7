#!/bin/sh
# ptl data pack | info end to end: a small generated IDX folder (gzip train, plain test) is
# packed, `ptl data info` describes both the folder and the packed file, bad command lines exit
# 64 with one line naming the flag, a missing or broken source exits 1 naming the path and
# leaves an existing output as it was; h5py (when /usr/bin/python3 has it) reads the packed
# file's layout as docs/data.md documents it and compares it with the generated data.
set -u
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
ptl="$top_builddir/ptl"
py=/usr/bin/python3

[ -x "$ptl" ] || { echo "FAIL: $ptl not built"; exit 1; }
[ -x "$py" ] || { echo "SKIP: $py is needed to write the test data"; exit 77; }

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
out="$t/stdout" err="$t/stderr"
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect() {
    want=$1; shift
    "$@" >"$out" 2>"$err"
    got=$?
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want ($(head -c 400 "$err"))"
}
grep_out() { grep -qF -- "$1" "$out" || fail "stdout lacks '$1': $(head -c 600 "$out")"; }
grep_err() { grep -qF -- "$1" "$err" || fail "stderr lacks '$1': $(head -c 400 "$err")"; }
one_line_err() { [ "$(wc -l <"$err")" -eq 1 ] || fail "stderr is not one line: $(head -c 400 "$err")"; }

# ---- a small IDX folder: 30 train images (gzip) and 8 test images (plain) of 6x5 ----
mkdir "$t/src"
"$py" - "$t/src" <<'EOF' || { echo "FAIL: could not write the test data"; exit 1; }
import gzip, struct, sys
d = sys.argv[1]
def write(prefix, n, seed, gz):
    img = struct.pack(">IIII", 2051, n, 6, 5) + bytes((i * 31 + seed) % 256 for i in range(n * 30))
    lab = struct.pack(">II", 2049, n) + bytes((i * 3 + seed) % 10 for i in range(n))
    op = gzip.open if gz else open
    ext = ".gz" if gz else ""
    with op("%s/%s-images-idx3-ubyte%s" % (d, prefix, ext), "wb") as f:
        f.write(img)
    with op("%s/%s-labels-idx1-ubyte%s" % (d, prefix, ext), "wb") as f:
        f.write(lab)
write("train", 30, 1, True)
write("t10k", 8, 2, False)
EOF

# ---- pack and info ----
expect 0 "$ptl" data pack "$t/src" "$t/p.h5"
grep_out "train: 30 samples of 1x6x5, 10 classes"
grep_out "test: 8 samples of 1x6x5, 10 classes"
grep_out "wrote $t/p.h5"
[ -f "$t/p.h5" ] || fail "no packed file"
expect 0 "$ptl" data info "$t/p.h5"
grep_out "format: packed (version 1) from idx at "
grep_out "split train: 30 samples of 1x6x5, 10 classes, no cameras"
grep_out "split test: 8 samples of 1x6x5, 10 classes, no cameras"
expect 0 "$ptl" data info "$t/src" --format idx
grep_out "format: idx"
grep_out "split test: 8 samples of 1x6x5, 10 classes, no cameras"
expect 0 "$ptl" data info --format=packed "$t/p.h5"
grep_out "split train: 30 samples"

# ---- bad command lines: exit 64, one line naming the problem ----
expect 0 "$ptl" data --help
grep_out "ptl data pack SRC OUT.h5"
grep_out "--on-error"
expect 0 "$ptl" data pack --help
grep_out "Usage: ptl data"
expect 64 "$ptl" data
grep_err "pack or info expected"
expect 64 "$ptl" data unpack "$t/src"
grep_err "unknown action 'unpack'"
expect 64 "$ptl" data pack "$t/src" "$t/o.h5" --no-such-flag
grep_err "unknown option '--no-such-flag'"
one_line_err
expect 64 "$ptl" data pack "$t/src"
grep_err "pack needs SRC and OUT.h5"
expect 64 "$ptl" data pack "$t/src" "$t/o.h5" extra
grep_err "unexpected argument 'extra'"
expect 64 "$ptl" data pack "$t/src" "$t/o.h5" --size 28
grep_err "--size 28: expected HxW"
expect 64 "$ptl" data pack "$t/src" "$t/o.h5" --size 0x5
grep_err "--size 0x5"
expect 64 "$ptl" data pack "$t/src" "$t/o.h5" --format mnistt
grep_err "--format mnistt: unknown"
expect 64 "$ptl" data pack "$t/src" "$t/o.h5" --on-error ignore
grep_err "--on-error ignore: expected fail or skip"
expect 64 "$ptl" data pack "$t/src" "$t/o.h5" --format
grep_err "--format needs a value"
expect 64 "$ptl" data info
grep_err "info needs PATH"
[ -e "$t/o.h5" ] && fail "a bad command line wrote an output"

# ---- bad sources: exit 1, one line naming the path; an existing output survives ----
cp "$t/p.h5" "$t/keep.h5"
expect 1 "$ptl" data pack "$t/none" "$t/p.h5"
grep_err "$t/none: cannot open (No such file or directory)"
one_line_err
expect 1 "$ptl" data info "$t/none"
grep_err "$t/none: cannot open"
mkdir "$t/empty"
expect 1 "$ptl" data pack "$t/empty" "$t/p.h5"
grep_err "$t/empty: unknown dataset layout: looked for"
cp -r "$t/src" "$t/broken"
head -c 100 "$t/src/t10k-images-idx3-ubyte" >"$t/broken/t10k-images-idx3-ubyte"
expect 1 "$ptl" data pack "$t/broken" "$t/p.h5"
grep_err "$t/broken/t10k-images-idx3-ubyte: truncated"
cmp -s "$t/p.h5" "$t/keep.h5" || fail "a failed pack changed the existing output"
ls "$t" | grep -q '\.tmp\.' && fail "temporary files left: $(ls "$t" | grep '\.tmp\.')"
head -c 3000 "$t/p.h5" >"$t/cut.h5"
expect 1 "$ptl" data info "$t/cut.h5"
grep_err "$t/cut.h5: truncated or corrupt"

# A bad label: an error naming file and sample, or skipped with --on-error skip.
cp -r "$t/src" "$t/badlabel"
"$py" - "$t/badlabel/t10k-labels-idx1-ubyte" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[8 + 5] = 42
open(p, "wb").write(b)
EOF
expect 1 "$ptl" data pack "$t/badlabel" "$t/b.h5"
grep_err "$t/badlabel/t10k-labels-idx1-ubyte: sample 5 has label 42, expected 0..9"
expect 0 "$ptl" data pack "$t/badlabel" "$t/b.h5" --on-error skip
grep_out "test: 7 samples of 1x6x5, 10 classes, 1 skipped"
grep_err "sample 5 has label 42, expected 0..9: skipped"

# ---- the layout, as h5py sees it ----
if ! "$py" -c "import h5py, numpy" 2>/dev/null; then
    echo "SKIP part: $py has no h5py/numpy, layout not checked"
else
    "$py" - "$t/p.h5" "$t/src" <<'EOF' || fail "the packed layout differs from docs/data.md"
import gzip, sys, h5py, numpy as np
path, src = sys.argv[1], sys.argv[2]
bad = 0
def check(cond, what):
    global bad
    if not cond:
        print("FAIL: " + what)
        bad += 1
with h5py.File(path, "r") as f:
    check(int(f.attrs["ptl_packed_version"]) == 1, "ptl_packed_version")
    check(f.attrs["source_format"] == "idx", "source_format %r" % f.attrs["source_format"])
    check(f.attrs["source_path"].endswith("/src"), "source_path %r" % f.attrs["source_path"])
    check(f.attrs["splits"] == "train,test", "splits %r" % f.attrs["splits"])
    check(list(f.attrs["classes"]) == [10, 10], "classes %r" % f.attrs["classes"])
    for split, prefix, n, gz in (("train", "train", 30, True), ("test", "t10k", 8, False)):
        g = f[split]
        img, lab = g["images"], g["labels"]
        check(img.dtype == np.uint8 and img.shape == (n, 1, 6, 5), "%s/images %s %s" % (split, img.dtype, img.shape))
        check(img.chunks is not None and 1 <= img.chunks[0] <= 64 and img.chunks[1:] == (1, 6, 5),
              "%s/images chunks %s" % (split, img.chunks))
        check(lab.dtype == np.int32 and lab.shape == (n,), "%s/labels %s %s" % (split, lab.dtype, lab.shape))
        check(int(g.attrs["classes"]) == 10, "%s classes" % split)
        check("cameras" not in g and "paths" not in g, "%s: IDX has no cameras or paths" % split)
        op = gzip.open if gz else open
        ext = ".gz" if gz else ""
        want_x = np.frombuffer(op("%s/%s-images-idx3-ubyte%s" % (src, prefix, ext), "rb").read()[16:], np.uint8)
        want_y = np.frombuffer(op("%s/%s-labels-idx1-ubyte%s" % (src, prefix, ext), "rb").read()[8:], np.uint8)
        check(np.array_equal(img[()].reshape(-1), want_x), "%s pixels differ from the source" % split)
        check(np.array_equal(lab[()], want_y.astype(np.int32)), "%s labels differ from the source" % split)
        # A range read, as a rank reading its shard does.
        check(np.array_equal(img[3:7].reshape(-1), want_x[3 * 30:7 * 30]), "%s range read" % split)
sys.exit(1 if bad else 0)
EOF
fi

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all data checks passed"
