#!/usr/bin/env python3
"""PyTorch reference for ptl's whole networks (tests/unit/test_models.c).

Modes:

  --counts OUT.json
      For every architecture of ptl's registry (src/models/model.c, or --archs), the PyTorch
      model's ordered state_dict (names, shapes), its parameter count sum(p.numel()) and its
      buffer floats. Architectures the reference cannot build yet are listed under "skipped"
      with the reason.

  --fixtures OUT.h5 --arch A [--input CxHxW] [--batch N] [--classes K] [--seed S]
      A randomly initialised model (torch.manual_seed; BatchNorm affine parameters and running
      statistics randomised too, so a swapped or unloaded tensor shows) and what it does on
      three consecutive TRAINING batches and one eval forward. The weights go to OUT.weights.h5
      (a plain ptl weights file: one dataset per state_dict name at the root, float32,
      num_batches_tracked int64) so ptl_weights_load reads it strictly; OUT.h5 holds:
        attrs      (strings as fixed-length bytes) arch, classes, batch, input (C, H, W), batches,
                   outputs ("a,b,..."), weights (file name of the weights file, same folder),
                   torch, eval_state_global (1 for models with cells: ptl's cfg for eval)
        entries/   names (fixed-length bytes), ndims, shapes (n, 4): the state_dict, in order
        state/     the cells' initial latent states by ptl's name ("<cell>.c", "<cell>.x_prev"),
                   (slots, ...), Normal(0, 0.5^2), set before batch 1 (models with cells only)
        batchB/    (B = 1..3) input (N, C, H, W); dy/<output>, out/<output> (N, dim);
                   grad/<parameter name> (zero_grad before each batch; the loss is
                   sum over outputs of sum(out * dy))
        running/   every buffer after the three batches (float32)
        eval/      input, out/<output>: one eval-mode forward after the batches
        Every expected output, gradient and buffer carries the attribute f32_err: max|torch
        float32 - torch float64| of that tensor (PyTorch's own float32 error on the same run).
      BatchNorm parameters are chosen (randomise_batchnorm) and batches redrawn (train_forward)
      so that no ReLU input sits within float32 noise of its kink, and no max-pool window's two
      largest values within float32 noise of each other, where ptl and the reference could
      legitimately take different sides.
      The model runs in float64 (model.double()) on the float32 data; results are stored
      rounded to float32, so the comparison measures ptl's float32 error only.

  --fixtures-dir DIR --list "arch:CxHxW:batch ..."
      --fixtures for each entry into DIR/<arch>.h5, each followed by an empty DIR/<arch>.done
      (tests/reference/models.sh compares each while the next is generated).

Backbones come from torchvision. resnet18-small is torchvision's resnet18 with conv1 replaced by
Conv2d(3, 64, 3, 1, 1, bias=False) and the max-pool by Identity; resnet18-narrow is the same with
planes 16/32/64/128 (ptl_models.small_resnet18). densenet-bc-100 (no
torchvision constructor) is torchvision.models.DenseNet(growth_rate=12, block_config=(16, 16,
16), num_init_features=24, bn_size=4) with features.conv0 replaced by Conv2d(3, 24, 3, 1, 1,
bias=False) and features.norm0/relu0/pool0 removed: the CIFAR DenseNet-BC (depth 100, growth
12, compression 0.5) in torchvision's naming scheme. PTL, PTL-v2 and MGN networks come from
build(arch, classes, in_shape, eval_state="global") of ptl_models.py beside this file (the
fixture sets ptl's cfg.eval_state_global to match).
"""
import argparse
import collections
import copy
import json
import os
import re
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ptl_models  # noqa: E402  (the PTL / PTL-v2 / MGN reference, beside this file)
TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
TORCHVISION_DENSENETS = ("densenet121", "densenet161", "densenet169")
BACKBONES = TORCHVISION_RESNETS + TORCHVISION_DENSENETS + ("resnet18-small", "resnet18-narrow",
                                                               "densenet-bc-100")


def registry_archs():
    """Architecture names of ptl's registry, read from src/models/model.c."""
    path = os.path.join(HERE, "..", "..", "src", "models", "model.c")
    with open(path) as f:
        names = re.findall(r'\{\s*"([^"]+)"\s*,\s*build_\w+\s*\}', f.read())
    if not names:
        sys.exit(f"make_model_fixtures: no architecture table found in {path}")
    return names


