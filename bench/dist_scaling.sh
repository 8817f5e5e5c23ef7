#!/bin/sh
# The distributed-training benchmarks of docs/performance.md, on this machine, in one command:
#   (1) ptl bench dist: ptl_grad_sync bandwidth against a bare MPI_Allreduce of the same bytes
#   (2) a traced 2-rank Fashion-MNIST run and bench/dist_trace.py: the share of the allreduce
#       time hidden behind backward
#   (3) 2 ranks x 1 thread against 1 rank x 2 threads, same global batch and steps: images/s
#   (4) bench/dist_model.py with the measured compute time per step: 1..256 nodes
# and one summary block with every ratio. Builds nothing.
#
# Usage: bench/dist_scaling.sh [PATH/TO/ptl]      (default: $top_builddir/ptl, else ./ptl)
# Environment: REPEAT (rounds of runs in (3), default 3), STEPS (steps of the traced runs,
#   default 21), STEPS3 (steps of the runs of (3), default 11),
#   BUCKET_MB (bucket size of the overlap runs, default 0.25), QUICK=1 (skip resnet18 in (1)
#   and the diagnostic rows), FMNIST (default /usr/share/datasets/fashion-mnist).
# Timings on a small shared machine are noisy: every number is a median, and the load
# average is printed with them.
set -u
ptl=${1:-${top_builddir:-.}/ptl}
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
fmnist=${FMNIST:-/usr/share/datasets/fashion-mnist}
REPEAT=${REPEAT:-3}
STEPS=${STEPS:-21}
STEPS3=${STEPS3:-11}
BUCKET_MB=${BUCKET_MB:-0.25}
QUICK=${QUICK:-0}

die() { echo "dist_scaling.sh: $*" >&2; exit 1; }
[ -x "$ptl" ] || die "$ptl: no ptl binary (give its path, or set top_builddir)"
command -v mpirun >/dev/null 2>&1 || die "mpirun not found (install Open MPI)"
[ -x "$py" ] || die "$py not found"
[ -f "$fmnist/train-images-idx3-ubyte.gz" ] || die "$fmnist: Fashion-MNIST missing"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
# 2 ranks on a 2-core machine that other jobs share: no binding, no busy-polling penalty.
mpirun="mpirun -n 2 --oversubscribe --bind-to none"

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT INT TERM
load() { cut -d' ' -f1-3 /proc/loadavg; }
field() { printf '%s\n' "$1" | cut -f"$2"; }

echo "== ptl distributed benchmarks: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(load)"
echo "   $("$ptl" --version), $(mpirun --version 2>&1 | head -1)"

# ---- (1) gradient sync bandwidth ----
echo
echo "== (1) ptl bench dist, 2 ranks"
bench_dist() { # name, extra mpirun args..., then -- ptl args
    name=$1; shift
    mca=
    while [ "$1" != -- ]; do mca="$mca $1"; shift; done
    shift
    # shellcheck disable=SC2086
    $mpirun $mca "$ptl" bench dist "$@" --format tsv >"$t/bd.tsv" 2>"$t/bd.err" ||
        die "ptl bench dist $*: $(tail -3 "$t/bd.err")"
    awk -F'\t' '{printf "   %-16s %9d floats (%.2f MiB) %2d buckets: ptl_grad_sync %.4f s %7.1f MiB/s, bare MPI_Allreduce %.4f s %7.1f MiB/s, ratio %.3f; one bare MPI_Iallreduce %.4f s, copies alone %.4f s\n", $1, $3, $3 * 4 / 1048576, $4, $5, $7, $6, $8, $9, $10, $11}' "$t/bd.tsv"
    eval "bd_$name=\$(cat \"\$t/bd.tsv\")"
}
bench_dist narrow -- --arch resnet18-narrow --classes 10 --input 1x28x28 --repeat 20
bench_dist r50 -- --arch ptl-resnet50 --repeat 8
if [ "$QUICK" != 1 ]; then
    bench_dist r18 -- --arch resnet18 --input 3x128x64 --repeat 8
    echo "-- diagnostic: Open MPI's libnbc ring schedule for MPI_Iallreduce instead of its"
    echo "   default (binomial reduce + broadcast whenever the call is in place or < 4 ranks)"
    bench_dist r50ring --mca coll_libnbc_iallreduce_algorithm 1 -- --arch ptl-resnet50 --repeat 8
fi

# ---- (2) overlap, from a trace ----
cat >"$t/fmnist.yaml" <<EOF
run:
  threads: 1
  log_every: 5
model:
  arch: resnet18-narrow
data:
  path: $fmnist
  per_class: 256
  batch: 64
  eval_max: 200
augment:
  flip: 0.5
  pad: 2
  mean: [0.286]
  std: [0.353]
optim:
  lr: 0.02
  momentum: 0.9
train:
  epochs: 1
  eval_every: 0
