#!/bin/sh
# `ptl plot`: draws a generated metrics.jsonl (train, eval and run lines, an unfinished last
# line) into a PNG and checks the file (signature, IHDR size, not blank: distinct colours and
# the curve colours with the oracle Python's PIL, else the file size), that panels without
# data are left out, and the error contract: one line naming the file (and line), exit 1 for a
# bad file, 64 for a bad command line, an existing PNG left untouched and no temporary left.
set -u
top_builddir=${top_builddir:-.}
ptl="$top_builddir/ptl"
py=${PYTHON_ORACLE:-/usr/bin/python3}

[ -x "$ptl" ] || { echo "FAIL: $ptl not built"; exit 1; }

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
grep_out() { grep -qF -- "$1" "$out" || fail "stdout lacks '$1': $(head -c 400 "$out")"; }
grep_err() { grep -qF -- "$1" "$err" || fail "stderr lacks '$1': $(head -c 400 "$err")"; }
one_line_err() { [ "$(wc -l <"$err")" -eq 1 ] || fail "stderr is not one line: $(head -c 400 "$err")"; }
no_temporaries() {
    left=$(find "$t" -name '*.png.??????' | head -1)
    [ -z "$left" ] || fail "temporary file left behind: $left"
}

# The PNG's 8-byte signature, then IHDR width and height (big-endian at bytes 16..23).
png_size() {
    sig=$(od -An -tu1 -N8 "$1" | tr -s ' ' | sed 's/^ //; s/ $//')
    [ "$sig" = "137 80 78 71 13 10 26 10" ] || { echo "bad-signature"; return; }
    od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d\n", (($1*256+$2)*256+$3)*256+$4, (($5*256+$6)*256+$7)*256+$8 }'
}

# ---- a metrics file as the training loop writes it ----
# 3 epochs of train lines every 10 steps (loss = ce + triplet, multistep lr), classification and
# ReID eval lines, run start/end lines with nested fields and escapes, and a last line cut short.
awk 'BEGIN {
    print "{\"kind\":\"run\",\"event\":\"start\",\"config\":{\"lr\":[0.1,0.01],\"x\":null},\"note\":\"caf\\u00e9 \\\"a\\\"\\n\\/\"}";
    lr = 0.1;
    for (s = 0; s <= 600; s += 10) {
        if (s == 200 || s == 400) lr /= 10;
        ce = 2.3 * exp(-s / 120) + 0.02; tr = 0.5 * exp(-s / 60) + 0.001;
        printf "{\"kind\":\"train\",\"step\":%d,\"epoch\":%d,\"loss\":%.6g,\"loss_ce\":%.6g,\"loss_triplet\":%.6e,\"lr\":%g,\"images_per_s\":153.2,\"time_s\":%g}\n", s, s / 200, ce + tr, ce, tr, lr, s * 0.3;
        if (s > 0 && s % 150 == 0) {
            printf "{\"kind\":\"eval\",\"step\":%d,\"epoch\":%d,\"top1\":%.4f,\"top5\":%.4f,\"loss\":%.4f}\n", s, s / 200, 1 - 0.7 * exp(-s / 200), 1 - 0.2 * exp(-s / 100), 1.5 * exp(-s / 200);
            printf "{\"kind\":\"eval\",\"step\":%d,\"epoch\":%d,\"rank1\":%.4f,\"rank5\":0.8,\"rank10\":0.86,\"map\":%.4f}\n", s, s / 200, 0.7 - 0.6 * exp(-s / 200), 0.5 - 0.45 * exp(-s / 250);
        }
    }
    print "{\"kind\":\"run\",\"event\":\"end\",\"wall_s\":1.5E+2}";
    printf "{\"kind\":\"train\",\"step\":610,\"loss\":0.0";
}' >"$t/metrics.jsonl"
last=$(($(wc -l <"$t/metrics.jsonl") + 1))

# ---- the plot ----
expect 0 "$ptl" plot "$t/metrics.jsonl" -o "$t/curves.png"
grep_out "61 train and 8 eval lines, 3 panels"
grep_err "metrics.jsonl:$last: unfinished last line"
[ "$(png_size "$t/curves.png")" != bad-signature ] || fail "curves.png: not a PNG signature"
h3=$(png_size "$t/curves.png" | cut -dx -f2)
[ "$(png_size "$t/curves.png" | cut -dx -f1)" = 1000 ] || fail "default width is not 1000: $(png_size "$t/curves.png")"
no_temporaries

expect 0 "$ptl" plot "$t/metrics.jsonl" --output="$t/sized.png" --width 640 --height=480 --title "run 1"
[ "$(png_size "$t/sized.png")" = 640x480 ] || fail "--width 640 --height 480 gave $(png_size "$t/sized.png")"