def default_input(arch):
    if arch.startswith("mgn"):
        return (3, 384, 128)
    if arch.endswith(("-small", "-narrow", "densenet-bc-100")):
        return (3, 32, 32)
    return (3, 224, 224)


# ------------------------------------------------------------------ backbones ---------------

def densenet_bc_100(classes):
    m = torchvision.models.DenseNet(growth_rate=12, block_config=(16, 16, 16),
                                    num_init_features=24, bn_size=4, num_classes=classes)
    # CIFAR stem: one 3x3 stride-1 conv, no norm0/relu0/pool0 (assigning keeps conv0's place
    # in the state_dict order).
    m.features.conv0 = nn.Conv2d(3, 24, kernel_size=3, stride=1, padding=1, bias=False)
    del m.features.norm0, m.features.relu0, m.features.pool0
    nn.init.kaiming_normal_(m.features.conv0.weight)
    return m


def build_backbone(arch, classes):
    tv = torchvision.models
    if arch in TORCHVISION_RESNETS:
        return getattr(tv, arch)(num_classes=classes)
    if arch in ptl_models.SMALL_RESNET_WIDTH:
        return ptl_models.small_resnet18(ptl_models.SMALL_RESNET_WIDTH[arch], classes)
    if arch in TORCHVISION_DENSENETS:
        return getattr(tv, arch)(num_classes=classes)
    if arch == "densenet-bc-100":
        return densenet_bc_100(classes)
    raise ValueError(f"not a backbone: {arch}")


class BackboneNet(nn.Module):
    """A torchvision model with ptl's outputs: "features" (the pooled vector) and "logits".
    The wrapped model is registered under no prefix, so the state_dict names are unchanged."""

    def __init__(self, arch, classes):
        super().__init__()
        self.arch = arch
        net = build_backbone(arch, classes)
        for name, child in net.named_children():
            self.add_module(name, child)
        self.output_names = ["features", "logits"]

    def forward(self, x):
        if self.arch.startswith("resnet"):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            f = torch.flatten(self.avgpool(x), 1)
            return collections.OrderedDict(features=f, logits=self.fc(f))
        f = F.relu(self.features(x))
        f = torch.flatten(F.adaptive_avg_pool2d(f, (1, 1)), 1)
        return collections.OrderedDict(features=f, logits=self.classifier(f))


def build(arch, classes, in_shape):
    """The reference network of `arch` with forward(x) -> OrderedDict of ptl's outputs."""
    if arch in BACKBONES:
        return BackboneNet(arch, classes)
    # eval_state "global": the eval forward starts from the training state averaged over
    # slots, which ptl reproduces exactly (the default "reset" draws a fresh random state).
    model = ptl_models.build(arch, classes, tuple(in_shape), eval_state="global")
    model.in_shape_for_fixture = tuple(in_shape)
    return model


def outputs_of(model, result):
    """Ordered (name, tensor) pairs of a forward's result (dict, or tuple + output_names)."""
    if isinstance(result, dict):
        return list(result.items())
    if torch.is_tensor(result):
        result = (result,)
    names = getattr(model, "output_names", None)
    if names is None or len(names) != len(result):
        raise RuntimeError("forward must return a dict of outputs, or a tuple matching "
                           "model.output_names")
    return list(zip(names, result))


# ------------------------------------------------------------------ latent states -----------

def has_cells(model):
    return hasattr(model, "state_names") and len(model.state_names()) > 0


def initial_states(model, slots, gen):
    """Initial latent states for the BConv-Cells by ptl's names ({} without cells), set on the
    model (ptl_models.py's set_states) and returned for the fixture. Drawn as Normal(0, 0.5^2)
    rather than ptl's 0.001 so that batch 1 already exercises the carried state. The shapes
    come from a training forward of a copy (get_states() is empty before one)."""
    if not has_cells(model):
        return collections.OrderedDict()
    probe = copy.deepcopy(model).train()
    with torch.no_grad():
        probe(torch.zeros((slots,) + tuple(model.in_shape_for_fixture)))
    shapes = {k: v.shape for k, v in probe.get_states().items()}
    states = collections.OrderedDict()
    for name in model.state_names():
        states[name] = torch.randn(shapes[name], generator=gen, dtype=torch.float32) * 0.5
    model.set_states(states)
    return states


