#!/usr/bin/env python3
"""PyTorch reference for ptl's optimizers and learning-rate schedules (tests/unit/test_optim.c).

    make_optim_fixtures.py --layout LAYOUT.txt --out FIXTURES.h5 [--seed S]

LAYOUT.txt is what `test_optim --filter 'optim_ref/layout'` writes for its reference model:
"arch NAME", "n_params N", then one line per trainable entry "name offset count role used"
(role 0 backbone, 1 cells, 2 head). From it this script builds one torch parameter per used
entry, one parameter group per role (lr = lr * lr_scale[role]; a role of scale 0 is left out,
i.e. frozen), and runs torch.optim.SGD / torch.optim.Adam (the single-tensor path of torch
1.13) for a few steps. FIXTURES.h5 holds (float32 unless noted):

  attrs       n_params, steps, torch (version), arch
  p0          the initial flat parameter buffer (seeded normal values)
  g0, g1      two gradient buffers; the gradient of step t (0-based) is g[t % 2] * gscale[t],
              one float32 product per element on both sides (so both see the same bits).
              Some gradient values are exactly 0.
  optim/<case>/  attrs kind (0 SGD, 1 Adam), weight_decay, momentum, dampening, nesterov,
              beta1, beta2, eps, amsgrad, lr_scale (3); datasets lr (per step: the base lr
              given to that step), gscale (per step), params (after the last step: frozen and
              unused entries keep p0), state/<name> (PyTorch's state names; zero where torch
              keeps no state).
  schedule/<case>/  attrs kind (0 constant, 1 multistep, 2 cosine), base_lr, milestones (16,
              n_milestones used), n_milestones, gamma, t_max, eta_min, warmup_steps,
              warmup_factor, steps_per_epoch, steps; dataset lr (float64, per step): the lr
              torch.optim.lr_scheduler gives an optimizer when MultiStepLR / CosineAnnealingLR
              are stepped once per epoch and LinearLR (warmup) once per iteration, chained.

Every hyperparameter is rounded to float32 first (ptl's config holds floats), so both sides
start from the same numbers.
"""
import argparse
import sys
import warnings

import h5py
import numpy as np
import torch

F32 = np.float32
STEPS = 5


def f32(x):
    """x rounded to float32, as a Python float (what ptl's float config field holds)."""
    return float(F32(x))


def read_layout(path):
    arch, n_params, entries = None, None, []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "arch":
                arch = parts[1]
            elif parts[0] == "n_params":
                n_params = int(parts[1])
            else:
                name, off, count, role, used = parts
                entries.append((name, int(off), int(count), int(role), int(used)))
    if n_params is None or not entries:
        sys.exit(f"make_optim_fixtures: {path}: no layout")
    end = 0
    for name, off, count, _, _ in sorted(entries, key=lambda e: e[1]):
        if off < end or off + count > n_params:
            sys.exit(f"make_optim_fixtures: {path}: entry {name} overlaps or overflows")
        end = off + count
    return arch, n_params, entries


# name: (kind, options, lr per step (base), gscale per step, lr_scale per role)
SGD_LR = [0.1, 0.1, 0.05, 0.05, 0.02]
ADAM_LR = [1e-3, 1e-3, 5e-4, 5e-4, 2e-4]
GSCALE = [1.0, 2.0, 0.5, -0.25, 1.5]  # sign flips and shrinking grads: AMSGrad's max matters
CASES = {
    "sgd_plain": ("sgd", {}, SGD_LR, [1, 1, 1]),
    "sgd_momentum": ("sgd", {"momentum": 0.9, "weight_decay": 5e-4}, SGD_LR, [1, 1, 1]),
    "sgd_nesterov": ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}, SGD_LR,
                     [1, 1, 1]),
    "sgd_dampening": ("sgd", {"momentum": 0.8, "dampening": 0.3}, SGD_LR, [1, 1, 1]),
    "sgd_weight_decay": ("sgd", {"weight_decay": 1e-2}, SGD_LR, [1, 1, 1]),
    "sgd_backbone_x0.1": ("sgd", {"momentum": 0.9, "weight_decay": 5e-4}, SGD_LR, [0.1, 1, 1]),
    "sgd_frozen_backbone": ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
                            SGD_LR, [0, 1, 0.5]),
    "adam": ("adam", {}, ADAM_LR, [1, 1, 1]),
    "adam_weight_decay": ("adam", {"weight_decay": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6},
                          ADAM_LR, [1, 1, 1]),
    "adam_backbone_x0.1": ("adam", {"weight_decay": 5e-4}, ADAM_LR, [0.1, 1, 1]),
    "amsgrad": ("adam", {"amsgrad": True}, ADAM_LR, [1, 1, 1]),
    "amsgrad_weight_decay_frozen": ("adam", {"amsgrad": True, "weight_decay": 1e-3,
                                             "betas": (0.85, 0.95)}, ADAM_LR, [0, 0.1, 1]),
}


