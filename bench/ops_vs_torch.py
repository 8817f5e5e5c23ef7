#!/usr/bin/python3
"""Side-by-side conv2d benchmark: ptl against PyTorch (CPU, mkldnn) and a bare BLIS sgemm.

Usage: /usr/bin/python3 bench/ops_vs_torch.py PATH/TO/ptl [ptl bench ops options...]

Takes the layer list from `ptl bench ops --list` with the given options (preset, --input,
--batch or --layer shapes), then for each layer in turn runs `ptl bench ops --format tsv
--layer ...` (with the given --threads, --reps, --warmup, --quick) and right after it times the
same layer in PyTorch in this process: conv2d forward, and backward for the input and the
weight (aten.convolution_backward, no bias, as in ResNet; both in one call, then each alone),
on the same number of threads, median of the same reps after the same warm-up. Layer by
layer, so that both see the same machine when it is shared. Prints one table: per layer
fwd+bwd GFLOPS of ours, PyTorch and the bare sgemm, the forward, d_in and d_weight alone, and
the ratios. FLOPs as in ptl: forward 2*N*Cout*Ho*Wo*Cin*K*K,
backward twice that; the total row weights layers by how often they occur in the network.
"""
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


LIST_FIELDS = ("layer", "count", "n", "c_in", "h", "w", "c_out", "k", "stride", "pad")
# Options that choose the layers (used for --list only) and those that time them.
SHAPE_OPTS = ("--preset", "--input", "--batch", "--layer")
TIMING_OPTS = ("--threads", "--reps", "--warmup")


def split_opts(opts):
    """Returns (shape options, timing options) of a ptl bench ops command line."""
    shape, timing, i = [], [], 0
    while i < len(opts):
        a = opts[i]
        name = a.split("=", 1)[0]
        if name == "--quick":  # the batch for the list, reps and warm-up for the timing
            shape.append(a)
            timing.append(a)
            i += 1
            continue
        if name not in SHAPE_OPTS + TIMING_OPTS + ("--format",):
            sys.exit(f"ops_vs_torch: unknown option '{a}' (see ptl bench ops --help)")
        chunk = [a] if "=" in a else opts[i:i + 2]
        if name in SHAPE_OPTS:
            shape += chunk
        elif name in TIMING_OPTS:
            timing += chunk
        i += len(chunk)
    return shape, timing