# Not blank: many colours (anti-aliased text and curves) and the first three curve colours
# (tab10 blue, orange, green) on a real number of pixels.
if [ "$py" != none ] && command -v "$py" >/dev/null && "$py" -c 'import PIL' 2>/dev/null; then
    "$py" - "$t/curves.png" >"$out" 2>&1 <<'EOF' || fail "curves.png looks blank: $(cat "$out")"
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
counts = {c: n for n, c in im.getcolors(maxcolors=1 << 24)}
want = {"blue": (31, 119, 180), "orange": (255, 127, 14), "green": (44, 160, 44)}
bad = ["%s: %d px" % (k, counts.get(v, 0)) for k, v in want.items() if counts.get(v, 0) < 50]
white = counts.get((255, 255, 255), 0) / (im.width * im.height)
if len(counts) < 50 or bad or not 0.5 < white < 0.99:
    print("%d colours, white %.2f, curve colours %s" % (len(counts), white, bad or "ok"))
    sys.exit(1)
EOF
else
    [ "$(wc -c <"$t/curves.png")" -gt 20000 ] || fail "curves.png is only $(wc -c <"$t/curves.png") bytes"
fi

# Panels without data are left out: a loss-only run gives one panel, a shorter image.
printf '{"kind":"train","step":1,"loss":1.5}\n{"kind":"train","step":2,"loss":1e-1,"lr":null}\n' >"$t/loss.jsonl"
expect 0 "$ptl" plot "$t/loss.jsonl" -o "$t/loss.png"
grep_out "2 train and 0 eval lines, 1 panel ->"
h1=$(png_size "$t/loss.png" | cut -dx -f2)
[ "$h1" -lt "$h3" ] 2>/dev/null || fail "one panel ($h1 px) is not shorter than three ($h3 px)"

# ---- bad files: one line naming the file (and the line), exit 1, nothing written ----
echo "not a png" >"$t/keep.png"
bad_file() { # file, expected message
    expect 1 "$ptl" plot "$1" -o "$t/keep.png"
    grep_err "$2"
    one_line_err
    [ "$(cat "$t/keep.png")" = "not a png" ] || fail "$1: keep.png was overwritten"
}
bad_file "$t/missing.jsonl" "missing.jsonl: cannot open"
: >"$t/empty.jsonl"
bad_file "$t/empty.jsonl" "empty.jsonl: empty file"
printf '{"kind":"run","event":"start"}\n{"kind":"eval","step":5,"top1":0.5}\n' >"$t/notrain.jsonl"
bad_file "$t/notrain.jsonl" 'notrain.jsonl: no "train" lines'
head -n 5 "$t/metrics.jsonl" >"$t/malformed.jsonl"
echo '{"kind":"train","step":60,"loss":0.5,}' >>"$t/malformed.jsonl"
tail -n 3 "$t/metrics.jsonl" | head -n 2 >>"$t/malformed.jsonl"
bad_file "$t/malformed.jsonl" "malformed.jsonl:6: malformed JSON"
printf '{"kind":"train","step":1,"loss":0.5}\n{"kind":"train","step":2,"loss":NaN}\n' >"$t/nan.jsonl"
bad_file "$t/nan.jsonl" "nan.jsonl:2: malformed JSON"
printf '{"kind":"train","step":1,"loss":"0.5"}\n' >"$t/type.jsonl"
bad_file "$t/type.jsonl" 'type.jsonl:1: "loss" must be a number'
printf '{"kind":"train","step":1,"loss":0.5} {}\n' >"$t/trailing.jsonl"
bad_file "$t/trailing.jsonl" "trailing.jsonl:1: malformed JSON: text after the end"
printf '{"kind":"train","step":1,"note":"a\\x"}\n' >"$t/escape.jsonl"
bad_file "$t/escape.jsonl" "escape.jsonl:1: malformed JSON: bad escape"
no_temporaries

# Output into a missing directory: the output is named.
expect 1 "$ptl" plot "$t/metrics.jsonl" -o "$t/no/such/dir/curves.png"
grep_err "no/such/dir/curves.png: cannot create"
[ ! -e "$t/no" ] || fail "a directory was created for the output"

# ---- bad command lines: exit 64, one line ----
bad_cli() {
    expect 64 "$ptl" plot "$@"
    one_line_err
}
bad_cli "$t/metrics.jsonl" -o "$t/x.png" --bogus
grep_err "unknown option '--bogus'"
bad_cli "$t/metrics.jsonl"
grep_err "-o CURVES.png is required"
bad_cli -o "$t/x.png"
bad_cli "$t/metrics.jsonl" "$t/loss.jsonl" -o "$t/x.png"
bad_cli "$t/metrics.jsonl" -o
bad_cli "$t/metrics.jsonl" -o "$t/x.png" --width 100
grep_err "--width 100"
bad_cli "$t/metrics.jsonl" -o "$t/x.png" --height=12x
bad_cli "$t/metrics.jsonl" -o "$t/metrics.jsonl"
grep_err "refusing to overwrite"
expect 64 "$ptl" plot "$t/metrics.jsonl" -o "$t/x.png" --height 200
grep_err "--height 200 is too small for 3 panels"
[ ! -e "$t/x.png" ] || fail "a bad command line wrote x.png"

expect 0 "$ptl" plot --help
grep_out "Usage: ptl plot METRICS.jsonl -o CURVES.png"

if [ "$fails" -gt 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "ptl plot: all checks passed"
exit 0