def run_case(kind, opts, lrs, scales, entries, p0, grads):
    """torch.optim on the entries; returns the final flat params and {state name: flat}."""
    params = {}  # entry name -> Parameter
    groups = []
    for role in range(3):
        if scales[role] == 0:
            continue  # frozen: not given to the optimizer, so neither it nor its state moves
        ps = []
        for name, off, count, r, used in entries:
            if r == role and used:
                params[name] = torch.nn.Parameter(torch.from_numpy(p0[off:off + count].copy()))
                ps.append(params[name])
        if ps:
            groups.append({"params": ps, "lr": f32(lrs[0]) * f32(scales[role]), "role": role})
    if kind == "adam":  # torch's defaults are doubles; ptl's config holds floats
        opts = {"betas": (0.9, 0.999), "eps": 1e-8, **opts}
    o = {k: (tuple(f32(b) for b in v) if k == "betas" else
             v if isinstance(v, bool) else f32(v)) for k, v in opts.items()}
    if kind == "sgd":
        opt = torch.optim.SGD(groups, lr=f32(lrs[0]), **o)
    else:
        opt = torch.optim.Adam(groups, lr=f32(lrs[0]), **o)
    for t in range(STEPS):
        for gr in opt.param_groups:
            # ptl: group lr = (double) lr * (double) lr_scale[role]
            gr["lr"] = f32(lrs[t]) * f32(scales[gr["role"]])
        g = grads[t % 2] * F32(GSCALE[t])
        assert g.dtype == F32
        for name, off, count, _, used in entries:
            if name in params:
                params[name].grad = torch.from_numpy(g[off:off + count].copy())
        opt.step()
    out = p0.copy()
    names = (["momentum_buffer"] if kind == "sgd" and o.get("momentum", 0) != 0 else
             [] if kind == "sgd" else
             ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if o.get("amsgrad") else []))
    state = {s: np.zeros_like(p0) for s in names}
    for name, off, count, _, _ in entries:
        if name not in params:
            continue
        p = params[name]
        out[off:off + count] = p.detach().numpy()
        st = opt.state[p]
        for s in names:
            state[s][off:off + count] = st[s].numpy()
    return out, state


# name: (kind, base, milestones, gamma, t_max, eta_min, warmup_steps, warmup_factor,
#        steps_per_epoch, epochs)
SCHEDULES = {
    "constant": (0, 0.1, [], 0.1, 1, 0.0, 0, 1.0, 2, 4),
    "multistep": (1, 0.1, [3, 5], 0.1, 1, 0.0, 0, 1.0, 1, 8),
    "multistep_repeated": (1, 0.05, [2, 4, 4], 0.5, 1, 0.0, 0, 1.0, 2, 6),
    "cosine": (2, 0.1, [], 0.1, 6, 0.001, 0, 1.0, 1, 9),
    "cosine_eta0": (2, 0.01, [], 0.1, 10, 0.0, 0, 1.0, 1, 12),
    "warmup": (0, 0.1, [], 0.1, 1, 0.0, 5, 0.1, 1, 8),
    "multistep_warmup": (1, 0.1, [2, 3], 0.1, 1, 0.0, 4, 0.25, 3, 5),
    "cosine_warmup": (2, 0.1, [], 0.1, 5, 0.0, 7, 0.01, 3, 6),
}


