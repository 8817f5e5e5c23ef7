#!/bin/sh
# ptl train over real MPI ranks (mpirun -n 1, 2, 4 --oversubscribe) on real Fashion-MNIST:
# - latent.merge none + dist.sync_bn: R ranks x B/R give the parameters of 1 rank x B after
#   10 steps (within fp32 reduction tolerance), and a mis-sharded run (data.shard local) does
#   not, so the comparison can fail;
# - every rank holds bit-identical parameters after every step, and after each merge
#   (latent.merge mean) identical latent states (fingerprints in the per-rank debug logs);
# - evaluation sharded over ranks gives the single-process numbers;
# - a global batch that does not divide by R is refused with one line;
# - a rank killed mid-run ends the job fast with a message naming it, checkpoints stay valid;
# - a rank that hangs (SIGSTOP) is caught by the other rank's watchdog within dist.timeout;
# - --trace writes a Chrome trace with every rank's allreduce buckets.
set -u
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
ptl="$top_builddir/ptl"
fmnist=/usr/share/datasets/fashion-mnist
py=${PYTHON_ORACLE:-/usr/bin/python3}
[ "$py" = none ] && py=/usr/bin/python3

[ -x "$ptl" ] || { echo "FAIL: $ptl not built"; exit 1; }
[ -f "$fmnist/train-images-idx3-ubyte.gz" ] ||
    { echo "FAIL: $fmnist missing: install dataset-fashion-mnist (Debian)"; exit 1; }
command -v mpirun >/dev/null || { echo "FAIL: mpirun missing: install openmpi-bin"; exit 1; }
"$py" -c 'import h5py, numpy' 2>/dev/null ||
    { echo "SKIP: $py lacks h5py/numpy (tools/install-deps.sh --test)"; exit 77; }

OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive PTL_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM OMP_WAIT_POLICY PTL_THREADS
t=$(mktemp -d)
trap 'kill -9 $(cat "$t"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$t"' EXIT
out="$t/stdout" err="$t/stderr"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
run() { # R ARGS...: ptl under mpirun with R ranks (R = 0: no mpirun)
    r=$1; shift
    if [ "$r" -eq 0 ]; then timeout 600 "$ptl" "$@"
    else timeout 600 mpirun --oversubscribe -n "$r" "$ptl" "$@"; fi >"$out" 2>"$err"
}
fp() { # FILE KEY: the values after KEY on every step line
    grep '^step ' "$1" | sed "s/.* $2 \([0-9a-f]*\).*/\1/"
}

cat >"$t/cfg.yaml" <<EOF
run:
  threads: 1
  log_every: 1
  debug_log: true
model:
  arch: ptl-resnet18-narrow
data:
  path: $fmnist
  classes: [0, 1, 2]
  per_class: 64
  batch: 32
  eval_max: 300
  eval_batch: 64
augment:
  flip: 0.5
  pad: 2
  mean: [0.286]
  std: [0.353]
optim:
  lr: 0.0001 # small: rounding differences grow fast in the first steps at larger rates
train:
  epochs: 2
  eval_every: 0
latent:
  merge: none
dist:
  sync_bn: true
EOF

# ---- R ranks x B/R == 1 rank x B (merge none, SyncBN), 10 steps ----
for r in 0 1 2 4; do
    run "$r" train "$t/cfg.yaml" --out "$t/eq$r" --steps 10 ||
        fail "equivalence run on $r ranks: $(tail -c 600 "$err")"
done
run 2 train "$t/cfg.yaml" --out "$t/local2" --steps 10 --set data.shard=local ||
    fail "data.shard local run: $(tail -c 600 "$err")"
cat >"$t/cmp.py" <<'EOF'
import sys, h5py, numpy as np
def flat(path):
    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        return np.concatenate([f[n][()].astype(np.float64).ravel() for n in sorted(names)
                               if "num_batches" not in n])
a, b = flat(sys.argv[1]), flat(sys.argv[2])
print("%.3g" % (np.linalg.norm(a - b) / np.linalg.norm(a)))
EOF
rel() { "$py" "$t/cmp.py" "$1" "$2"; }
for r in 1 2 4; do
    d=$(rel "$t/eq0/final.h5" "$t/eq$r/final.h5") || { fail "compare eq$r"; continue; }
    # 1 rank under mpirun is the same computation: bit-identical
    if [ "$r" -eq 1 ]; then
        [ "$d" = "0" ] || fail "mpirun -n 1 differs from no mpirun: relative $d"
    else
        awk "BEGIN{exit !($d < 1e-4)}" ||
            fail "$r ranks x $((32 / r)) differ from 1 rank x 32 after 10 steps: relative $d"
    fi
    echo "ok: $r ranks vs 1 rank after 10 steps: relative difference $d"
