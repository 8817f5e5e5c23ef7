#!/bin/sh
# ptl train / ptl eval end to end on real Fashion-MNIST (Debian's dataset-fashion-mnist) and on
# a generated Market-1501 look-alike: the loss decreases, the same seed gives a bit-identical
# run, --steps ends the run where it says, a run directory is never overwritten, packed and raw
# data train alike, ptl eval reproduces the run's final evaluation, a PTL model starts from a
# pre-trained backbone, the P x K / triplet / CMC-mAP path runs, and bad configs and flags give
# one clear line and the right exit status (64 bad command line, 1 anything else).
set -u
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
ptl="$top_builddir/ptl"
fmnist=/usr/share/datasets/fashion-mnist
py=${PYTHON_ORACLE:-/usr/bin/python3}

[ -x "$ptl" ] || { echo "FAIL: $ptl not built"; exit 1; }
# The dataset is a declared dependency of the test suite (tools/install-deps.sh, .ci/run):
# missing, it is a failure, not a skip.
[ -f "$fmnist/train-images-idx3-ubyte.gz" ] ||
    { echo "FAIL: $fmnist missing: install dataset-fashion-mnist (Debian)"; exit 1; }

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
out="$t/stdout" err="$t/stderr"
fails=0
# One thread, passive OpenMP waits: exact reproducibility checks and a loaded CI machine.
OMP_WAIT_POLICY=passive
export OMP_WAIT_POLICY

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect() {
    want=$1; shift
    "$@" >"$out" 2>"$err"
    got=$?
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want ($(tail -c 600 "$err"))"
}
grep_out() { grep -qF -- "$1" "$out" || fail "stdout lacks '$1': $(head -c 400 "$out")"; }
grep_err() { grep -qF -- "$1" "$err" || fail "stderr lacks '$1': $(head -c 400 "$err")"; }
one_line_err() { [ "$(wc -l <"$err")" -eq 1 ] || fail "stderr is not one line: $(head -c 600 "$err")"; }
# train losses of a metrics.jsonl, one per line
losses() { grep '"kind":"train"' "$1" | sed 's/.*"loss":\([^,]*\),.*/\1/'; }

# A small, easy task: T-shirt vs trouser, 64 training images each, 200 test images. lr 0.01:
# at 0.02 the final accuracy of this 24-step run swings between 0.57 and 0.96 with the seed
# (measured over seeds 1-9, and with rounding-level kernel changes), at 0.01 it stays 0.92-0.97.
cat >"$t/small.yaml" <<EOF
run:
  threads: 1
  log_every: 1
model:
  arch: resnet18-narrow
data:
  path: $fmnist
  classes: [0, 1]
  per_class: 64
  batch: 32
  eval_max: 200
augment:
  flip: 0.5
  pad: 2
  mean: [0.286]
  std: [0.353]
optim:
  lr: 0.01
train:
  epochs: 6
  eval_every: 3
EOF