def torch_schedule(kind, base, milestones, gamma, t_max, eta_min, warmup, factor, per_epoch,
                   epochs):
    """The lr of every iteration from torch's schedulers, chained as a training loop would."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=f32(base))
    epoch_sched = None
    if kind == 1:
        epoch_sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=f32(gamma))
    elif kind == 2:
        epoch_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, t_max, eta_min=f32(eta_min))
    warm = None
    if warmup > 0:
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=f32(factor), end_factor=1.0,
                                                 total_iters=warmup)
    lrs = []
    for _ in range(epochs):
        for _ in range(per_epoch):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if warm is not None:
                warm.step()
        if epoch_sched is not None:
            epoch_sched.step()
    return lrs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layout", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # the chained-scheduler notices
    arch, n, entries = read_layout(a.layout)
    rng = np.random.default_rng(a.seed)
    p0 = rng.normal(0, 0.5, n).astype(F32)
    grads = []
    for _ in range(2):
        g = (rng.normal(0, 1e-2, n) * np.exp(rng.normal(0, 1, n))).astype(F32)
        g[rng.random(n) < 0.01] = 0  # zero gradients: Adam's denominator is eps alone
        grads.append(g)
    with h5py.File(a.out, "w") as f:
        f.attrs["n_params"] = np.int64(n)
        f.attrs["steps"] = np.int32(STEPS)
        f.attrs["torch"] = np.bytes_(torch.__version__)
        f.attrs["arch"] = np.bytes_(arch or "")
        f["p0"] = p0
        f["g0"], f["g1"] = grads
        for name, (kind, opts, lrs, scales) in CASES.items():
            params, state = run_case(kind, opts, lrs, scales, entries, p0, grads)
            g = f.create_group(f"optim/{name}")
            betas = opts.get("betas", (0.9, 0.999))
            g.attrs["kind"] = np.int32(0 if kind == "sgd" else 1)
            g.attrs["weight_decay"] = F32(opts.get("weight_decay", 0))
            g.attrs["momentum"] = F32(opts.get("momentum", 0))
            g.attrs["dampening"] = F32(opts.get("dampening", 0))
            g.attrs["nesterov"] = np.int32(opts.get("nesterov", False))
            g.attrs["beta1"], g.attrs["beta2"] = F32(betas[0]), F32(betas[1])
            g.attrs["eps"] = F32(opts.get("eps", 1e-8))
            g.attrs["amsgrad"] = np.int32(opts.get("amsgrad", False))
            g.attrs["lr_scale"] = np.array(scales, dtype=F32)
            g["lr"] = np.array(lrs, dtype=F32)
            g["gscale"] = np.array(GSCALE, dtype=F32)
            g["params"] = params
            sg = g.create_group("state")
            for s, v in state.items():
                sg[s] = v
        for name, spec in SCHEDULES.items():
            (kind, base, milestones, gamma, t_max, eta_min, warmup, factor, per_epoch,
             epochs) = spec
            g = f.create_group(f"schedule/{name}")
            g.attrs["kind"] = np.int32(kind)
            g.attrs["base_lr"] = F32(base)
            g.attrs["milestones"] = np.array(milestones + [0] * (16 - len(milestones)),
                                             dtype=np.int32)
            g.attrs["n_milestones"] = np.int32(len(milestones))
            g.attrs["gamma"] = F32(gamma)
            g.attrs["t_max"] = np.int32(t_max)
            g.attrs["eta_min"] = F32(eta_min)
            g.attrs["warmup_steps"] = np.int32(warmup)
            g.attrs["warmup_factor"] = F32(factor)
            g.attrs["steps_per_epoch"] = np.int32(per_epoch)
            g.attrs["steps"] = np.int32(per_epoch * epochs)
            g["lr"] = np.array(torch_schedule(*spec), dtype=np.float64)
    print(f"make_optim_fixtures: {len(CASES)} optimizer cases over {n} parameters "
          f"({len(entries)} entries), {len(SCHEDULES)} schedules -> {a.out}")


if __name__ == "__main__":
    main()