done
dl=$(rel "$t/eq0/final.h5" "$t/local2/final.h5")
d2=$(rel "$t/eq0/final.h5" "$t/eq2/final.h5")
echo "ok: a run sharded differently (data.shard local) is $dl away"

awk "BEGIN{exit !($dl > 100 * $d2 + 1e-7)}" ||
    fail "a differently sharded run (local: $dl) is not clearly further than global ($d2)"
# the same losses on every rank count: rank 0 logs the mean over ranks
for r in 2 4; do
    i=1
    while [ "$i" -lt "$r" ]; do
        [ "$(fp "$t/eq$r/debug.log" params)" = "$(fp "$t/eq$r/debug.rank$i.log" params)" ] ||
            fail "$r ranks: rank $i's parameters differ from rank 0's after some step"
        i=$((i + 1))
    done
done
[ "$(fp "$t/eq4/debug.log" params | wc -l)" -eq 10 ] || fail "eq4 debug.log lacks 10 step lines"

# ---- latent.merge mean: identical states on every rank after every merge ----
run 4 train "$t/cfg.yaml" --out "$t/merge4" --steps 6 --set latent.merge=mean \
    --set latent.merge_every=2 --set data.shard=local ||
    fail "merge run: $(tail -c 600 "$err")"
n=$(grep -c merged-states "$t/merge4/debug.log")
[ "$n" -eq 3 ] || fail "latent.merge_every 2 over 6 steps: $n merges logged, expected 3"
for i in 1 2 3; do
    [ "$(grep merged-states "$t/merge4/debug.log" | sed 's/.*merged-states \([0-9a-f]*\).*/\1/')" = \
      "$(grep merged-states "$t/merge4/debug.rank$i.log" | sed 's/.*merged-states \([0-9a-f]*\).*/\1/')" ] ||
        fail "after a merge rank $i's latent states differ from rank 0's"
done
grep -q '"event":"latent_merge"' "$t/merge4/metrics.jsonl" ||
    fail "metrics.jsonl lacks the latent_merge spread events"

# ---- evaluation sharded over ranks == one process ----
run 0 eval "$t/cfg.yaml" --weights "$t/eq0/final.h5" || fail "eval 1 rank: $(cat "$err")"
one=$(sed 's/.*eval: //' "$out")
run 2 eval "$t/cfg.yaml" --weights "$t/eq0/final.h5" || fail "eval 2 ranks: $(cat "$err")"
two=$(sed 's/.*eval: //' "$out")
[ -n "$one" ] && [ "$one" = "$two" ] || fail "eval over 2 ranks '$two' != 1 rank '$one'"
[ "$(grep -c . "$out")" -eq 1 ] || fail "eval over 2 ranks printed more than rank 0's line"

# ---- person ReID over 2 ranks: P x K split by identities, triplet per rank, sharded CMC/mAP ----
if "$py" -c 'import PIL' 2>/dev/null; then
    "$py" "$top_srcdir/tests/cli/make_market_lookalike.py" "$t/market"
    cat >"$t/reid.yaml" <<EOF
run: {threads: 1, log_every: 1}
model: {arch: ptl-resnet18-narrow}
data: {path: $t/market, format: market1501, size: [32, 16], sampler: pk, pk: [4, 2], batch: 8,
       eval_split: query, eval_batch: 2}
augment: {flip: 0.5, erase: 0.5, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}
loss: {ce: 1, triplet: 1, margin: 0.3}
optim: {name: adam, lr: 0.001}
train: {epochs: 2, eval_every: 0}
EOF
    run 2 train "$t/reid.yaml" --out "$t/reid2" || fail "ReID on 2 ranks: $(tail -c 600 "$err")"
    grep -q "(6 queries)" "$out" || fail "ReID on 2 ranks: no evaluation of the 6 queries: $(cat "$out")"
    run 0 eval "$t/reid.yaml" --weights "$t/reid2/final.h5" || fail "ReID eval: $(cat "$err")"
    one=$(sed 's/.*eval: //' "$out")
    run 2 eval "$t/reid.yaml" --weights "$t/reid2/final.h5" || fail "ReID eval on 2: $(cat "$err")"
    two=$(sed 's/.*eval: //' "$out")
    [ -n "$one" ] && [ "$one" = "$two" ] || fail "ReID eval over 2 ranks '$two' != 1 rank '$one'"
    run 2 train "$t/reid.yaml" --out "$t/reid3" --set 'data.pk=[3, 2]' --set data.batch=6
    grep -q "data.pk: 3 identities per batch do not divide over 2 ranks" "$err" ||
        fail "P=3 over 2 ranks: no clear message: $(head -c 600 "$err")"

    # one rank cannot read its data: the job ends, naming the rank and the file
    cp -r "$t/market" "$t/market-bad"
    bad=$(ls "$t/market-bad/bounding_box_train/"*.jpg | sort | tail -n 1)
    head -c 300 "$bad" >"$bad.part" && mv "$bad.part" "$bad"
    start=$(date +%s)
    run 2 train "$t/reid.yaml" --out "$t/reid-bad" --set data.path="$t/market-bad" \
        --set train.epochs=50
    st=$?
    took=$(($(date +%s) - start))
    [ "$st" -ne 0 ] || fail "a truncated image was trained on without error"
    [ "$took" -le 120 ] || fail "the job took $took s to end after a read error"
    grep -q "ptl: rank [01]: .*$(basename "$bad")" "$err" ||
        fail "the read error does not name the rank and the file: $(head -c 800 "$err")"