# ------------------------------------------------------------------ counts ------------------

def counts(out, archs, classes):
    result = {"torch": torch.__version__, "torchvision": torchvision.__version__,
              "archs": collections.OrderedDict(), "skipped": collections.OrderedDict()}
    for arch in archs:
        shape = default_input(arch)
        try:
            torch.manual_seed(0)
            model = build(arch, classes, shape)
        except Exception as e:  # the reference may not cover every arch yet: say which
            result["skipped"][arch] = f"{type(e).__name__}: {e}"
            print(f"counts: {arch}: SKIPPED ({type(e).__name__}: {e})", file=sys.stderr)
            continue
        sd = model.state_dict()
        result["archs"][arch] = {
            "classes": classes,
            "input": list(shape),
            "params": int(sum(p.numel() for p in model.parameters())),
            "buffers": int(sum(b.numel() for b in model.buffers())),
            "entries": [[k, list(v.shape)] for k, v in sd.items()],
        }
        print(f"counts: {arch}: {result['archs'][arch]['params']} parameters, {len(sd)} entries",
              file=sys.stderr)
    with open(out, "w") as f:
        # One architecture per line keeps the file diffable and easy on the C reader.
        f.write("{\n")
        f.write(f'"torch": {json.dumps(result["torch"])},\n')
        f.write(f'"torchvision": {json.dumps(result["torchvision"])},\n')
        f.write(f'"skipped": {json.dumps(result["skipped"])},\n')
        f.write('"archs": {\n')
        items = list(result["archs"].items())
        for i, (arch, rec) in enumerate(items):
            f.write(f"{json.dumps(arch)}: {json.dumps(rec)}{',' if i + 1 < len(items) else ''}\n")
        f.write("}}\n")


# ------------------------------------------------------------------ fixtures ----------------

def randomise_batchnorm(model, gen):
    """BatchNorm parameters and running statistics for a fixture.

    Not PyTorch's 1/0: a swapped or unloaded tensor must change the results. And chosen so that
    few ReLU inputs sit near 0: ptl (float32) and the reference (float64) differ by ~1e-6 to
    1e-4 of an activation's spread after many layers, and an element on the other side of a
    ReLU's kink in ptl moves its channel's gradients by percents. With gamma in [0.25, 0.4] and
    |beta| in [0.8, 1.2] a BN output crosses 0 only ~2.5 standard deviations out; beta < 0 (30%
    of channels) gives channels the ReLU mostly shuts, so masking is still exercised. The last BN
    of a residual branch and of a downsample path keep beta > 0, so identity + branch stays away
    from 0 before the block's ReLU."""
    positive = set()
    for mod in model.modules():
        if isinstance(mod, torchvision.models.resnet.BasicBlock):
            positive.add(id(mod.bn2))
        if isinstance(mod, torchvision.models.resnet.Bottleneck):
            positive.add(id(mod.bn3))
        if isinstance(mod, (torchvision.models.resnet.BasicBlock,
                            torchvision.models.resnet.Bottleneck)) and mod.downsample is not None:
            positive.update(id(m) for m in mod.downsample
                            if isinstance(m, nn.modules.batchnorm._BatchNorm))

    def uniform(shape, lo, hi):
        return torch.rand(shape, generator=gen, dtype=torch.float32) * (hi - lo) + lo

    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                c = mod.num_features
                if mod.affine:
                    mod.weight.copy_(uniform(c, 0.2, 0.3))
                    sign = torch.ones(c)
                    if id(mod) not in positive:
                        sign[torch.rand(c, generator=gen) < 0.3] = -1
                    mod.bias.copy_(sign * uniform(c, 1.0, 1.3))
                mod.running_mean.copy_(uniform(c, -0.1, 0.1))
                mod.running_var.copy_(uniform(c, 0.5, 1.5))


