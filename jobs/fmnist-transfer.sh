#!/bin/sh
# The Fashion-MNIST transfer experiment (docs/results.md), rerunnable by anyone:
#   1. pre-train ResNet-18-narrow on classes 0-4 (jobs/configs/fmnist-pretrain.yaml);
#   2. fine-tune it onto classes 5-9 with 100 labelled images per class, three ways - plain
#      fine-tuning, PTL, PTL-v2 (jobs/configs/fmnist-finetune.yaml) - once per seed;
#   3. print test accuracy per run and mean +- spread per method, with wall times, and write
#      the same table to OUT/summary.md.
#
# Usage: jobs/fmnist-transfer.sh [--quick] [--out DIR] [--seeds "1 2 3"]
#   --quick   the Quick-start preset, a few minutes on 2 cores: a short pre-training on 1,000
#             images per class, then one PTL fine-tune (seed 1); prints its final accuracy
#   --out     where the runs go (default runs/fmnist, runs/fmnist-quick with --quick)
#   --seeds   fine-tuning seeds (default "1 2 3")
# Runs that finished (their final.h5 exists) are reused, so an interrupted experiment continues
# where it stopped. PTL (default: build/ptl beside this script's checkout) and PTL_THREADS are
# taken from the environment.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
configs="$here/configs"
ptl=${PTL:-"$here/../build/ptl"}
quick=0
out=""
seeds="1 2 3"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    --seeds) seeds=${2:?--seeds needs a list}; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fmnist-transfer.sh: unknown option '$1' (see --help)" >&2; exit 64 ;;
    esac
    shift
done
[ -x "$ptl" ] || { echo "fmnist-transfer.sh: $ptl is not built (tools/build.sh)" >&2; exit 1; }
if [ $quick -eq 1 ]; then
    out=${out:-runs/fmnist-quick}
    methods="ptl"
    seeds="1"
    pretrain_flags="--epochs 2 --set data.per_class=1000 --set data.eval_max=1000"
    finetune_flags="--epochs 15 --set train.eval_every=0"
else
    out=${out:-runs/fmnist}
    methods="plain ptl ptlv2"
    pretrain_flags=""
    finetune_flags=""
fi
mkdir -p "$out"

arch_of() {
    case $1 in
    plain) echo resnet18-narrow ;;
    ptl) echo ptl-resnet18-narrow ;;
    ptlv2) echo ptlv2-resnet18-narrow ;;
    esac
}

# The run's final evaluation and wall time from its metrics.jsonl.
top1_of() { grep '"kind":"eval"' "$1/metrics.jsonl" | tail -1 | sed 's/.*"top1":\([0-9.e-]*\).*/\1/'; }
time_of() {
    grep '"event":"end"' "$1/metrics.jsonl" | tail -1 |
        sed 's/.*"time_s":\([0-9.e+-]*\).*/\1/' | awk '{printf "%.0f", $1}'
}

run() { # run DIR CONFIG FLAGS...: trains unless DIR already holds a finished run
    dir=$1; shift
    if [ -f "$dir/final.h5" ]; then
        echo "== $dir: done before, reused"
        return 0
    fi
    # An unfinished run (stopped, preempted) continues from its newest checkpoint; its wall
    # time in the summary is then that of the last start.
    echo "== $dir"
    # shellcheck disable=SC2086 # flags are word lists on purpose
    "$ptl" train "$@" --out "$dir" --resume auto
}

# shellcheck disable=SC2086
run "$out/pretrain" "$configs/fmnist-pretrain.yaml" $pretrain_flags

for seed in $seeds; do
    for m in $methods; do
        # shellcheck disable=SC2086
        run "$out/$m-seed$seed" "$configs/fmnist-finetune.yaml" --seed "$seed" \
            --set model.arch="$(arch_of "$m")" --set model.weights="$out/pretrain/final.h5" \
            $finetune_flags
    done
done

summary="$out/summary.md"
{
    echo "| method | seed | test top-1 (classes 5-9) | wall time (s) |"
    echo "| --- | --- | --- | --- |"
    for m in $methods; do
        for seed in $seeds; do
            d="$out/$m-seed$seed"
            echo "| $m | $seed | $(top1_of "$d") | $(time_of "$d") |"
        done
    done
    echo
    echo "| method | runs | mean top-1 | spread (sample std) | min | max | mean wall time (s) |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for m in $methods; do
        for seed in $seeds; do
            d="$out/$m-seed$seed"
            echo "$(top1_of "$d") $(time_of "$d")"
        done | awk -v m="$m" '{a[NR] = $1; s += $1; t += $2}
            END {mean = s / NR; v = 0; lo = a[1]; hi = a[1]
                 for (i = 1; i <= NR; i++) { v += (a[i] - mean) ^ 2; if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] }
                 sd = NR > 1 ? sqrt(v / (NR - 1)) : 0
                 printf "| %s | %d | %.4f | %.4f | %.4f | %.4f | %.0f |\n", m, NR, mean, sd, lo, hi, t / NR}'
    done
    echo
    echo "Pre-training: test top-1 on classes 0-4 $(top1_of "$out/pretrain"), $(time_of "$out/pretrain") s."
} >"$summary"
echo
cat "$summary"
if [ $quick -eq 1 ]; then
    echo
    echo "PTL fine-tune on Fashion-MNIST classes 5-9 (100 labels per class): final test accuracy" \
        "$(top1_of "$out/ptl-seed1")"
fi
