#!/usr/bin/python3
"""Training-step throughput of ptl and PyTorch side by side, in the same run, same threads.

For each (arch, input, batch) it runs `ptl bench step --format tsv`, then times the same step in
PyTorch: forward in training mode, softmax cross-entropy on every logits output, backward,
torch.optim.SGD(lr 0.01, momentum 0.9, weight decay 5e-4); median step time over --steps after
--warmup. Backbones come from torchvision, PTL networks from tests/reference/ptl_models.py (the
PyTorch references ptl is tested against). Prints images/s, ours/PyTorch, and what the PTL
branch costs each framework relative to its backbone (time ptl-X / time X).

With --rounds R the whole set runs R times, ptl and PyTorch alternating arch by arch, and the
table gives medians over the rounds, with the range of the per-round ratios: on a shared
machine one round can be off by 25%. It also gives the ratio of the two frameworks' fastest
rounds (`best`): the host's slow spells only ever add time, and they hit the two at different
moments, so the fastest round of each is the closest to its undisturbed speed.

PyTorch's CPU allocator takes fresh pages from the OS for its large tensors every step (glibc
maps blocks above its mmap threshold and unmaps them on free): 22,000-30,000 minor page faults
per resnet18 step here, whose cost swings with the host on a VM. The table reports them
(faults per PyTorch step). --torch-keep-memory reruns the script with glibc's tunables set so
that freed memory stays in the process (GLIBC_TUNABLES mmap_threshold 32 MiB, trim_threshold
4 GiB): PyTorch then takes no faults per step, its best case. ptl allocates once and takes none.

usage: bench/step_vs_torch.py PATH/TO/ptl [--threads T] [--steps S] [--warmup W] [--rounds R]
                              [--quick] [--torch-keep-memory]
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

import ptl_models  # noqa: E402

CASES = [  # (backbone, C, H, W, batch): the four measurements come in pairs
    ("resnet18", 3, 128, 64, 32),
    ("resnet50", 3, 256, 128, 16),
]
CLASSES = 751


def torch_model(arch, shape):
    if arch.startswith(("ptl-", "ptlv2-", "mgn")):
        return ptl_models.build(arch, CLASSES, shape)
    return getattr(torchvision.models, arch)(num_classes=CLASSES)


def logits_of(out):
    if isinstance(out, dict):
        return [v for k, v in out.items() if k.startswith("logits")]
    return [out]


KEEP_MEMORY = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"


def time_torch(arch, shape, batch, steps, warmup):
    """Median step time (s) and minor page faults per step."""
    torch.manual_seed(1)
    model = torch_model(arch, shape).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, *shape)
    y = torch.randint(0, CLASSES, (batch,))
    times = []
    for s in range(warmup + steps):
        if s == warmup:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = sum(F.cross_entropy(l, y) for l in logits_of(model(x)))
        loss.backward()
        opt.step()
        if s >= warmup:
            times.append(time.perf_counter() - t0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return statistics.median(times), faults / steps


def time_ptl(ptl, arch, shape, batch, steps, warmup, threads):
    cmd = [ptl, "bench", "step", "--arch", arch, "--input", "x".join(map(str, shape)),
           "--batch", str(batch), "--classes", str(CLASSES), "--steps", str(steps),
           "--warmup", str(warmup), "--threads", str(threads), "--format", "tsv"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.split("\t")[3])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ptl", help="path of the ptl binary (e.g. build/ptl)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="batch 4 at a quarter of the input size")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the whole set R times and report medians (default 1)")
    ap.add_argument("--torch-keep-memory", action="store_true",
                    help="run PyTorch with glibc keeping freed memory (no page faults per step)")
    a = ap.parse_args()
    if a.torch_keep_memory and os.environ.get("GLIBC_TUNABLES") != KEEP_MEMORY:
        # glibc reads its tunables at start-up: run the script again with them set
        env = dict(os.environ, GLIBC_TUNABLES=KEEP_MEMORY)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    if a.rounds < 1:
        sys.exit(f"step_vs_torch: --rounds must be at least 1, got {a.rounds}")
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} threads, median of {a.steps} steps "
          f"after {a.warmup} warm-up, {a.rounds} round(s); images/s"
          + (f"; PyTorch with GLIBC_TUNABLES={KEEP_MEMORY}" if a.torch_keep_memory else ""))
    cases = []
    for backbone, c, h, w, batch in CASES:
        if a.quick:
            h, w, batch = h // 4, w // 4, 4
        for arch in (backbone, "ptl-" + backbone):
            cases.append((arch, (c, h, w), batch))
    times = {arch: [] for arch, _, _ in cases}  # per round: (ptl s, PyTorch s)
    faults = {arch: [] for arch, _, _ in cases}  # PyTorch's minor page faults per step
    for r in range(a.rounds):
        if a.rounds > 1:
            print(f"round {r + 1}/{a.rounds}", file=sys.stderr, flush=True)
        for arch, shape, batch in cases:
            t_ours = time_ptl(a.ptl, arch, shape, batch, a.steps, a.warmup, a.threads)
            t_torch, f_torch = time_torch(arch, shape, batch, a.steps, a.warmup)
            times[arch].append((t_ours, t_torch))
            faults[arch].append(f_torch)
    med = statistics.median
    ratio_col = "ptl/PyTorch" + (" (range)" if a.rounds > 1 else "")
    best_col = f"{'best':>8}" if a.rounds > 1 else ""
    print(f"{'arch':<16}{'input':>12}{'batch':>6}{'ptl':>10}{'PyTorch':>10}  {ratio_col:<20}"
          f"{best_col}{'PyTorch faults/step':>20}")
    for arch, shape, batch in cases:
        runs = times[arch]
        ratios = [t / o for o, t in runs]
        spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if a.rounds > 1 else ""
        best = min(t for _, t in runs) / min(o for o, _ in runs)
        best_cell = f"{f'{best:.2f}x':>8}" if a.rounds > 1 else ""
        print(f"{arch:<16}{'x'.join(map(str, shape)):>12}{batch:>6}"
              f"{batch / med([o for o, _ in runs]):>10.2f}{batch / med([t for _, t in runs]):>10.2f}"
              f"  {f'{med(ratios):.2f}x{spread}':<20}{best_cell}{med(faults[arch]):>20.0f}")
    print("\nPTL branch cost (step time of ptl-X / X" +
          (", median of the rounds" if a.rounds > 1 else "") + "):")
    for backbone, *_ in CASES:
        pairs = list(zip(times["ptl-" + backbone], times[backbone]))
        ours = med([p[0] / b[0] for p, b in pairs])
        theirs = med([p[1] / b[1] for p, b in pairs])
        print(f"  {backbone:<10} ptl {ours:.2f}x   PyTorch {theirs:.2f}x")

if __name__ == "__main__":
    main()
