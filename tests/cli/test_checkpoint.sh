#!/bin/sh
# Training checkpoints end to end on real Fashion-MNIST (docs/checkpoint.md):
# 1. resuming is bit-exact: 2N steps straight == N steps, a new process, --resume auto, N more
#    (final.h5 byte-equal by h5diff), on 1 rank and on 2 MPI ranks, at an epoch boundary and
#    in the middle of an epoch;
# 2. SIGUSR1 in the middle of an epoch (1 rank; 2 ranks through mpirun; SIGTERM on 1 rank):
#    status 75, "stopped by signal", a checkpoint that verifies, and resuming gives the straight
#    run's weights;
# 3. a 2-rank checkpoint resumes on 1 and on 4 ranks from the merged latent states, the loss
#    staying in line;
# 4. damaged checkpoints (truncated, flipped bytes, missing group, other format version, missing
#    file) are refused by `ptl ckpt info` and `--resume PATH` with one line, skipped by
#    `--resume auto` (which takes the older valid one); another architecture's checkpoint is
#    refused by name; --resume auto with no checkpoint starts from step 0;
# 5. SIGKILL at random moments of a run that checkpoints every step never leaves `latest` on,
#    or a ckpt-*.h5 named, file that does not verify, and the run continues each time;
# 6. `ptl ckpt export` gives the model group as plain weights that ptl eval (and
#    tools/h52torch.py + torch.load, when torch is there) accept; ptl eval reads a checkpoint;
# 7. checkpoint.keep_last and the checkpoint written at the end.
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
command -v h5diff >/dev/null || { echo "FAIL: h5diff missing: install hdf5-tools"; exit 1; }
"$py" -c 'import h5py, numpy' 2>/dev/null ||
    { echo "SKIP: $py lacks h5py/numpy (tools/install-deps.sh --test)"; exit 77; }

OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive PTL_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM OMP_WAIT_POLICY PTL_THREADS
t=$(mktemp -d)
trap 'kill -9 $(cat "$t"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$t"' EXIT
out="$t/stdout" err="$t/stderr"
fails=0
started=$(date +%s)
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
run() { # R ARGS...: ptl with R MPI ranks (R = 0: no mpirun); stdout, stderr to $out, $err
    r=$1; shift
    if [ "$r" -eq 0 ]; then timeout 300 "$ptl" "$@"
    else timeout 300 mpirun --oversubscribe -n "$r" "$ptl" "$@"; fi >"$out" 2>"$err"
}
grep_err() { grep -qF -- "$1" "$err" || fail "$2: stderr lacks '$1': $(head -c 600 "$err")"; }
one_line_err() { [ "$(wc -l <"$err")" -eq 1 ] || fail "$1: stderr is not one line: $(head -c 800 "$err")"; }
same_weights() { # A B WHAT
    h5diff -q "$1" "$2" >/dev/null 2>&1 || fail "$3: $1 and $2 differ ($(h5diff -q "$1" "$2" 2>&1 | head -c 300))"
}
verifies() { "$ptl" ckpt info "$1" >/dev/null 2>&1; }
# train losses of a metrics.jsonl as "step loss" lines
losses() { grep '"kind":"train"' "$1" | sed 's/.*"step":\([0-9]*\),.*"loss":\([^,]*\),.*/\1 \2/'; }
ntrain() { c=$(grep -c '"kind":"train"' "$1" 2>/dev/null); echo "${c:-0}"; }
ck() { printf '%s/checkpoints/ckpt-%010d.h5' "$1" "$2"; }

# 3 classes x 32 images, batch 16: 6 batches an epoch. Momentum (optimizer state), latent
# states merged every 3 steps (per-rank states that differ at a checkpoint), an evaluation at
# every epoch's end (merges and averages that a resumed run must redo the same way).
cat >"$t/cfg.yaml" <<EOF
run:
  threads: 1
  log_every: 1
model:
  arch: ptl-resnet18-narrow
data:
  path: $fmnist
  classes: [0, 1, 2]
  per_class: 32
  batch: 16
  eval_max: 48
  eval_batch: 48
