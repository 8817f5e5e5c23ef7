#!/bin/sh
# Memory errors and leaks of a real ptl run under valgrind: any invalid access or definitely
# lost block fails. (BLIS keeps its packing-buffer pools until exit: "possibly lost" and
# "still reachable" blocks are expected and not errors.) One thread, and OpenMP threads that
# sleep instead of spin: valgrind runs threads one at a time, and a spinning OpenMP worker
# makes a second-long run take many minutes. Skipped when valgrind is not installed.
set -u
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIP: valgrind not installed (Debian: apt-get install valgrind)"
    exit 77
fi
b=${top_builddir:-.}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fails=0
# vg EXPECTED_STATUS WHAT ARGS...: runs ptl ARGS under valgrind; a memory error or a definite
# leak is exit status 99.
vg() {
    want=$1 what=$2
    shift 2
    OMP_WAIT_POLICY=passive "$b/libtool" --mode=execute valgrind -q --leak-check=full \
        --errors-for-leak-kinds=definite --show-leak-kinds=definite --error-exitcode=99 \
        --log-file="$t/vg.log" "$b/ptl" "$@" >"$t/out" 2>"$t/err"
    status=$?
    cat "$t/vg.log"
    if [ "$status" -ne "$want" ]; then
        echo "FAIL: $what under valgrind exited $status, expected $want: $(tail -c 300 "$t/err")"
        fails=$((fails + 1))
    fi
}
vg 0 "ptl bench ops" bench ops --layer 2,3,9,9,4,3,2,1 --layer 2,8,5,5,8,1,1,0 --reps 1 \
    --warmup 0 --threads 1
# Two training steps of a PTL network (cells, optimizer, data, augmentation, evaluation,
# metrics, weights) on a few Fashion-MNIST images shrunk to 12x12, a run that fails in its
# setup (the error paths free what they made), and an evaluation.
fmnist=/usr/share/datasets/fashion-mnist
if [ -f "$fmnist/train-images-idx3-ubyte.gz" ]; then
    cat >"$t/cfg.yaml" <<EOF
run: {threads: 1}
model: {arch: ptl-resnet18-narrow}
data: {path: $fmnist, classes: [0, 1], per_class: 4, batch: 4, eval_max: 4, eval_batch: 4}
augment: {resize: [12, 12], flip: 0.5, pad: 1, erase: 0.5}
optim: {name: adam, amsgrad: true}
train: {epochs: 1}
EOF
    vg 0 "ptl train" train "$t/cfg.yaml" --out "$t/run" --trace "$t/trace.json"
    vg 1 "ptl train (bad data.classes)" train "$t/cfg.yaml" --out "$t/run2" \
        --set "data.classes=[0, 99]"
    vg 0 "ptl eval" eval "$t/cfg.yaml" --weights "$t/run/final.h5"
else
    echo "FAIL: $fmnist missing: install dataset-fashion-mnist (Debian)"
    fails=$((fails + 1))
fi
[ $fails -eq 0 ] && echo "valgrind: no memory errors, no definite leaks"
[ $fails -eq 0 ]
