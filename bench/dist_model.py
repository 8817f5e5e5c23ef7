#!/usr/bin/python3
"""Alpha-beta model of ptl's data-parallel step at cluster scale (1 to 256 nodes).

Weak scaling: every node computes a fixed per-node batch in the measured compute time per
step (forward + backward + optimizer, from a `ptl train --trace` run read by
bench/dist_trace.py), then the gradients are averaged over the p nodes in B buckets of
n/B bytes each. One rank per node; intra-node parallelism is the node's threads.

Allreduce of one bucket of m bytes over p nodes, latency alpha (s), inverse bandwidth beta
(s/byte):
  ring                2(p-1)/p m beta + 2(p-1) alpha
  recursive doubling  log2(p) (m beta + alpha)             (better for small buckets)
  "ring/rd"           the cheaper of the two per bucket, as MPI libraries choose by size
  "binomial"          2 ceil(log2 p) (m beta + alpha): reduce to rank 0 then broadcast, the
                      schedule Open MPI 4.1's libnbc picks for MPI_Iallreduce with
                      MPI_IN_PLACE (ptl's call) or fewer than 4 ranks
Buckets travel one after another (comm = sum over buckets). Of the comm, the measured hidden
share h (dist_trace.py) overlaps backward, but never more than the backward window W:
  exposed = max(comm (1 - h), comm - W) + fixed
where fixed is a per-step overhead that no overlap hides (default: the small allreduce of the
loss sums, log2(p) alpha, plus --fixed-s, e.g. copying the averaged gradients back).
  step = compute + exposed;  efficiency = compute / step;  images/s = p * batch / step

Usage: /usr/bin/python3 bench/dist_model.py --compute-s S --grad-bytes N [options]
"""
import argparse
import math
import sys

# An HDR InfiniBand-class inter-node link: 200 Gb/s = 25 GB/s raw; 12.5 GB/s is what an MPI
# allreduce typically sustains per direction on one HDR port (or an EDR 100 Gb/s link at line
# rate); 2 us small-message latency through one switch level.
DEFAULT_ALPHA = 2e-6
DEFAULT_BW = 12.5e9


def ring(p, m, alpha, beta):
    return 2 * (p - 1) / p * m * beta + 2 * (p - 1) * alpha if p > 1 else 0.0


def rdoubling(p, m, alpha, beta):
    return math.ceil(math.log2(p)) * (m * beta + alpha) if p > 1 else 0.0


def binomial(p, m, alpha, beta):
    return 2 * math.ceil(math.log2(p)) * (m * beta + alpha) if p > 1 else 0.0


ALGORITHMS = {
    "ring": ring,
    "rd": rdoubling,
    "ring/rd": lambda p, m, a, b: min(ring(p, m, a, b), rdoubling(p, m, a, b)),
    "binomial": binomial,
}