augment:
  flip: 0.5
  pad: 2
  mean: [0.286]
  std: [0.353]
optim:
  lr: 0.01
  momentum: 0.9
train:
  epochs: 3
  eval_every: 1
latent:
  merge: mean
  merge_every: 3
EOF
cfg="$t/cfg.yaml"

# ---- 1. bit-exact resume: 2N straight == N, new process, --resume auto to 2N ----
resume_same() { # RANKS N NAME
    r=$1 n=$2 name=$3 m=$(($2 * 2))
    run "$r" train "$cfg" --out "$t/$name-s" --steps "$m" --set checkpoint.every_steps="$n" ||
        { fail "$name: straight run of $m steps: $(tail -c 600 "$err")"; return; }
    run "$r" train "$cfg" --out "$t/$name-r" --steps "$n" --set checkpoint.every_steps="$n" ||
        { fail "$name: first $n steps: $(tail -c 600 "$err")"; return; }
    [ "$(cat "$t/$name-r/checkpoints/latest" 2>/dev/null)" = "$(basename "$(ck . "$n")")" ] ||
        fail "$name: after $n steps latest is '$(cat "$t/$name-r/checkpoints/latest" 2>/dev/null)'"
    run "$r" train "$cfg" --out "$t/$name-r" --steps "$m" --set checkpoint.every_steps="$n" \
        --resume auto || { fail "$name: resumed run: $(tail -c 600 "$err")"; return; }
    grep_err "resuming from $(ck "$t/$name-r" "$n"): step $n" "$name"
    grep -q "merged latent states" "$err" && fail "$name: same ranks resumed from merged states"
    grep -q '"event":"resume"' "$t/$name-r/metrics.jsonl" || fail "$name: no resume event in metrics.jsonl"
    same_weights "$t/$name-s/final.h5" "$t/$name-r/final.h5" \
        "$name: $m steps straight vs $n + resume + $((m - n)) on $r ranks"
    # the checkpoints at 2N hold the same state (all but the root's `created` attribute)
    for g in run model optimizer latent buffers; do
        h5diff -q "$(ck "$t/$name-s" "$m")" "$(ck "$t/$name-r" "$m")" "/$g" >/dev/null 2>&1 ||
            fail "$name: the checkpoints at step $m differ in /$g"
    done
    # the steps after the resume log the straight run's losses
    losses "$t/$name-s/metrics.jsonl" | tail -n "$((m - n))" >"$t/$name.ls"
    losses "$t/$name-r/metrics.jsonl" | tail -n "$((m - n))" >"$t/$name.lr"
    cmp -s "$t/$name.ls" "$t/$name.lr" ||
        fail "$name: losses after the resume differ: $(paste "$t/$name.ls" "$t/$name.lr" | head -3)"
}
resume_same 0 6 b1e   # 1 rank, the checkpoint at an epoch boundary (6 batches an epoch)
resume_same 0 4 b1    # 1 rank, mid-epoch (epoch 0 batch 4; 8 = epoch 1 batch 2)
resume_same 2 4 b2    # 2 ranks, mid-epoch, per-rank latent states and BatchNorm statistics
resume_same 2 6 b2e   # 2 ranks, at the epoch boundary (the evaluation's merges come after it)
# a finished run resumes to its final evaluation: the same weights, the same eval record
cp "$t/b1-s/final.h5" "$t/b1-final.h5"
run 0 train "$cfg" --out "$t/b1-s" --steps 8 --set checkpoint.every_steps=4 --resume auto ||
    fail "resuming a finished run: $(tail -c 600 "$err")"
grep_err "resuming from $(ck "$t/b1-s" 8): step 8, epoch 1, batch 2" "resuming a finished run"
same_weights "$t/b1-final.h5" "$t/b1-s/final.h5" "resuming a finished run"
grep '"kind":"eval"' "$t/b1-s/metrics.jsonl" | tail -n 2 | sed 's/,"samples".*//' >"$t/evals"
[ "$(sed -n 1p "$t/evals")" = "$(sed -n 2p "$t/evals")" ] ||
    fail "resuming a finished run: its final evaluation is logged as $(sed -n 2p "$t/evals"), the run's as $(sed -n 1p "$t/evals")"
