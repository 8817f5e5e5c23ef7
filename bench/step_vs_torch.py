#!/usr/bin/python3
"""Training-step throughput of ptl and PyTorch side by side, in the same run, same threads.

For each (arch, input, batch) it runs `ptl bench step --format tsv`, then times the same step in
PyTorch: forward in training mode, softmax cross-entropy on every logits output, backward,
torch.optim.SGD(lr 0.01, momentum 0.9, weight decay 5e-4); median step time over --steps after
--warmup. Backbones come from torchvision, PTL networks from tests/reference/ptl_models.py (the
PyTorch references ptl is tested against). Prints images/s, ours/PyTorch, and what the PTL
branch costs each framework relative to its backbone (time ptl-X / time X).

usage: bench/step_vs_torch.py PATH/TO/ptl [--threads T] [--steps S] [--warmup W] [--quick]
"""
import argparse
import os
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


def time_torch(arch, shape, batch, steps, warmup):
    torch.manual_seed(1)
    model = torch_model(arch, shape).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, *shape)
    y = torch.randint(0, CLASSES, (batch,))
    times = []
    for s in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = sum(F.cross_entropy(l, y) for l in logits_of(model(x)))
        loss.backward()
        opt.step()
        if s >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} threads, median of {a.steps} steps "
          f"after {a.warmup} warm-up; images/s")
    print(f"{'arch':<16}{'input':>12}{'batch':>6}{'ptl':>10}{'PyTorch':>10}{'ptl/PyTorch':>13}")
    rows = {}
    for backbone, c, h, w, batch in CASES:
        if a.quick:
            h, w, batch = h // 4, w // 4, 4
        for arch in (backbone, "ptl-" + backbone):
            shape = (c, h, w)
            t_ours = time_ptl(a.ptl, arch, shape, batch, a.steps, a.warmup, a.threads)
            t_torch = time_torch(arch, shape, batch, a.steps, a.warmup)
            rows[arch] = (t_ours, t_torch)
            print(f"{arch:<16}{'x'.join(map(str, shape)):>12}{batch:>6}{batch / t_ours:>10.2f}"
                  f"{batch / t_torch:>10.2f}{t_torch / t_ours:>12.2f}x", flush=True)
    print("\nPTL branch cost (step time of ptl-X / X):")
    for backbone, *_ in CASES:
        ours = rows["ptl-" + backbone][0] / rows[backbone][0]
        theirs = rows["ptl-" + backbone][1] / rows[backbone][1]
        print(f"  {backbone:<10} ptl {ours:.2f}x   PyTorch {theirs:.2f}x")


if __name__ == "__main__":
    main()