def ptl_out(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"ops_vs_torch: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def list_layers(ptl, shape_opts):
    out = ptl_out([ptl, "bench", "ops", "--list"] + shape_opts)
    return [dict(zip(LIST_FIELDS, line.split("\t"))) for line in out.splitlines() if line]


def run_ptl(ptl, opts):
    meta, header, rows = {}, None, []
    for line in ptl_out([ptl, "bench", "ops", "--format", "tsv"] + opts).splitlines():
        if line.startswith("#"):
            # "# ptl 0.1.0 bench ops: threads 2, reps 7, warmup 2"
            for part in line.split(":", 1)[1].split(","):
                key, value = part.split()
                meta[key] = int(value)
        elif header is None:
            header = line.split("\t")
        else:
            rows.append(dict(zip(header, line.split("\t"))))
    return meta, rows


def median_time(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_torch(row, reps, warmup):
    n, c, h, w, m, k, s, p = (int(row[x]) for x in
                              ("n", "c_in", "h", "w", "c_out", "k", "stride", "pad"))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, c, h, w, generator=gen) * 2 - 1
    wt = torch.rand(m, c, k, k, generator=gen) * 2 - 1
    with torch.no_grad():
        y = F.conv2d(x, wt, None, s, p)
    dy = torch.rand(y.shape, generator=gen) * 2 - 1

    def fwd():
        with torch.no_grad():
            F.conv2d(x, wt, None, s, p)

    def bwd(mask=(True, True, False)):  # grad_input and grad_weight, no bias: what autograd
        torch.ops.aten.convolution_backward(dy, x, wt, None, [s, s], [p, p], [1, 1], False,
                                            [0, 0], 1, list(mask))  # runs for a ResNet conv

    flops = 2.0 * n * m * y.shape[2] * y.shape[3] * c * k * k
    t_fwd = median_time(fwd, reps, warmup)
    t_bwd = median_time(bwd, reps, warmup)
    t_din = median_time(lambda: bwd((True, False, False)), reps, warmup)
    t_dw = median_time(lambda: bwd((False, True, False)), reps, warmup)
    return flops, t_fwd, t_bwd, t_din, t_dw


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) >= 2 else 64
    ptl, opts = sys.argv[1], sys.argv[2:]
    shape_opts, timing_opts = split_opts(opts)
    layers = list_layers(ptl, shape_opts)
    header_done = False
    fmt = ("{:<15} {:>5} {:<28} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>11}"
           " {:>10}")
    parts = ("fwd", "din", "dw")  # GFLOPS of each alone, ours and PyTorch's, FLOPs f each
    tot = {"f": 0.0, "ours": 0.0, "torch": 0.0, "sgemm": 0.0, "f1": 0.0, "count": 0}
    tot.update({f"{who}_{x}": 0.0 for who in ("ours", "pt") for x in parts})
    for layer in layers:
        spec = ",".join(layer[x] for x in LIST_FIELDS[2:])
        meta, rows = run_ptl(ptl, ["--layer", spec] + timing_opts)
        row = dict(rows[0], layer=layer["layer"], count=layer["count"])
        threads, reps, warmup = meta["threads"], meta["reps"], meta["warmup"]
        if not header_done:
            torch.set_num_threads(threads)
            mkldnn = torch.backends.mkldnn.is_available()
            print(f"ptl vs PyTorch {torch.__version__} (mkldnn {mkldnn}), "
                  f"{threads} threads, median of {reps} reps after {warmup} warm-up; GFLOPS")
            print(fmt.format("layer", "count", "N,Cin,HxW->Cout,K/S,P", "ours", "PyTorch",
                             "sgemm", "ours fwd", "PT fwd", "ours d_in", "PT d_in", "ours d_w",
                             "PT d_w", "ours/PyTorch", "ours/sgemm"))
            header_done = True
        flops, t_fwd, t_bwd, t_din, t_dw = time_torch(row, reps, warmup)
        cnt = int(row["count"])
        ours_s = (float(row["fwd_ms"]) + float(row["bwd_ms"])) * 1e-3
        sgemm_s = float(row["sgemm_ms"]) * 1e-3
        torch_s = t_fwd + t_bwd
        alone = {"ours_fwd": float(row["fwd_ms"]) * 1e-3, "ours_din": float(row["din_ms"]) * 1e-3,
                 "ours_dw": float(row["dw_ms"]) * 1e-3, "pt_fwd": t_fwd, "pt_din": t_din,
                 "pt_dw": t_dw}
        shape = "{n},{c_in},{h}x{w}->{c_out},{k}/{stride},{pad}".format(**row)
        g = lambda t, f=3 * flops: f / t * 1e-9
        print(fmt.format(row["layer"], cnt, shape, f"{g(ours_s):.1f}", f"{g(torch_s):.1f}",
                         f"{g(sgemm_s):.1f}",
                         *(f"{g(alone[f'{who}_{x}'], flops):.1f}" for x in parts
                           for who in ("ours", "pt")),
                         f"{torch_s / ours_s:.2f}x", f"{sgemm_s / ours_s * 100:.0f}%"))
        sys.stdout.flush()
        tot["f"] += cnt * 3 * flops
        tot["f1"] += cnt * flops
        tot["ours"] += cnt * ours_s
        tot["torch"] += cnt * torch_s
        tot["sgemm"] += cnt * sgemm_s
        for key, t in alone.items():
            tot[key] += cnt * t
        tot["count"] += cnt
    if tot["count"]:
        g = lambda t, f=tot["f"]: f / t * 1e-9
        print(fmt.format("total", tot["count"], "(time-weighted by count)", f"{g(tot['ours']):.1f}",
                         f"{g(tot['torch']):.1f}", f"{g(tot['sgemm']):.1f}",
                         *(f"{g(tot[f'{who}_{x}'], tot['f1']):.1f}" for x in parts
                           for who in ("ours", "pt")),
                         f"{tot['torch'] / tot['ours']:.2f}x",
                         f"{tot['sgemm'] / tot['ours'] * 100:.0f}%"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