# ---- command line ----
expect 64 "$ptl" train
expect 64 "$ptl" train "$t/small.yaml"
grep_err "needs --out"
expect 64 "$ptl" train "$t/small.yaml" --out "$t/x" --bogus
grep_err "unknown option '--bogus'"
expect 64 "$ptl" train "$t/small.yaml" --out "$t/x" --steps -3
expect 64 "$ptl" eval "$t/small.yaml"
expect 0 "$ptl" train --help
grep_out "--out RUN_DIR"
expect 0 "$ptl" train --list-keys
grep_out "optim.lr"
[ -e "$t/x" ] && fail "a rejected command line created $t/x"
# every shipped example config is valid, and --dry-run prints it resolved
for c in "$top_srcdir"/jobs/configs/*.yaml; do
    expect 0 "$ptl" train "$c" --dry-run
    grep_out "arch:"
done
expect 0 "$ptl" train "$t/small.yaml" --dry-run --set optim.lr=0.5
grep_out "lr: 0.5"
[ -e "$t/x" ] && fail "--dry-run wrote something"

# ---- config errors: one line naming file, line and key; exit 1; nothing written ----
printf 'optim:\n  lrr: 0.1\n' >"$t/bad-key.yaml"
expect 1 "$ptl" train "$t/bad-key.yaml" --out "$t/x"
grep_err "bad-key.yaml:2"
grep_err "optim.lrr"
one_line_err
printf 'optim:\n  lr: fast\n' >"$t/bad-type.yaml"
expect 1 "$ptl" train "$t/bad-type.yaml" --out "$t/x"
grep_err "bad-type.yaml:2"
grep_err "optim.lr"
expect 1 "$ptl" train "$t/small.yaml" --out "$t/x" --set optim.momentum=2
grep_err "optim.momentum"
expect 1 "$ptl" train "$t/missing.yaml" --out "$t/x"
grep_err "missing.yaml"
expect 1 "$ptl" train "$t/small.yaml" --out "$t/x" --set model.arch=resnet9000
grep_err "resnet9000"
expect 1 "$ptl" train "$t/small.yaml" --out "$t/x" --set data.path="$t/nowhere"
grep_err "$t/nowhere"
expect 1 "$ptl" train "$t/small.yaml" --out "$t/x" --set "data.classes=[0, 42]"
grep_err "data.classes"
expect 1 "$ptl" train "$t/small.yaml" --out "$t/x" --set data.batch=1000
grep_err "data.batch"
[ -e "$t/x/metrics.jsonl" ] && fail "a failed setup left a metrics.jsonl"

# ---- a real run: loss decreases, accuracy well above chance, files complete ----
expect 0 "$ptl" train "$t/small.yaml" --out "$t/a" --seed 7
grep_out "final.h5 written"
for f in config.yaml metrics.jsonl final.h5; do
    [ -s "$t/a/$f" ] || fail "run a lacks $f"
done
[ -d "$t/a/checkpoints" ] || fail "run a lacks checkpoints/"
grep -q "seed: 7" "$t/a/config.yaml" || fail "config.yaml does not hold --seed 7"
n_train=$(grep -c '"kind":"train"' "$t/a/metrics.jsonl")
[ "$n_train" -eq 24 ] || fail "run a logged $n_train train steps, expected 24 (6 epochs x 4)"
n_eval=$(grep -c '"kind":"eval"' "$t/a/metrics.jsonl")
[ "$n_eval" -eq 2 ] || fail "run a logged $n_eval evaluations, expected 2 (epoch 3, end)"
first=$(losses "$t/a/metrics.jsonl" | head -4 | awk '{s += $1} END {print s / NR}')
last=$(losses "$t/a/metrics.jsonl" | tail -4 | awk '{s += $1} END {print s / NR}')
awk -v f="$first" -v l="$last" 'BEGIN {exit !(l < 0.7 * f)}' ||
    fail "loss did not decrease: first steps $first, last steps $last"
top1=$(sed -n 's/.*eval: top-1 \([0-9.]*\).*/\1/p' "$out")
awk -v a="$top1" 'BEGIN {exit !(a >= 0.85)}' || fail "top-1 $top1 after training, expected >= 0.85"

# ---- the same seed gives a bit-identical run; another seed does not ----
expect 0 "$ptl" train "$t/small.yaml" --out "$t/b" --seed 7
losses "$t/a/metrics.jsonl" >"$t/la"
losses "$t/b/metrics.jsonl" >"$t/lb"
cmp -s "$t/la" "$t/lb" || fail "same seed, different losses: $(paste "$t/la" "$t/lb" | head -3)"
if command -v h5diff >/dev/null; then
    h5diff -q "$t/a/final.h5" "$t/b/final.h5" || fail "same seed, different final.h5"
    expect 0 "$ptl" train "$t/small.yaml" --out "$t/c" --seed 8 --steps 4
    h5diff -q "$t/a/final.h5" "$t/c/final.h5" >/dev/null && fail "seeds 7 and 8 gave equal weights"
else
    fail "h5diff missing (install hdf5-tools)"
fi

# ---- --steps ends the run at that global step ----
expect 0 "$ptl" train "$t/small.yaml" --out "$t/s" --seed 7 --steps 6
last_step=$(grep '"kind":"train"' "$t/s/metrics.jsonl" | tail -1 | sed 's/.*"step":\([0-9]*\).*/\1/')
[ "$last_step" = 6 ] || fail "--steps 6 ended at step $last_step"
losses "$t/s/metrics.jsonl" >"$t/ls"
head -6 "$t/la" | cmp -s - "$t/ls" || fail "the first 6 steps of a --steps 6 run differ from the full run"