"$ptl" ckpt info "$(ck "$t/b2-r" 4)" >"$out" 2>"$err" || fail "2-rank checkpoint does not verify: $(cat "$err")"
grep -q "epoch 0, next batch 4 of 6, global batch 16, 2 ranks" "$out" ||
    fail "2-rank checkpoint info: $(head -c 600 "$out")"
echo "ok: 1. bit-exact resume ($(($(date +%s) - started)) s)"

# ---- 2. SIGUSR1 mid-epoch: status 75, a checkpoint, resume == straight ----
# 12 batches an epoch here, the signal after 3 logged steps: it lands inside epoch 0.
long="--set data.per_class=64 --set train.epochs=1000"
signal_run() { # RANKS NAME SIGNAL
    r=$1 name=$2 sig=$3
    if [ "$r" -eq 0 ]; then
        timeout 300 "$ptl" train "$cfg" --out "$t/$name" $long >"$t/$name.out" 2>"$t/$name.err" &
    else
        timeout 300 mpirun --oversubscribe -n "$r" "$ptl" train "$cfg" --out "$t/$name" $long \
            >"$t/$name.out" 2>"$t/$name.err" &
    fi
    job=$!
    echo "$job" >"$t/$name.pid"
    # the pid to signal: ptl itself, or mpirun (timeout runs it as its child)
    i=0
    while [ "$(ntrain "$t/$name/metrics.jsonl")" -lt 3 ] && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    target=$(pgrep -P "$job" | head -n 1)
    [ -n "$target" ] || { fail "$name: no process to signal"; return; }
    kill -"$sig" "$target"
    wait "$job"
    st=$?
    rm -f "$t/$name.pid"
    [ "$st" -eq 75 ] || fail "$name: SIG$sig gave exit status $st, expected 75: $(tail -c 600 "$t/$name.err")"
    grep -q "stopped by signal" "$t/$name.err" ||
        fail "$name: stderr lacks 'stopped by signal': $(tail -c 600 "$t/$name.err")"
    [ "$(grep -c "stopped by signal" "$t/$name.err")" -eq 1 ] ||
        fail "$name: 'stopped by signal' printed more than once"
    latest=$(cat "$t/$name/checkpoints/latest" 2>/dev/null)
    s=$(echo "$latest" | sed -n 's/^ckpt-0*\([0-9][0-9]*\)\.h5$/\1/p')
    [ -n "$s" ] || { fail "$name: no checkpoint after SIG$sig (latest '$latest')"; return; }
    grep -q "at step $s after writing" "$t/$name.err" ||
        fail "$name: the stop message does not name step $s: $(tail -c 400 "$t/$name.err")"
    "$ptl" ckpt info "$t/$name/checkpoints/$latest" >"$out" 2>"$err" ||
        fail "$name: the checkpoint written on SIG$sig does not verify: $(cat "$err")"
    grep -q "next batch $s of 12" "$out" ||
        fail "$name: stopped at step $s, not in the middle of epoch 0: $(head -c 400 "$out")"
    grep -q '"status":"stopped"' "$t/$name/metrics.jsonl" || fail "$name: no stopped end event"
    [ -e "$t/$name/final.h5" ] && fail "$name: a stopped run wrote final.h5"
    if [ "$sig" != USR1 ]; then echo "ok: $name stopped at step $s"; return; fi
    m=$((s + 3))
    run "$r" train "$cfg" --out "$t/$name" $long --resume auto --steps "$m" ||
        { fail "$name: resuming after SIG$sig: $(tail -c 600 "$err")"; return; }
    grep_err "resuming from $t/$name/checkpoints/$latest" "$name"
    run "$r" train "$cfg" --out "$t/$name-s" $long --steps "$m" ||
        { fail "$name: straight run: $(tail -c 600 "$err")"; return; }
    same_weights "$t/$name-s/final.h5" "$t/$name/final.h5" \
        "$name: stopped at $s by SIG$sig + resume to $m vs straight to $m"
    echo "ok: $name stopped at step $s, resumed to $m: bit-identical"
}
signal_run 0 sig1 USR1
signal_run 2 sig2 USR1
signal_run 0 sigterm TERM # the same path: no resume here
echo "ok: 2. SIGUSR1, SIGTERM ($(($(date +%s) - started)) s)"