else
    echo "note: no PIL in $py: the ReID part is not run"
fi

# ---- a global batch that does not divide ----
run 3 train "$t/cfg.yaml" --out "$t/bad3" --steps 2
st=$?
[ "$st" -ne 0 ] || fail "batch 32 over 3 ranks was accepted"
grep -q "data.batch: the global batch of 32 does not divide over 3 ranks" "$err" ||
    fail "no clear message for batch 32 over 3 ranks: $(head -c 600 "$err")"
[ "$(grep -c 'does not divide' "$err")" -eq 1 ] || fail "the batch message is not printed once"

# ---- a rank killed mid-run ----
# A long 2-rank run in the background (checkpoints every 2 steps); waits until rank 1 has logged
# a few steps and sets $job (mpirun's pid) and $victim (rank 1's pid).
long() { # NAME TIMEOUT
    timeout 300 mpirun --oversubscribe -n 2 "$ptl" train "$t/cfg.yaml" --out "$t/$1" \
        --set train.epochs=1000 --set checkpoint.every_steps=2 --set dist.timeout="$2" \
        >"$t/$1.out" 2>"$t/$1.err" &
    job=$!
    echo "$job" >"$t/$1.pid"
    i=0
    while [ "$(grep -c '^step' "$t/$1/debug.rank1.log" 2>/dev/null)" != 5 ] && [ $i -lt 600 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    victim=$(sed -n 's/^rank 1 of 2 pid \([0-9]*\).*/\1/p' "$t/$1/debug.rank1.log" 2>/dev/null)
}
long kill 60
if [ -z "$victim" ]; then fail "no rank 1 pid in the kill run: $(tail -c 600 "$t/kill.err")"; else
    start=$(date +%s)
    kill -9 "$victim"
    wait "$job"
    st=$?
    took=$(($(date +%s) - start))
    [ "$st" -ne 0 ] || fail "the job ended 0 after a rank was killed"
    [ "$took" -le 30 ] || fail "the job took $took s to end after a rank was killed"
    grep -qi "rank 1.*signal 9\|rank 1.*killed" "$t/kill.err" ||
        fail "no message naming rank 1: $(tail -c 800 "$t/kill.err")"
    ls "$t/kill/checkpoints/"ckpt-*.h5 >/dev/null 2>&1 || fail "no checkpoint written before the kill"
    for f in "$t/kill/checkpoints/"ckpt-*.h5; do
        "$ptl" ckpt info "$f" >/dev/null 2>&1 || fail "checkpoint $f does not verify after the kill"
    done
    echo "ok: killed rank 1, the job ended in $took s with status $st"
fi

# ---- a hung rank: the watchdog (dist.timeout 5 s) ends the job ----
long hang 5
if [ -z "$victim" ]; then fail "no rank 1 pid in the hang run: $(tail -c 600 "$t/hang.err")"; else
    start=$(date +%s)
    kill -STOP "$victim"
    wait "$job"
    st=$?
    took=$(($(date +%s) - start))
    kill -9 "$victim" 2>/dev/null
    [ "$st" -ne 0 ] || fail "the job ended 0 with a hung rank"
    [ "$took" -le 40 ] || fail "the watchdog took $took s (dist.timeout 5)"
    grep -q "rank 0: no progress for [0-9]* s (in .*step [0-9]*; dist.timeout 5 s)" "$t/hang.err" ||
        fail "no watchdog message from rank 0: $(tail -c 800 "$t/hang.err")"
    echo "ok: hung rank 1, the watchdog ended the job in $took s"
fi

# ---- --trace ----
run 2 train "$t/cfg.yaml" --out "$t/trace" --steps 3 --trace "$t/trace.json" ||
    fail "traced run: $(tail -c 600 "$err")"
"$py" - "$t/trace.json" <<'EOF' || fail "trace.json"
import json, sys
ev = json.load(open(sys.argv[1]))["traceEvents"]
for rank in (0, 1):
    names = {e["name"] for e in ev if e.get("pid") == rank}
    for need in ("forward", "backward", "allreduce", "wait", "optimizer", "data"):
        assert need in names, "rank %d has no %s event" % (rank, need)
assert sum(1 for e in ev if e["name"] == "backward") == 6, "expected 3 backward events per rank"
EOF

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all distributed training checks passed"