def table(args, alpha, beta, algorithm, title):
    f = ALGORITHMS[algorithm]
    m = args.grad_bytes / args.buckets
    print(f"\n{title}: alpha {alpha * 1e6:.3g} us, {1 / beta / 1e9:.3g} GB/s, "
          f"allreduce {algorithm}")
    print(f"{'nodes':>6} {'step s':>9} {'comm s':>9} {'exposed s':>10} {'efficiency':>11} "
          f"{'images/s':>10}")
    rows = []
    p = 1
    while p <= args.max_nodes:
        comm = args.buckets * f(p, m, alpha, beta)
        fixed = (math.ceil(math.log2(p)) * alpha + args.fixed_s) if p > 1 else 0.0
        exposed = max(comm * (1 - args.hidden), comm - args.backward_s) + fixed
        step = args.compute_s + exposed
        eff = args.compute_s / step
        rows.append((p, eff))
        print(f"{p:>6} {step:>9.4f} {comm:>9.4f} {exposed:>10.4f} {eff:>11.3f} "
              f"{p * args.batch / step:>10.1f}")
        p *= 2
    good = [p for p, e in rows if e >= args.target]
    half = [p for p, e in rows if e >= 0.5]
    print(f"=> efficiency >= {args.target:g} up to {max(good) if good else 'no'} nodes; "
          f">= 0.5 up to {max(half) if half else 'no'} nodes (of 1..{args.max_nodes})")
    return max(good) if good else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compute-s", type=float, required=True,
                    help="measured compute seconds per step per node (forward + backward + "
                    "optimizer at the per-node batch)")
    ap.add_argument("--node-speedup", type=float, default=1.0,
                    help="how many times faster a cluster node computes the step than the "
                    "measurement here (e.g. 16 for a 32-core node against one core here); "
                    "divides --compute-s and --backward-s (default 1)")
    ap.add_argument("--backward-s", type=float, default=None,
                    help="backward seconds per step: the window comm can hide in "
                    "(default: 2/3 of --compute-s)")
    ap.add_argument("--grad-bytes", type=float, required=True,
                    help="bytes of gradients averaged per step (ptl bench dist: floats * 4)")
    ap.add_argument("--buckets", type=int, default=1, help="allreduce buckets per step")
    ap.add_argument("--batch", type=int, default=32, help="per-node batch (weak scaling)")
    ap.add_argument("--hidden", type=float, default=0.0,
                    help="share of the allreduce time hidden behind backward (dist_trace.py)")
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                    help=f"inter-node latency, s (default {DEFAULT_ALPHA:g})")
    ap.add_argument("--bandwidth", type=float, default=DEFAULT_BW,
                    help=f"inter-node bandwidth, bytes/s (default {DEFAULT_BW:g})")
    ap.add_argument("--link", default="HDR InfiniBand class",
                    help="name of the inter-node link for the table titles")
    ap.add_argument("--measured-bytes", type=float, default=None,
                    help="bytes of a bare MPI_Allreduce measured on this machine (ptl bench "
                    "dist), to print a table for this machine's link as well")
    ap.add_argument("--measured-s", type=float, default=None,
                    help="its median seconds")
    ap.add_argument("--measured-ranks", type=int, default=2, help="its ranks (default 2)")
    ap.add_argument("--measured-alpha", type=float, default=5e-6,
                    help="latency assumed for this machine's link, s (default 5e-6)")
    ap.add_argument("--fixed-s", type=float, default=0.0,
                    help="extra per-step seconds no overlap hides (e.g. copying averaged "
                    "gradients back)")
    ap.add_argument("--algorithm", choices=sorted(ALGORITHMS), action="append",
                    help="allreduce model(s) to print (default: ring/rd and binomial)")
    ap.add_argument("--target", type=float, default=0.9, help="efficiency to report the "
                    "reach of (default 0.9)")
    ap.add_argument("--max-nodes", type=int, default=256)
    ap.add_argument("--label", default="", help="model name for the header")
    a = ap.parse_args()
    for name in ("compute_s", "grad_bytes"):
        if getattr(a, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be > 0")
    if a.buckets < 1 or a.batch < 1 or not 0 <= a.hidden <= 1 or a.max_nodes < 1:
        ap.error("--buckets and --batch must be >= 1, --hidden in [0, 1]")
    if (a.measured_bytes is None) != (a.measured_s is None):
        ap.error("--measured-bytes and --measured-s go together")
    if a.node_speedup <= 0:
        ap.error("--node-speedup must be > 0")
    if a.backward_s is None:
        a.backward_s = a.compute_s * 2 / 3
    measured_compute = a.compute_s
    a.compute_s /= a.node_speedup
    a.backward_s /= a.node_speedup
    algorithms = a.algorithm or ["ring/rd", "binomial"]

    print(f"alpha-beta model of ptl data parallelism{': ' + a.label if a.label else ''}")
    print("assumptions:")
    print(f"  weak scaling, one rank per node, per-node batch {a.batch}, compute "
          f"{a.compute_s:.4f} s/step per node (backward window {a.backward_s:.4f} s) = "
          f"{measured_compute:.4f} s measured / node speedup {a.node_speedup:g}")
    print(f"  {a.grad_bytes / 2**20:.2f} MiB of gradients per step in {a.buckets} bucket(s) "
          f"of {a.grad_bytes / a.buckets / 2**20:.2f} MiB, sent one after another")
    print(f"  hidden share h = {a.hidden:.3f} of the comm overlaps backward (measured on 2 "
          f"ranks), at most the backward window; exposed = max(comm (1-h), comm - W) + "
          f"log2(p) alpha + {a.fixed_s:g} s")
    print("  no contention, no stragglers, no data loading or evaluation cost, compute "
          "per node independent of p (fixed per-node batch)")
    print("  ring/rd: the cheaper of ring 2(p-1)/p m beta + 2(p-1) alpha and recursive "
          "doubling log2(p)(m beta + alpha) per bucket; binomial: 2 ceil(log2 p)(m beta + "
          "alpha), Open MPI 4.1 libnbc's choice for an in-place MPI_Iallreduce")
    beta = 1 / a.bandwidth
    for alg in algorithms:
        table(a, a.alpha, beta, alg, f"inter-node link (assumed, {a.link})")
    if a.measured_bytes is not None:
        # Solve the ring model of the measured run for beta, given the assumed alpha.
        p = a.measured_ranks
        lat = 2 * (p - 1) * a.measured_alpha
        bw_term = a.measured_s - lat
        if bw_term <= 0:
            sys.exit("dist_model.py: --measured-s is below the assumed latency term")
        mbeta = bw_term / (2 * (p - 1) / p * a.measured_bytes)
        for alg in algorithms:
            table(a, a.measured_alpha, mbeta, alg,
                  f"this machine's shared-memory link (from a bare MPI_Allreduce of "
                  f"{a.measured_bytes / 2**20:.2f} MiB in {a.measured_s:.4g} s on {p} ranks)")


if __name__ == "__main__":
    main()