# ---- 3. a 2-rank checkpoint onto 1 and 4 ranks ----
# b2-s: 2 ranks, 8 steps, checkpoints at 4 and 8; continue from 4 to 8 on other rank counts.
before=$(losses "$t/b2-s/metrics.jsonl" | sed -n 's/^4 //p')
for r in 0 4; do
    run "$r" train "$cfg" --out "$t/x$r" --steps 8 --resume "$(ck "$t/b2-s" 4)" ||
        { fail "2 ranks -> $r: $(tail -c 600 "$err")"; continue; }
    grep_err "resuming from $(ck "$t/b2-s" 4): step 4, epoch 0, batch 4 (merged latent states" "2 ranks -> $r"
    [ -s "$t/x$r/final.h5" ] || fail "2 ranks -> $r: no final.h5"
    after=$(losses "$t/x$r/metrics.jsonl" | sed -n 1p)
    case "$after" in 5\ *) ;; *) fail "2 ranks -> $r: the first step after resuming is '$after', not 5" ;; esac
    after=${after#* }
    awk -v a="$after" -v b="$before" 'BEGIN {exit !(a > 0 && b > 0 && a < 1.5 * b && b < 1.5 * a)}' ||
        fail "2 ranks -> $r: loss $after after the resume, $before before (not within x1.5)"
    echo "ok: 2 ranks -> $((r == 0 ? 1 : r)): loss $before at step 4, $after at step 5"
done
echo "ok: 3. other rank counts ($(($(date +%s) - started)) s)"

# ---- 4. damaged checkpoints ----
good_old=$(ck "$t/b1-s" 4) good=$(ck "$t/b1-s" 8)
cat >"$t/damage.py" <<'EOF'
import sys, h5py
kind, path = sys.argv[1], sys.argv[2]
if kind == "flip":
    with h5py.File(path, "r") as f:
        big = []
        f["model"].visititems(lambda n, o: big.append((o.size, "model/" + n))
                              if isinstance(o, h5py.Dataset) else None)
        size, name = max(big)
        off = f[name].id.get_offset()  # contiguous: where its bytes are; chunked: None
        if off is not None:
            at = off + f[name].id.get_storage_size() // 2
        else:
            info = f[name].id.get_chunk_info(0)
            at = info.byte_offset + info.size // 2
    with open(path, "r+b") as raw:
        raw.seek(at)
        b = bytearray(raw.read(8))
        raw.seek(at)
        raw.write(bytes(x ^ 0x5A for x in b))
    print(name)
elif kind == "group":
    with h5py.File(path, "r+") as f:
        del f["optimizer"]
elif kind == "version":
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
EOF
for kind in truncate flip group version missing; do
    d="$t/dmg-$kind"
    mkdir -p "$d/checkpoints"
    cp "$good_old" "$d/checkpoints/"
    bad="$d/checkpoints/$(basename "$good")"
    cp "$good" "$bad"
    echo "$(basename "$good")" >"$d/checkpoints/latest"
    case $kind in
    truncate)
        head -c $(($(wc -c <"$good") / 2)) "$good" >"$bad"
        want="truncated" ;;
    flip)
        ds=$("$py" "$t/damage.py" flip "$bad") || fail "flip: h5py failed"
        want="dataset $ds is damaged" ;;
    group)
        "$py" "$t/damage.py" group "$bad" || fail "group: h5py failed"
        want="group /optimizer is missing" ;;
    version)
        "$py" "$t/damage.py" version "$bad" || fail "version: h5py failed"
        want="format version 99" ;;
    missing) # latest names a file that is not there
        rm -f "$bad"
        want="no such file" ;;
    esac
    cmp -s "$good" "$bad" 2>/dev/null && fail "$kind: the copy was not damaged"
    run 0 ckpt info "$bad"
    st=$?
    [ "$st" -eq 1 ] || fail "$kind: ptl ckpt info exited $st, expected 1"
    grep_err "$bad" "$kind: ckpt info"
    grep_err "$want" "$kind: ckpt info"
    one_line_err "$kind: ckpt info"
    run 0 train "$cfg" --out "$d/explicit" --steps 10 --resume "$bad"
    st=$?
    [ "$st" -eq 1 ] || fail "$kind: --resume PATH exited $st, expected 1"
    grep_err "$bad" "$kind: --resume PATH"
    grep_err "$want" "$kind: --resume PATH"
    one_line_err "$kind: --resume PATH"
    [ -e "$d/explicit/final.h5" ] && fail "$kind: --resume of a damaged checkpoint trained"
    run 0 train "$cfg" --out "$d" --steps 5 --resume auto ||
        fail "$kind: --resume auto: $(tail -c 600 "$err")"
    grep_err "ptl train: skipping $bad (" "$kind: --resume auto"
    grep_err "$want" "$kind: --resume auto"
    grep_err "resuming from $d/checkpoints/$(basename "$good_old"): step 4" "$kind: --resume auto"
    [ -s "$d/final.h5" ] || fail "$kind: --resume auto wrote no final.h5"
    # damaged weights are not used by ptl eval either (it reads model/ only: a missing
    # optimizer group or another format version does not concern it)
    if [ "$kind" = truncate ] || [ "$kind" = flip ]; then
        run 0 eval "$cfg" --weights "$bad"
        st=$?
        [ "$st" -eq 1 ] || fail "$kind: ptl eval --weights of the damaged checkpoint exited $st"
        grep_err "$bad" "$kind: ptl eval"
    fi