# ---- more threads than cores: as many as the cores, said on stderr ----
if command -v taskset >/dev/null; then
    expect 0 taskset -c 0 "$ptl" train "$t/small.yaml" --out "$t/th" --seed 7 --steps 2 \
        --set run.threads=2
    grep_err "2 threads asked for, but this process may run on 1 core(s): running 1"
fi

# ---- a run directory is never overwritten ----
sum_before=$(cat "$t/a/metrics.jsonl" "$t/a/final.h5" | cksum)
expect 1 "$ptl" train "$t/small.yaml" --out "$t/a"
grep_err "already holds a run"
[ "$(cat "$t/a/metrics.jsonl" "$t/a/final.h5" | cksum)" = "$sum_before" ] ||
    fail "a refused run changed $t/a"

# ---- ptl eval reproduces the final evaluation of the run ----
expect 0 "$ptl" eval "$t/a/config.yaml" --weights "$t/a/final.h5"
eval_top1=$(sed -n 's/.*: top-1 \([0-9.]*\).*/\1/p' "$out")
[ "$eval_top1" = "$top1" ] || fail "ptl eval top-1 $eval_top1, the run ended with $top1"
expect 1 "$ptl" eval "$t/a/config.yaml" --weights "$t/nothing.h5"
grep_err "nothing.h5"
expect 1 "$ptl" eval "$t/a/config.yaml" --weights "$t/a/final.h5" --set model.arch=resnet18-small
grep_err "final.h5"

# ---- a PTL network fine-tuned from the run's backbone ----
expect 0 "$ptl" train "$t/small.yaml" --out "$t/p" --steps 3 --set model.arch=ptl-resnet18-narrow \
    --set model.weights="$t/a/final.h5" --set model.load=backbone --set "data.classes=[2, 3]"
grep_err "weights $t/a/final.h5"
grep_err "fc.weight"

# ---- packed data trains exactly like the raw files ----
if "$ptl" data pack "$fmnist" "$t/fmnist.h5" >"$out" 2>"$err"; then
    expect 0 "$ptl" train "$t/small.yaml" --out "$t/k" --seed 7 --steps 6 \
        --set data.path="$t/fmnist.h5"
    losses "$t/k/metrics.jsonl" | cmp -s - "$t/ls" || fail "packed and raw data train differently"
else
    fail "ptl data pack $fmnist failed: $(head -c 400 "$err")"
fi

# ---- person ReID: P x K sampling, triplet + CE, CMC/mAP on a Market-1501 look-alike ----
if "$py" -c 'import PIL' 2>/dev/null; then
    "$py" "$top_srcdir/tests/cli/make_market_lookalike.py" "$t/market"
    cat >"$t/reid.yaml" <<EOF
run: {threads: 1, log_every: 1}
model: {arch: resnet18-narrow}
data: {path: $t/market, format: market1501, size: [32, 16], sampler: pk, pk: [4, 2], batch: 8,
       eval_split: query, eval_batch: 16}
augment: {flip: 0.5, erase: 0.5, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}
loss: {ce: 1, triplet: 1, margin: 0.3}
optim: {name: adam, lr: 0.001, amsgrad: true}
train: {epochs: 3, eval_every: 0}
EOF
    expect 0 "$ptl" train "$t/reid.yaml" --out "$t/r"
    grep_out "rank-1"
    grep_out "(6 queries)"
    grep -q '"map":' "$t/r/metrics.jsonl" || fail "ReID run logged no mAP"
    grep -q '"loss_triplet":0,' "$t/r/metrics.jsonl" && grep -c '"loss_triplet":0,' "$t/r/metrics.jsonl" |
        grep -qx "$(grep -c '"kind":"train"' "$t/r/metrics.jsonl")" && fail "triplet loss always 0"
    expect 1 "$ptl" train "$t/reid.yaml" --out "$t/r2" --set data.batch=9
    grep_err "data.pk"
else
    echo "note: no PIL in $py: the ReID part is not run"
fi

# ---- ptl plot draws the run (when built) ----
expect 0 "$ptl" plot "$t/a/metrics.jsonl" -o "$t/a/curves.png"
[ -s "$t/a/curves.png" ] || fail "ptl plot wrote no PNG"

[ $fails -eq 0 ] && echo "train: all checks passed"
[ $fails -eq 0 ]