class KinkGuard:
    """Counts inputs so close to a kink that float32 may put them on the other side of it: ReLU
    inputs near 0, and max-pool windows whose two largest values nearly tie.

    ptl runs in float32, the reference in float64; their activations differ by ~1e-5 of the
    tensor's spread after 100+ layers, and less the fewer layers lie behind. A pre-ReLU value
    closer to 0 than that can flip the ReLU's gate, and a max-pool window whose runner-up is
    that close to its maximum can send the gradient to the other element (seen: MGN-PTL's
    global pool over a 3x1 map, one channel's BatchNorm gradients 0.4% off). Where a channel
    has few elements per batch (the last stages at the small test inputs: N*H*W of 4 to 64;
    MGN's part pools) one flip moves that channel's gradients by percents (still ~2% at 2048).
    Such batches are redrawn (train_forward).

    The margin grows with depth, counted in ReLUs already passed in this forward:
    MARGIN * min(1, depth / FULL_DEPTH). With the full margin everywhere, ResNet-50's stem
    max-pool alone (1024 windows of 9 like-sized values per channel at 128x64, batch 2) had ~5
    near-ties per draw, and its batches were redrawn 28-34 times of the 40 allowed. With this
    margin, a full run (PTL_MODEL_ORACLE=all) redrew most batches 0-4 times; the most was 27,
    a ptl-densenet-bc-100 batch.

    A context manager: inside it, torch.nn.functional's relu, max_pool2d and
    adaptive_max_pool2d count before they compute. nn.ReLU, nn.MaxPool2d and
    nn.AdaptiveMaxPool2d call these at run time, so modules and functional calls are both seen."""

    MARGIN = 3e-5   # times the tensor's standard deviation, from FULL_DEPTH ReLUs on
    FULL_DEPTH = 30
    MAX_PER = 4096  # elements per channel (N*H*W, of the pool's output) up to which a flip matters

    def __init__(self):
        self.near = 0
        self.depth = 0
        self.saved = {}

    def margin(self, x):
        return self.MARGIN * min(1.0, max(self.depth, 1) / self.FULL_DEPTH) * x.std()

    def __enter__(self):
        self.saved = {n: getattr(F, n) for n in ("relu", "max_pool2d", "adaptive_max_pool2d")}
        relu, max_pool, adaptive_max_pool = (self.saved[n] for n in
                                             ("relu", "max_pool2d", "adaptive_max_pool2d"))

        def counting_relu(x, *args, **kwargs):
            self.count_relu(x.detach())  # before an in-place ReLU overwrites its input
            return relu(x, *args, **kwargs)

        def counting_max_pool(x, kernel_size, stride=None, padding=0, dilation=1,
                              *args, **kwargs):
            self.count_pool(x.detach(), kernel_size, stride or kernel_size, padding, dilation)
            return max_pool(x, kernel_size, stride, padding, dilation, *args, **kwargs)

        def counting_adaptive_max_pool(x, output_size, *args, **kwargs):
            h, w = x.shape[-2:]
            oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
            oh, ow = oh or h, ow or w
            if h % oh or w % ow:
                raise NotImplementedError(f"KinkGuard: adaptive max-pool {h}x{w} -> {oh}x{ow} has "
                                          "overlapping windows")
            self.count_pool(x.detach(), (h // oh, w // ow), (h // oh, w // ow), 0, 1)
            return adaptive_max_pool(x, output_size, *args, **kwargs)

        F.relu, F.max_pool2d = counting_relu, counting_max_pool
        F.adaptive_max_pool2d = counting_adaptive_max_pool
        return self

    def __exit__(self, *exc):
        for n, fn in self.saved.items():
            setattr(F, n, fn)
        return False

    def count_relu(self, x):
        self.depth += 1
        per = x.numel() // x.shape[1] if x.dim() >= 2 else x.numel()
        if per <= self.MAX_PER:
            self.near += int((x.abs() < self.margin(x)).sum())

    def count_pool(self, x, kernel, stride, padding, dilation):
        pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
        (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(padding)
        if pair(dilation) != (1, 1):
            raise NotImplementedError("KinkGuard: dilated max-pool")
        if kh * kw < 2:
            return
        xp = F.pad(x, (pw, pw, ph, ph), value=float("-inf"))
        win = xp.unfold(2, kh, sh).unfold(3, kw, sw)  # (N, C, OH, OW, kh, kw)
        if win.shape[0] * win.shape[2] * win.shape[3] > self.MAX_PER:
            return
        top = win.flatten(-2).topk(2, dim=-1).values
        first, second = top[..., 0], top[..., 1]
        # two exact zeros (a ReLU's output) are a tie both sides see alike, with no gradient
        tie = (first - second < self.margin(x)) & ~((first == 0) & (second == 0))
        self.near += int(tie.sum())


def run_state(model):
    """What a training forward changes besides autograd: buffers and the cells' states."""
    buffers = [b.detach().clone() for b in model.buffers()]
    cells = [(c, None if c.c is None else c.c.clone(),
              None if c.x_prev is None else c.x_prev.clone())
             for _, c in (model.cells() if has_cells(model) else [])]
    return buffers, cells


def restore_run_state(model, saved):
    buffers, cells = saved
    with torch.no_grad():
        for b, v in zip(model.buffers(), buffers):
            b.copy_(v)
    for c, cc, xp in cells:
        c.c, c.x_prev = cc, xp


def train_forward(model, shape, gen, tries=40):
    """Draws a float32 batch and runs the training forward on it (float64), redrawing (and
    undoing the forward's effects) while a ReLU input or a max-pool window sits at a kink
    (KinkGuard); after `tries` the last draw is kept, with a warning. Returns (x, outputs)."""
    for attempt in range(tries):
        x = torch.randn(shape, generator=gen, dtype=torch.float32)
        saved = run_state(model)
        with KinkGuard() as guard:
            result = model(x.double())
        if guard.near == 0 or attempt + 1 == tries:
            if guard.near:
                print(f"fixtures: warning: every draw has inputs at a kink; keeping one "
                      f"with {guard.near}", file=sys.stderr)
            elif attempt:
                print(f"fixtures: batch redrawn {attempt} times (inputs at a kink)",
                      file=sys.stderr)
            return x, outputs_of(model, result)
        del result
        restore_run_state(model, saved)


def f32(t):
    return t.detach().to(torch.float32).cpu().numpy()


def write_weights(path, sd):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w", track_order=False) as f:
        for name, v in sd.items():
            if v.dtype == torch.int64:
                f.create_dataset(name, data=np.int64(v.item()) if v.dim() == 0 else v.numpy())
            else:
                f.create_dataset(name, data=f32(v))
    os.replace(tmp, path)


def fixtures(out, arch, in_shape, batch, classes, seed):
    torch.manual_seed(seed)
    model = build(arch, classes, in_shape)
    randomise_batchnorm(model, torch.Generator().manual_seed(seed + 2))
    sd = model.state_dict()
    weights_path = re.sub(r"\.h5$", "", out) + ".weights.h5"
    write_weights(weights_path, sd)

    gen = torch.Generator().manual_seed(seed + 1)
    states = initial_states(model, batch, gen)
    # The same network in float32: PyTorch's own float32 error on every tensor is stored with
    # it (attribute f32_err), so the harness can tell float32 rounding from a bug where a value
    # is ~0 by cancellation (e.g. the BN bias gradient of a channel that a fully active ReLU
    # passes to a 1x1 conv followed by train-mode BN: exactly 0 in exact arithmetic).
    model32 = copy.deepcopy(model).float().train()
    model = model.double()
    model.train()
    params = collections.OrderedDict(model.named_parameters())
    params32 = collections.OrderedDict(model32.named_parameters())

    def put(g, name, t64, t32, shape=None):
        v = f32(t64)
        ds = g.create_dataset(name, data=v if shape is None else v.reshape(shape))
        ds.attrs["f32_err"] = float((t32.detach().double() - t64.detach()).abs().max())

    tmp = out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["arch"] = np.bytes_(arch.encode())
        f.attrs["classes"] = np.int32(classes)
        f.attrs["batch"] = np.int32(batch)
        f.attrs["input"] = np.array(in_shape, dtype=np.int32)
        f.attrs["batches"] = np.int32(3)
        f.attrs["weights"] = np.bytes_(os.path.basename(weights_path).encode())
        f.attrs["torch"] = np.bytes_(str(torch.__version__).encode())
        # ptl's cfg.eval_state_global for the eval forward (see build())
        f.attrs["eval_state_global"] = np.int32(1 if has_cells(model) else 0)
        names = list(sd.keys())
        g = f.create_group("entries")
        g.create_dataset("names", data=np.array([n.encode() for n in names], dtype="S128"))
        g.create_dataset("ndims", data=np.array([sd[n].dim() for n in names], dtype=np.int32))
        shapes = np.zeros((len(names), 4), dtype=np.int32)
        for i, n in enumerate(names):
            shapes[i, :sd[n].dim()] = list(sd[n].shape)
        g.create_dataset("shapes", data=shapes)

        if states:
            g = f.create_group("state")
            for name, v in states.items():
                g.create_dataset(name, data=f32(v))

        output_names = None
        for b in range(1, 4):
            model.zero_grad(set_to_none=False)
            model32.zero_grad(set_to_none=False)
            x, outs = train_forward(model, (batch,) + tuple(in_shape), gen)
            outs32 = dict(outputs_of(model32, model32(x)))
            output_names = [n for n, _ in outs]
            g = f.create_group(f"batch{b}")
            g.create_dataset("input", data=x.numpy())
            loss = loss32 = 0
            for name, y in outs:
                dy = torch.randn(y.shape, generator=gen, dtype=torch.float32)
                g.create_dataset(f"dy/{name}", data=dy.numpy().reshape(batch, -1))
                put(g, f"out/{name}", y, outs32[name], (batch, -1))
                loss = loss + (y * dy.double()).sum()
                loss32 = loss32 + (outs32[name] * dy).sum()
            loss.backward()
            loss32.backward()
            for name, p in params.items():
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                p32 = params32[name]
                grad32 = p32.grad if p32.grad is not None else torch.zeros_like(p32)
                put(g, f"grad/{name}", grad, grad32)
        f.attrs["outputs"] = np.bytes_(",".join(output_names).encode())

        g = f.create_group("running")
        buffers32 = dict(model32.named_buffers())
        for name, v in model.named_buffers():
            put(g, name, v, buffers32[name])

        model.eval()
        model32.eval()
        x = torch.randn((batch,) + tuple(in_shape), generator=gen, dtype=torch.float32)
        with torch.no_grad():
            outs = outputs_of(model, model(x.double()))
            outs32 = dict(outputs_of(model32, model32(x)))
        g = f.create_group("eval")
        g.create_dataset("input", data=x.numpy())
        for name, y in outs:
            put(g, f"out/{name}", y, outs32[name], (batch, -1))
    os.replace(tmp, out)
    print(f"fixtures: {arch} {batch}x{'x'.join(map(str, in_shape))} -> {out}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", metavar="OUT.json")
    ap.add_argument("--archs", help="names separated by spaces or commas (default: ptl's registry)")
    ap.add_argument("--fixtures", metavar="OUT.h5")
    ap.add_argument("--arch")
    ap.add_argument("--input", default=None, help="CxHxW (default per architecture)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fixtures-dir", metavar="DIR",
                    help="with --list: write DIR/<arch>.h5 (+ .weights.h5) for each entry, then "
                         "an empty DIR/<arch>.done, in order (a consumer can test each as soon "
                         "as it is written)")
    ap.add_argument("--list", help='"arch:CxHxW:batch ..." for --fixtures-dir')
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("PTL_ORACLE_THREADS", "1")))
    if not args.counts and not args.fixtures and not args.fixtures_dir:
        ap.error("give --counts OUT.json, --fixtures OUT.h5 --arch A, or --fixtures-dir DIR "
                 "--list SPECS")
    if args.counts:
        archs = re.split(r"[\s,]+", args.archs.strip()) if args.archs else registry_archs()
        counts(args.counts, archs, args.classes)
    if args.fixtures:
        if not args.arch:
            ap.error("--fixtures needs --arch")
        shape = default_input(args.arch)
        if args.input:
            shape = tuple(int(v) for v in args.input.lower().split("x"))
            if len(shape) != 3 or min(shape) < 1:
                ap.error(f"--input {args.input}: want CxHxW")
        if args.batch < 1 or args.classes < 1:
            ap.error("--batch and --classes must be positive")
        fixtures(args.fixtures, args.arch, shape, args.batch, args.classes, args.seed)
    if args.fixtures_dir:
        specs = (args.list or "").split()
        if not specs:
            ap.error("--fixtures-dir needs --list")
        for spec in specs:
            try:
                arch, shape, batch = spec.split(":")
                shape = tuple(int(v) for v in shape.lower().split("x"))
                batch = int(batch)
                assert len(shape) == 3 and min(shape) >= 1 and batch >= 1
            except (ValueError, AssertionError):
                ap.error(f"--list entry {spec!r}: want arch:CxHxW:batch")
            out = os.path.join(args.fixtures_dir, arch + ".h5")
            fixtures(out, arch, shape, batch, args.classes, args.seed)
            open(os.path.join(args.fixtures_dir, arch + ".done"), "w").close()


if __name__ == "__main__":
    main()