done
# --resume auto with no checkpoint at all: a note, then step 0
run 0 train "$cfg" --out "$t/fresh" --steps 2 --resume auto || fail "--resume auto, nothing to resume: $(tail -c 600 "$err")"
grep_err "no checkpoint yet in $t/fresh/checkpoints: a new run" "--resume auto, nothing"
[ "$(losses "$t/fresh/metrics.jsonl" | sed -n '1s/ .*//p')" = 1 ] || fail "--resume auto, nothing: did not start at step 1"
# another architecture's checkpoint
run 0 train "$cfg" --out "$t/plain" --steps 1 --set model.arch=resnet18-narrow ||
    fail "resnet18-narrow run: $(tail -c 600 "$err")"
run 0 train "$cfg" --out "$t/arch" --steps 3 --resume "$(ck "$t/plain" 1)"
st=$?
[ "$st" -eq 1 ] || fail "another arch: --resume exited $st, expected 1"
grep_err "was written by a resnet18-narrow run, the config trains ptl-resnet18-narrow" "another arch"
grep_err "$(ck "$t/plain" 1)" "another arch"
one_line_err "another arch"
[ -e "$t/arch/final.h5" ] && fail "another arch: trained anyway"
echo "ok: 4. damaged checkpoints ($(($(date +%s) - started)) s)"

