#!/bin/bash
# jobs/*.sbatch on a real, private one-node Slurm (munged + slurmctld + slurmd started by
# tests/slurm/slurm-env.sh under a temp dir, stopped by the EXIT trap whatever happens):
# 1. jobs/finetune.sbatch with 2 tasks x 1 cpu (the default run dir keyed by the job name)
#    trains a tiny Fashion-MNIST run to its final.h5; jobs/eval.sbatch evaluates it;
# 2. the same run, preempted mid-run with USR1 to the batch shell (what --signal=B:USR1@...
#    and preemption deliver): it checkpoints, requeues itself, resumes (SLURM_RESTART_COUNT=1,
#    "resuming from"), and ends with final weights identical to the run of 1 (h5diff); once
#    launched with srun --mpi=pmix, once with mpirun inside the allocation (PTL_LAUNCHER);
# 3. one task killed with SIGKILL mid-run: the job fails fast (srun --kill-on-bad-exit),
#    names the cause in its log, is not requeued, and its checkpoints verify;
# 4. jobs/sweep.sbatch as a 2-task array: one run dir and one seed per array index;
# plus `sbatch --test-only` of each script's own #SBATCH defaults.
# Skips (77) only when the Slurm or munge binaries are missing. Needs root (daemons and jobs
# run as root, as in the shared recipe).
set -u
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
ptl=$(cd "$top_builddir" && pwd)/ptl
jobs=$(cd "$top_srcdir" && pwd)/jobs
fmnist=/usr/share/datasets/fashion-mnist
PATH="$PATH:/usr/sbin:/sbin"

[ -x "$ptl" ] || { echo "FAIL: $ptl not built"; exit 1; }
[ -f "$fmnist/train-images-idx3-ubyte.gz" ] ||
    { echo "FAIL: $fmnist missing: install dataset-fashion-mnist (Debian)"; exit 1; }
command -v h5diff >/dev/null || { echo "FAIL: h5diff missing: install hdf5-tools"; exit 1; }

t=$(mktemp -d)
# shellcheck disable=SC2034 # both read by slurm-env.sh
SLURM_ROOT="$t/slurm" SLURM_NODE_CPUS=32 # so that the scripts' own defaults (4 tasks x 8 cpus) pass --test-only
. "$top_srcdir/tests/slurm/slurm-env.sh"
if why=$(slurm_missing); then
    rm -rf "$t"
    echo "SKIP: Slurm is not installed: $why"
    exit 77
