#!/usr/bin/python3
"""How much of ptl's gradient allreduce hides behind backward, from a `ptl train --trace` file.

Reads the Chrome trace that `mpirun -n R ptl train CFG --out DIR --trace T.json` writes
(src/dist/trace.c: complete events with pid = rank, ts/dur in microseconds; "forward",
"backward", "optimizer" in cat compute, one "allreduce" per bucket and one "wait" per step in
cat comm). For every rank and every training step (a step starts with its "backward" and ends
where the next one starts) it takes:

  union    the union of the step's "allreduce" intervals (a bucket's interval runs from its
           MPI_Iallreduce to the MPI_Test or MPI_Wait that saw it complete)
  hidden   the part of the union inside that step's "backward" interval
  exposed  union - hidden
  wait     the step's "wait" (ptl_grad_sync_finish: start what backward did not, then wait)

and prints the hidden share = hidden / union over everything and as the median over steps,
the wait, backward, forward and optimizer time per step, and one `key=value` summary line
that bench/dist_scaling.sh reads. The first --skip steps of every rank (default 1: the warm-up
step touches fresh memory) are left out. Python 3 standard library only.

Usage: /usr/bin/python3 bench/dist_trace.py TRACE.json [--skip N]
"""
import argparse
import json
import statistics
import sys


def union(intervals):
    """Sorted, merged [start, end) intervals."""
    out = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def length(intervals):
    return sum(e - s for s, e in intervals)


def clip(intervals, lo, hi):
    return [(max(s, lo), min(e, hi)) for s, e in intervals if min(e, hi) > max(s, lo)]


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"dist_trace.py: {path}: cannot read the trace: {e}")
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        sys.exit(f"dist_trace.py: {path}: no traceEvents array")
    ranks = {}
    for i, ev in enumerate(events):
        if not isinstance(ev, dict) or ev.get("ph") != "X":
            continue
        try:
            rank, name = int(ev["pid"]), str(ev["name"])
            ts, dur = float(ev["ts"]), float(ev["dur"])
        except (KeyError, TypeError, ValueError):
            sys.exit(f"dist_trace.py: {path}: event {i} lacks pid, name, ts or dur")
        ranks.setdefault(rank, {}).setdefault(name, []).append((ts, ts + dur))
    if not ranks:
        sys.exit(f"dist_trace.py: {path}: no complete events")
    return ranks


def steps_of(ev, skip):
    """Per step: backward interval, [lo, hi) window, and the step's events by name."""
    backs = sorted(ev.get("backward", []))
    out = []
    for k, (b0, b1) in enumerate(backs):
        lo = b0
        hi = backs[k + 1][0] if k + 1 < len(backs) else float("inf")

        def inside(name):
            return [iv for iv in ev.get(name, []) if lo <= iv[0] < hi]

        # forward runs before its backward: the last forward that starts before b0
        fwd = [iv for iv in ev.get("forward", []) if iv[0] < b0]
        out.append({
            "backward": (b0, b1),
            "allreduce": inside("allreduce"),
            "wait": inside("wait"),
            "optimizer": inside("optimizer"),
            "forward": fwd[-1:] if fwd else [],
        })
    return out[skip:]


def main():
    ap = argparse.ArgumentParser(description="hidden share of the gradient allreduce in a "
                                 "ptl train --trace file")
    ap.add_argument("trace")
    ap.add_argument("--skip", type=int, default=1, help="warm-up steps left out per rank "
                    "(default 1)")
    a = ap.parse_args()
    if a.skip < 0:
        ap.error("--skip must be >= 0")
    ranks = load(a.trace)

    tot_union = tot_hidden = 0.0
    shares, waits, backs, fwds, opts, exposed, buckets = [], [], [], [], [], [], []
    print(f"{'rank':>4} {'steps':>5} {'backward ms':>12} {'allreduce ms':>13} {'hidden ms':>10} "
          f"{'exposed ms':>11} {'wait ms':>8} {'hidden share':>13}   (medians per step)")
    for rank in sorted(ranks):
        st = steps_of(ranks[rank], a.skip)
        if not st:
            continue
        r_union, r_hidden, r_share, r_wait, r_back, r_exp = [], [], [], [], [], []
        for s in st:
            b0, b1 = s["backward"]
            u = union(s["allreduce"])
            ul, hl = length(u), length(clip(u, b0, b1))
            r_union.append(ul)
            r_hidden.append(hl)
            r_exp.append(ul - hl)
            if ul > 0:
                r_share.append(hl / ul)
            r_wait.append(length(s["wait"]))
            r_back.append(b1 - b0)
            fwds.append(length(s["forward"]))
            opts.append(length(s["optimizer"]))
            buckets.append(len(s["allreduce"]))
        tot_union += sum(r_union)
        tot_hidden += sum(r_hidden)
        shares += r_share
        waits += r_wait
        backs += r_back
        exposed += r_exp
        med = statistics.median
        print(f"{rank:>4} {len(st):>5} {med(r_back) / 1e3:>12.2f} {med(r_union) / 1e3:>13.2f} "
              f"{med(r_hidden) / 1e3:>10.2f} {med(r_exp) / 1e3:>11.2f} {med(r_wait) / 1e3:>8.2f} "
              f"{(med(r_share) if r_share else 0):>13.3f}")
    if not backs:
        sys.exit(f"dist_trace.py: {a.trace}: no training step after skipping {a.skip} per rank "
                 "(was the run traced, with 2 or more ranks?)")
    if tot_union == 0:
        sys.exit(f"dist_trace.py: {a.trace}: no allreduce events (a 1-rank run has none)")
    med = statistics.median
    overall = tot_hidden / tot_union
    print(f"hidden share of the allreduce time: {overall:.3f} overall (sum hidden / sum union), "
          f"{med(shares):.3f} median per step; {len(backs)} rank-steps, "
          f"{med(buckets):.0f} bucket(s) per step, first {a.skip} step(s) per rank skipped")
    print(f"per step (median): forward {med(fwds) / 1e3:.2f} ms, backward {med(backs) / 1e3:.2f} "
          f"ms, optimizer {med(opts) / 1e3:.2f} ms, wait {med(waits) / 1e3:.2f} ms, exposed "
          f"allreduce {med(exposed) / 1e3:.2f} ms")
    # compute per step: what a rank spends computing, the input of bench/dist_model.py
    compute = med(fwds) + med(backs) + med(opts)
    print(f"summary hidden_share={overall:.4f} hidden_share_median={med(shares):.4f} "
          f"wait_ms={med(waits) / 1e3:.3f} backward_ms={med(backs) / 1e3:.3f} "
          f"forward_ms={med(fwds) / 1e3:.3f} optimizer_ms={med(opts) / 1e3:.3f} "
          f"compute_s={compute / 1e6:.5f} buckets={med(buckets):.0f}")


if __name__ == "__main__":
    main()