# ---- 5. SIGKILL while (nearly always) writing ----
k="$t/kill"
# batch 4: short steps, so a good part of the time goes to writing the (same size) checkpoints
kill_args="--set checkpoint.every_steps=1 --set train.epochs=1000 --set data.batch=4"
prev=0
for i in 1 2 3 4 5; do
    resume=""
    [ "$i" -gt 1 ] && resume="--resume auto"
    n0=$(ntrain "$k/metrics.jsonl")
    "$ptl" train "$cfg" --out "$k" $kill_args $resume >"$t/kill.out" 2>"$t/kill.err" &
    job=$!
    echo "$job" >"$t/kill.pid"
    # wait for the process to be training, then 1-3 s at random
    j=0
    while [ "$(ntrain "$k/metrics.jsonl")" -le "$n0" ] && [ $j -lt 300 ]; do
        sleep 0.1
        j=$((j + 1))
    done
    nap=$(od -An -N2 -tu2 /dev/urandom | awk '{printf "%.2f", 1 + 2 * $1 / 65535}')
    sleep "$nap"
    kill -9 "$job"
    wait "$job" 2>/dev/null
    rm -f "$t/kill.pid"
    latest=$(cat "$k/checkpoints/latest" 2>/dev/null)
    case "$latest" in
    ckpt-*.h5) ;;
    *) fail "kill $i: latest is '$latest'"; continue ;;
    esac
    verifies "$k/checkpoints/$latest" ||
        fail "kill $i after $nap s: latest $latest does not verify: $("$ptl" ckpt info "$k/checkpoints/$latest" 2>&1)"
    for f in "$k/checkpoints/"ckpt-*.h5; do
        verifies "$f" || fail "kill $i after $nap s: $f does not verify"
    done
    for f in "$k/checkpoints/"*; do
        case "$(basename "$f")" in
        latest | ckpt-??????????.h5 | *.tmp.[0-9]*) ;;
        *) fail "kill $i: unexpected file $f" ;;
        esac
    done
    s=$(echo "$latest" | sed 's/^ckpt-0*\([0-9][0-9]*\)\.h5$/\1/')
    [ "$s" -gt "$prev" ] || fail "kill $i: no progress (latest step $s, before $prev)"
    echo "ok: SIGKILL $i after $nap s: latest $latest verifies, $(ls "$k/checkpoints" | grep -c tmp) temporary file(s)"
    prev=$s
done
# what a kill inside either writer leaves (pid 1 is never ours), whatever the kills above hit
echo "ckpt-0000000001.h5" >"$k/checkpoints/latest.tmp.1"
echo "half a file" >"$k/checkpoints/$(printf 'ckpt-%010d.h5' $((prev + 1))).tmp.1"
run 0 train "$cfg" --out "$k" $kill_args --resume auto --steps $((prev + 2)) ||
    fail "after the kills, the run does not finish: $(tail -c 600 "$err")"
grep_err "resuming from $k/checkpoints/$(printf 'ckpt-%010d.h5' "$prev")" "after the kills"
# the killed writers' temporary files are cleaned up by the next checkpoint
ls "$k/checkpoints" | grep -q '\.tmp\.' && fail "temporary files left after the resumed run: $(ls "$k/checkpoints")"
echo "ok: 5. SIGKILL ($(($(date +%s) - started)) s)"

# ---- 6. export ----
c8=$(ck "$t/b1-s" 8)
run 0 ckpt export "$c8" --torch "$t/exp.h5" || fail "ckpt export: $(cat "$err")"
run 0 eval "$cfg" --weights "$t/exp.h5" || fail "eval of the exported weights: $(cat "$err")"
e1=$(sed -n 's/.* on test: //p' "$out")
run 0 eval "$cfg" --weights "$c8" || fail "eval of a checkpoint: $(cat "$err")"
e2=$(sed -n 's/.* on test: //p' "$out")
[ -n "$e1" ] && [ "$e1" = "$e2" ] || fail "eval of the export '$e1' != eval of the checkpoint '$e2'"
run 0 eval "$cfg" --weights "$t/b1-s/final.h5"
e3=$(sed -n 's/.* on test: //p' "$out")
[ "$e1" = "$e3" ] || fail "eval of the step-8 export '$e1' != the run's final.h5 '$e3'"
"$py" - "$c8" "$t/exp.h5" >"$out" 2>&1 <<'EOF' || fail "export vs model group: $(tail -c 600 "$out")"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as c, h5py.File(sys.argv[2], "r") as e:
    m = c["model"]
    assert sorted(m.keys()) == sorted(e.keys()), "names differ: %s" % (set(m) ^ set(e))
    for k in m:
        a, b = m[k][()], e[k][()]
        assert a.dtype == b.dtype and a.shape == b.shape, k
        assert a.tobytes() == b.tobytes(), "%s differs" % k
    print(len(m), "entries equal")