fi
[ "$(id -u)" -eq 0 ] || { rm -rf "$t"; echo "SKIP: needs root (a private slurmd runs its jobs as root; CI runs as root)"; exit 77; }
cleanup() {
    slurm_down
    rm -rf "$t"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
start_all=$(date +%s)

slurm_up || { echo "FAIL: could not start the private Slurm"; exit 1; }

# Everything the jobs write (logs %x-%j.out, runs/JOB_NAME) goes to $t: sbatch -D "$t".
sub() { sbatch --parsable -D "$t" "$@"; }
log_of() { ls "$t"/*-"$1".out "$t"/*_"$1".out 2>/dev/null | head -n 1; }
show_log() { # JOB: the end of its log, for a failure message
    f=$(log_of "$1")
    [ -n "$f" ] && tail -n 25 "$f"
}
wait_for() { # SECONDS COMMAND...: until COMMAND succeeds
    end=$(($(date +%s) + $1)); shift
    until "$@" 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.3
    done
}
log_has() { f=$(log_of "$1") && [ -n "$f" ] && grep -q -- "$2" "$f"; }

cat >"$t/cfg.yaml" <<EOF
run:
  threads: 1
  log_every: 1
model:
  arch: ptl-resnet18-narrow
data:
  path: $fmnist
  classes: [0, 1, 2]
  per_class: 64
  batch: 32
  shard: global
  eval_max: 64
  eval_batch: 64
augment:
  flip: 0.5
  pad: 2
  mean: [0.286]
  std: [0.353]
optim:
  lr: 0.001
train:
  epochs: 10
  steps: 14
  eval_every: 0
checkpoint:
  every_steps: 5
  keep_last: 10
dist:
  timeout: 60
EOF
export OMP_WAIT_POLICY=passive
# 2 tasks x 1 cpu; ptl, the config and the rest through --export, as a user would.
two="-N 1 --ntasks-per-node=2 -c 1 -t 10"
env_cfg="ALL,PTL=$ptl,PTL_CONFIG=$t/cfg.yaml"

# ---- 0. each script's #SBATCH defaults are accepted ----
for s in finetune eval sweep; do
    sbatch --test-only -D "$t" "$jobs/$s.sbatch" >"$t/testonly" 2>&1 ||
        fail "sbatch --test-only jobs/$s.sbatch: $(cat "$t/testonly")"
done
ok "sbatch --test-only accepts the defaults of finetune, eval and sweep"

# ---- 1. a run from start to end ----
# shellcheck disable=SC2086
j1=$(sub $two -J ref --export="$env_cfg" "$jobs/finetune.sbatch") || fail "sbatch of the first run"
st=$(slurm_wait_job "$j1" 150)
if [ "$st" = COMPLETED ] && [ -f "$t/runs/ref/final.h5" ]; then
    ok "finetune.sbatch, 2 tasks: $st, $t/runs/ref/final.h5 written"
else
    fail "first run: state $st, final.h5 $(ls "$t/runs/ref/final.h5" 2>&1): $(show_log "$j1")"
fi
log_has "$j1" "2 ranks x 1 threads" || fail "first run: the log does not show 2 ranks x 1 thread"
log_has "$j1" "step 14/14" || fail "first run: no progress lines in its log $(log_of "$j1")"

# eval.sbatch on the run's final.h5 (its config.yaml by default), 2 ranks
# shellcheck disable=SC2086
je=$(sub $two -J ev --export="ALL,PTL=$ptl,PTL_RUN_DIR=$t/runs/ref" "$jobs/eval.sbatch")
st=$(slurm_wait_job "$je" 90)
want=$(grep 'final.h5 written; eval:' "$(log_of "$j1")" | tail -n 1 | sed 's/.*eval: //')
got=$(grep 'ptl eval: ' "$(log_of "$je")" 2>/dev/null | tail -n 1 | sed 's/.*: top-1/top-1/')
if [ "$st" = COMPLETED ] && [ -n "$want" ] && [ "$got" = "$want" ]; then
    ok "eval.sbatch: $got"
else
    fail "eval.sbatch: state $st, printed '$got', the training run printed '$want': $(show_log "$je")"
fi

# ---- 2. preempted mid-run: checkpoint, requeue, resume, the same final weights ----
preempt() { # NAME LAUNCHER: a run of cfg.yaml under LAUNCHER, USR1 to its batch shell at step 3
    name=$1
    # shellcheck disable=SC2086
    j=$(sub $two -J "$name" --export="$env_cfg,PTL_LAUNCHER=$2" "$jobs/finetune.sbatch") ||
        { fail "$name: sbatch failed"; return; }
    if wait_for 120 log_has "$j" "step 3/14"; then
        # USR1 to the batch shell only, as --signal=B:USR1@T and preempt_send_user_signal do
        scancel --signal=USR1 --batch "$j"
        t_sig=$(date +%s)
    else
        fail "$name: no step 3 in 120 s: $(show_log "$j")"
        return
    fi
    st=$(slurm_wait_job "$j" 180)
    f=$(log_of "$j")
    restarts=$(scontrol show job -o "$j" | sed -n 's/.* Restarts=\([0-9]*\).*/\1/p')
    resumed=$(grep 'resuming from' "$f" 2>/dev/null | head -n 1)
    rstep=$(echo "$resumed" | sed -n 's/.*: step \([0-9]*\),.*/\1/p')
    rckpt=$(echo "$resumed" | sed -n 's/.*resuming from \(.*\.h5\): step.*/\1/p')
    [ "$st" = COMPLETED ] || { fail "$name: state $st: $(show_log "$j")"; return; }
    grep -q "got USR1" "$f" || fail "$name: the batch script did not log the USR1"
    grep -q "requeueing job $j" "$f" || fail "$name: the job did not requeue itself"
    grep -q "SLURM_RESTART_COUNT=1" "$f" || fail "$name: no start with SLURM_RESTART_COUNT=1"
    [ "$restarts" = 1 ] || fail "$name: scontrol shows Restarts=$restarts, expected 1"
    if [ -z "$rstep" ] || [ "$rstep" -le 0 ] || [ "$rstep" -ge 14 ]; then
        fail "$name: no resume from a mid-run checkpoint ('$resumed'): $(tail -n 40 "$f")"
    else
        ok "$name ($2): USR1 at step >= 3, requeued (Restarts=$restarts), resumed from step" \
            "$rstep, done $(($(date +%s) - t_sig)) s after the USR1"
    fi
    if [ -n "$rckpt" ] && "$ptl" ckpt info "$rckpt" >"$t/info" 2>&1; then
        ok "$name: the preemption checkpoint $(basename "$rckpt") verifies"
    else
        fail "$name: preemption checkpoint '$rckpt' does not verify: $(cat "$t/info" 2>/dev/null)"
    fi
    if h5diff "$t/runs/ref/final.h5" "$t/runs/$name/final.h5" >"$t/h5diff" 2>&1; then
        ok "$name: preempted + resumed == uninterrupted (h5diff of final.h5: identical)"
    else
        fail "$name: final.h5 differs from the uninterrupted run: $(head -n 20 "$t/h5diff")"
    fi
    grep -E '^finetune.sbatch|resuming from' "$f" | sed 's/^/    | /'
}
preempt pre srun
# the same through mpirun inside the allocation (mpirun passes the USR1 on to the ranks)
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
preempt pre-mpirun mpirun

# ---- 3. one task killed mid-run: the job fails fast and says why ----
# shellcheck disable=SC2086
j3=$(sub $two -J kill --export="$env_cfg,PTL_ARGS=--set train.steps=1000 --set checkpoint.every_steps=2 --set run.debug_log=true" \
    "$jobs/finetune.sbatch") || fail "sbatch of the run to kill"
rank1_steps() { [ "$(grep -c '^step' "$t/runs/kill/debug.rank1.log" 2>/dev/null)" -ge 5 ]; }
victim=""
if wait_for 120 rank1_steps; then
    victim=$(sed -n 's/^rank 1 of 2 pid \([0-9]*\).*/\1/p' "$t/runs/kill/debug.rank1.log")
fi
if [ -z "$victim" ]; then
    fail "run to kill: rank 1 logged no pid or too few steps: $(show_log "$j3")"
else
    t_kill=$(date +%s)
    kill -KILL "$victim"
    st=$(slurm_wait_job "$j3" 60)
    took=$(($(date +%s) - t_kill))
    f3=$(log_of "$j3")
    [ "$st" = FAILED ] || fail "killed task: job state $st, expected FAILED: $(show_log "$j3")"
    [ "$took" -le 30 ] || fail "killed task: the job took $took s to end"
    grep -q "task 1: Killed" "$f3" || fail "killed task: the log does not name task 1 killed: $(tail -n 20 "$f3")"
    grep -q "ptl failed with status" "$f3" || fail "killed task: the script did not report the failure"
    grep -q "requeueing" "$f3" && fail "killed task: the job requeued itself"
    n=0
    for c in "$t"/runs/kill/checkpoints/ckpt-*.h5; do
        [ -f "$c" ] || continue
        n=$((n + 1))
        "$ptl" ckpt info "$c" >/dev/null 2>&1 || fail "killed task: checkpoint $c does not verify"
    done
    latest="$t/runs/kill/checkpoints/$(cat "$t/runs/kill/checkpoints/latest" 2>/dev/null)"
    [ -f "$latest" ] && "$ptl" ckpt info "$latest" >/dev/null 2>&1 ||
        fail "killed task: checkpoints/latest does not name a valid checkpoint"
    [ "$n" -ge 1 ] || fail "killed task: no checkpoint written before the kill"
    ok "task 1 killed: job $st in $took s, '$(grep -m1 'task 1: Killed' "$f3" | sed 's/^ *//')'," \
        "'$(grep -m1 -o 'ptl failed with status [0-9]*' "$f3")', $n checkpoint(s) verify"
fi

# ---- 4. sweep.sbatch: an array, one run dir and one seed per index ----
# shellcheck disable=SC2086
ja=$(sub -N 1 --ntasks-per-node=1 -c 1 -t 10 --array=0-1 -J sw \
    --export="$env_cfg,PTL_JOBS=$jobs,PTL_SEEDS=7 8,PTL_ARGS=--set train.steps=3" "$jobs/sweep.sbatch")
for i in 0 1; do
    st=$(slurm_wait_job "${ja}_$i" 150)
    d="$t/runs/sw/$i"
    seed=$(sed -n 's/^ *seed: *\([0-9]*\).*/\1/p' "$d/config.yaml" 2>/dev/null | head -n 1)
    want=$((7 + i))
    if [ "$st" = COMPLETED ] && [ -f "$d/final.h5" ] && [ "$seed" = "$want" ]; then
        ok "sweep.sbatch array task $i: $st, $d/final.h5, seed $seed"
    else
        fail "sweep task $i: state $st, seed '$seed' (want $want), $(ls "$d" 2>&1 | tr '\n' ' '):" \
            "$(tail -n 15 "$t"/sw-*_"$i".out 2>/dev/null)"
    fi
done
if h5diff "$t/runs/sw/0/final.h5" "$t/runs/sw/1/final.h5" >/dev/null 2>&1; then
    fail "sweep: seeds 7 and 8 gave identical weights"
fi

echo "slurm tests took $(($(date +%s) - start_all)) s"
if [ "$fails" -ne 0 ]; then
    slurm_logs 15
    echo "$fails failure(s)"
    exit 1
fi
echo "all Slurm job checks passed"