EOF
traced() { # out-dir bucket-mb
    $mpirun "$ptl" train "$t/fmnist.yaml" --out "$t/$1" --steps "$STEPS" \
        --set "dist.bucket_mb=$2" --trace "$t/$1.json" >/dev/null 2>"$t/$1.err" ||
        die "traced run: $(tail -3 "$t/$1.err")"
    "$py" "$here/dist_trace.py" "$t/$1.json" | tee "$t/$1.trace"
}
echo
echo "== (2) traced 2-rank training, resnet18-narrow on Fashion-MNIST 1x28x28, global batch 64,"
echo "   $STEPS steps, dist.bucket_mb $BUCKET_MB (load $(load))"
traced trace_small "$BUCKET_MB"
echo "-- the same with the default dist.bucket_mb 25 (load $(load))"
traced trace_default 25
summary_of() { grep '^summary ' "$t/$1.trace" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# ---- (3) 2 ranks x 1 thread against 1 rank x 2 threads ----
# images/s between the first and the last logged step (leaves out start-up, the first step
# and the final evaluation)
ips() {
    "$py" - "$1" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"train"' in l]
a, b = rows[0], rows[-1]
batch = [json.loads(l) for l in open(sys.argv[1]) if '"event":"start"' in l][0]["batch"]
print(f"{(b['step'] - a['step']) * batch / (b['time_s'] - a['time_s']):.3f}")
EOF
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo
echo "== (3) 2 ranks x 1 thread vs 1 rank x 2 threads: same config, global batch 64, $STEPS3 steps,"
echo "   dist.bucket_mb $BUCKET_MB, OMP_WAIT_POLICY=passive, $REPEAT alternating rounds; 1 rank x 1"
echo "   thread as the reference for the parallel speed-up"
: >"$t/ips2x1"
: >"$t/ips1x2"
: >"$t/ips1x1"
i=1
while [ "$i" -le "$REPEAT" ]; do
    $mpirun "$ptl" train "$t/fmnist.yaml" --out "$t/r2x1_$i" --steps "$STEPS3" \
        --set "dist.bucket_mb=$BUCKET_MB" --set run.threads=1 >/dev/null 2>"$t/err" ||
        die "2x1 run: $(tail -3 "$t/err")"
    "$ptl" train "$t/fmnist.yaml" --out "$t/r1x2_$i" --steps "$STEPS3" --set run.threads=2 \
        >/dev/null 2>"$t/err" || die "1x2 run: $(tail -3 "$t/err")"
    "$ptl" train "$t/fmnist.yaml" --out "$t/r1x1_$i" --steps "$STEPS3" --set run.threads=1 \
        >/dev/null 2>"$t/err" || die "1x1 run: $(tail -3 "$t/err")"
    a=$(ips "$t/r2x1_$i/metrics.jsonl") b=$(ips "$t/r1x2_$i/metrics.jsonl")
    c=$(ips "$t/r1x1_$i/metrics.jsonl")
    echo "$a" >>"$t/ips2x1"
    echo "$b" >>"$t/ips1x2"
    echo "$c" >>"$t/ips1x1"
    echo "   round $i: 2x1 $a, 1x2 $b, 1x1 $c images/s (load $(load))"
    i=$((i + 1))
done
m2x1=$(median <"$t/ips2x1") m1x2=$(median <"$t/ips1x2") m1x1=$(median <"$t/ips1x1")
ratio3=$(awk -v a="$m2x1" -v b="$m1x2" 'BEGIN {printf "%.3f", a / b}')
speedup=$(awk -v a="$m2x1" -v b="$m1x1" 'BEGIN {printf "%.3f", a / b}')
speedup2=$(awk -v a="$m1x2" -v b="$m1x1" 'BEGIN {printf "%.3f", a / b}')
echo "   median images/s: 2x1 $m2x1, 1x2 $m1x2, 1x1 $m1x1; 2x1 / 1x2 $ratio3"

# ---- (4) the model ----
compute=$(summary_of trace_small compute_s)
backward=$(summary_of trace_small backward_ms)
hidden=$(summary_of trace_small hidden_share)
buckets=$(summary_of trace_small buckets)
floats=$(field "$bd_narrow" 3)
bytes=$((floats * 4))
# this machine's link from the largest message measured (the least noisy)
link_bytes=$(($(field "$bd_r50" 3) * 4))
link_s=$(field "$bd_r50" 6)
flops() { "$ptl" model summary "$@" | sed -n 's/^forward FLOPs per sample: .*(\([0-9.e+]*\);.*/\1/p'; }
f_narrow=$(flops --arch resnet18-narrow --classes 10 --input 1x28x28)
f_r50=$(flops --arch ptl-resnet50 --classes 751 --input 3x128x64)
scale=$(awk -v a="$f_r50" -v b="$f_narrow" 'BEGIN {printf "%.4f", a / b}')
r50_compute=$(awk -v c="$compute" -v s="$scale" 'BEGIN {printf "%.4f", c * s}')
r50_backward=$(awk -v c="$backward" -v s="$scale" 'BEGIN {printf "%.4f", c * s / 1000}')
r50_bytes=$(($(field "$bd_r50" 3) * 4))
echo
echo "== (4) alpha-beta model, resnet18-narrow (measured here: per-node batch 32, one core)"
"$py" "$here/dist_model.py" --label "resnet18-narrow, Fashion-MNIST" --compute-s "$compute" \
    --backward-s "$(awk -v b="$backward" 'BEGIN {print b / 1000}')" --grad-bytes "$bytes" \
    --buckets "$buckets" --hidden "$hidden" --batch 32 --measured-bytes "$link_bytes" \
    --measured-s "$link_s" | tee "$t/model_narrow"
echo
echo "== (4') ptl-resnet50 on 3x128x64 (Market-1501 size), compute estimated from the measured"
echo "   resnet18-narrow step scaled by forward FLOPs ($scale x), on a node 16x one core here"
"$py" "$here/dist_model.py" --label "ptl-resnet50, 3x128x64, 751 classes" \
    --compute-s "$r50_compute" --backward-s "$r50_backward" --node-speedup 16 \
    --grad-bytes "$r50_bytes" --buckets "$(field "$bd_r50" 4)" --hidden "$hidden" --batch 32 |
    tee "$t/model_r50"
echo "-- the same over 10 Gb Ethernet (1.25 GB/s, 30 us)"
"$py" "$here/dist_model.py" --label "ptl-resnet50 over 10 GbE" --compute-s "$r50_compute" \
    --backward-s "$r50_backward" --node-speedup 16 --grad-bytes "$r50_bytes" \
    --buckets "$(field "$bd_r50" 4)" --hidden "$hidden" --batch 32 --alpha 30e-6 \
    --bandwidth 1.25e9 --link "10 Gb Ethernet" | grep -v '^  [^ ]' | tee "$t/model_r50_eth"

# ---- summary ----
reach() { grep '^=>' "$1" | sed -n "${2}p" | sed 's/^=> efficiency >= 0.9 up to \([^ ]*\) nodes.*/\1/'; }
echo
echo "================ summary (medians; 2-core machine shared with other jobs; load $(load)) ================"
printf '(1) grad sync / bare MPI_Allreduce bandwidth (target >= 0.90):\n'
for v in narrow r50 r18 r50ring; do
    eval "row=\${bd_$v:-}"
    [ -n "$row" ] || continue
    printf '      %-18s %9s floats %2s buckets: %s  (ours %.4f s, bare %.4f s, one bare Iallreduce %.4f s, copies %.4f s)%s\n' \
        "$(field "$row" 1)" "$(field "$row" 3)" "$(field "$row" 4)" "$(field "$row" 9)" \
        "$(field "$row" 5)" "$(field "$row" 6)" "$(field "$row" 10)" "$(field "$row" 11)" \
        "$([ "$v" = r50ring ] && echo '  [libnbc ring]')"
done
printf '(2) hidden share of the allreduce behind backward (target >= 0.80):\n'
printf '      dist.bucket_mb %s: %s overall, %s median per step (%s buckets, wait %s ms/step)\n' \
    "$BUCKET_MB" "$hidden" "$(summary_of trace_small hidden_share_median)" "$buckets" \
    "$(summary_of trace_small wait_ms)"
printf '      dist.bucket_mb 25:   %s overall, %s median per step (%s bucket, wait %s ms/step)\n' \
    "$(summary_of trace_default hidden_share)" "$(summary_of trace_default hidden_share_median)" \
    "$(summary_of trace_default buckets)" "$(summary_of trace_default wait_ms)"
printf '(3) 2 ranks x 1 thread / 1 rank x 2 threads images/s (target >= 0.90): %s (%s vs %s, %s rounds)\n' \
    "$ratio3" "$m2x1" "$m1x2" "$REPEAT"
printf '      speed-up over 1 rank x 1 thread (%s images/s): 2x1 %s, 1x2 %s\n' "$m1x1" "$speedup" \
    "$speedup2"
printf '(4) model, efficiency >= 0.9 up to (nodes; ring/rd, binomial):\n'
printf '      resnet18-narrow, measured compute %s s, HDR IB: %s, %s; this machine'"'"'s link: %s, %s\n' \
    "$compute" "$(reach "$t/model_narrow" 1)" "$(reach "$t/model_narrow" 2)" \
    "$(reach "$t/model_narrow" 3)" "$(reach "$t/model_narrow" 4)"
printf '      ptl-resnet50 (estimated compute %s s / 16), HDR IB: %s, %s; 10 GbE: %s, %s\n' \
    "$r50_compute" "$(reach "$t/model_r50" 1)" "$(reach "$t/model_r50" 2)" \
    "$(reach "$t/model_r50_eth" 1)" "$(reach "$t/model_r50_eth" 2)"