EOF
run 0 ckpt export "$t/dmg-flip/checkpoints/$(basename "$c8")" --torch "$t/exp-bad.h5"
[ $? -eq 1 ] || fail "export of a damaged checkpoint did not exit 1"
[ -e "$t/exp-bad.h5" ] && fail "export of a damaged checkpoint wrote a file"
if "$py" -c 'import torch' 2>/dev/null; then
    "$py" "$top_srcdir/tools/h52torch.py" "$t/exp.h5" "$t/exp.pth" >"$out" 2>&1 ||
        fail "h52torch.py: $(tail -c 600 "$out")"
    "$py" - "$t/exp.pth" "$t/exp.h5" >"$out" 2>&1 <<'EOF' || fail "torch.load: $(tail -c 600 "$out")"
import sys, torch, h5py, numpy as np
sd = torch.load(sys.argv[1])
with h5py.File(sys.argv[2], "r") as f:
    assert sorted(sd.keys()) == sorted(f.keys())
    for k, v in sd.items():
        assert np.array_equal(v.numpy(), f[k][()]), k
print(len(sd), "tensors")
EOF
else
    echo "note: no torch in $py: h52torch.py not run"
fi
echo "ok: 6. export ($(($(date +%s) - started)) s)"

# ---- 7. keep_last, and the checkpoint at the end ----
keep() { # NAME EVERY STEPS EXPECTED...
    name=$1 every=$2 steps=$3
    shift 3
    run 0 train "$cfg" --out "$t/$name" --steps "$steps" --set checkpoint.every_steps="$every" \
        --set checkpoint.keep_last=2 || { fail "$name: $(tail -c 600 "$err")"; return; }
    got=$(cd "$t/$name/checkpoints" && ls | tr '\n' ' ')
    want=""
    for s in "$@"; do want="$want$(printf 'ckpt-%010d.h5' "$s") "; done
    want="${want}latest "
    [ "$got" = "$want" ] || fail "$name: checkpoints/ holds '$got', expected '$want'"
    [ "$(cat "$t/$name/checkpoints/latest")" = "$(printf 'ckpt-%010d.h5' "$steps")" ] ||
        fail "$name: latest is $(cat "$t/$name/checkpoints/latest")"
}
keep keep1 1 5 4 5 # every step: the last step wrote the end checkpoint
keep keep2 2 5 4 5 # 2, 4, then the end one at 5
keep keep3 3 5 3 5 # 3, then the end one at 5
# keep_last 1 in a directory that also holds a newer-named checkpoint (a damaged one that
# --resume auto skipped): the checkpoint just written must survive the pruning, so that
# `latest` names it and the next --resume auto continues from it, not from step 0
d="$t/keep-stale"
mkdir -p "$d/checkpoints"
cp "$good_old" "$t/dmg-flip/checkpoints/$(basename "$good")" "$d/checkpoints/"
basename "$good" >"$d/checkpoints/latest"
run 0 train "$cfg" --out "$d" --steps 6 --resume auto --set checkpoint.every_steps=1 \
    --set checkpoint.keep_last=1 || fail "keep-stale: $(tail -c 600 "$err")"
latest=$(cat "$d/checkpoints/latest")
verifies "$d/checkpoints/$latest" ||
    fail "keep-stale: keep_last 1 deleted the checkpoint just written: latest names $latest, checkpoints/ holds: $(ls "$d/checkpoints" | tr '\n' ' ')"
run 0 train "$cfg" --out "$d" --steps 7 --resume auto --set checkpoint.every_steps=1 \
    --set checkpoint.keep_last=1 || fail "keep-stale, resumed: $(tail -c 600 "$err")"
grep_err "resuming from $(ck "$d" 6): step 6" "keep-stale, resumed"
echo "ok: 7. keep_last ($(($(date +%s) - started)) s)"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "checkpoint: all checks passed in $(($(date +%s) - started)) s"
