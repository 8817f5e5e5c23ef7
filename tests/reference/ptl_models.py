"""PyTorch references of ptl's PTL networks (docs/models.md, docs/method.md), for the model oracle.

Written from docs/method.md and the module structure of the authors' MGN_PTL release; nothing
here is imported from the release.

API
---
build(arch, classes, in_shape, eval_state="reset", history=1) -> nn.Module
    arch: "ptl-<backbone>", "ptlv2-<backbone>" (backbone: resnet18, resnet34, resnet50,
    resnet101, resnet18-small, resnet18-narrow, densenet121, densenet161, densenet169, densenet-bc-100), "mgn",
    "mgn-ptl". in_shape = (C, H, W). eval_state "reset" (cells start every eval forward from a
    fresh Normal(0, 0.001^2) draw) or "global" (from the training state averaged over slots);
    history = the v2 cells' depth M (ptl's cell_history).
    The module's state_dict has exactly ptl's entry names, order and shapes (entries ptl marks
    `used = 0`, e.g. MGN's backbone.layer4, are there too and unused, as in the release).

model(x) -> dict {output name: tensor (N, dim)} in ptl's output order:
    ptl-*/ptlv2-*: "features" (N, 256), "logits" (N, classes)
    mgn, mgn-ptl:  "features" (N, 2048), "logits.0" .. "logits.7" (the release's order l_p1, l_p2,
                   l_p3, l0_p2, l1_p2, l0_p3, l1_p3, l2_p3), "triplet.0" .. "triplet.2" (fg_p1,
                   fg_p2, fg_p3)
model.output_names -> that list of names.

Latent states (ptl_model_state order = the cells in forward order, bconv1, bconv2, ...):
model.cells() -> [(cell name, BConvCell)], e.g. ("ptl.bconv1", cell)
model.state_names() -> ["ptl.bconv1.c", ("ptl.bconv1.x_prev" for v2 cells), "ptl.bconv2.c", ...]
model.get_states() -> {name: tensor or None}: "<cell>.c" (slots, C_out, H', W'),
    "<cell>.x_prev" (slots, M * C_in, H, W), most recent input first.
model.set_states({name: tensor}) sets initial states (copies; forwards use them in the input's
    dtype, so a .double() model works); a name left out keeps its state. Set them all before the first training forward to reproduce a ptl run exactly
    (ptl draws its initial states from its own RNG; the C test writes the same values through
    ptl_model_state_data()).
model.reset_states() forgets every state (ptl_model_reset_state): the next training forward
    draws Normal(0, 0.001^2) rows with torch's RNG.

Cell semantics (same as ptl's cell.c): the state is kept per batch slot and detached between
batches; a training batch smaller than the state uses its first rows, a larger one grows it with
rows equal to the mean over the existing slots; after a training forward the state holds exactly
that batch's rows. v2 gates see concat(X_b, X_{b-1}, ..., X_{b-M}). Eval forwards never change
the training state.
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import Bottleneck

FEATURE_DIM = 256
MIN_CELL_C = 8


class BConvCell(nn.Module):
    """BConv-Cell v1 (history 0) / v2 (history M): gates = W * concat(X_b, X_{b-1..b-M})."""

    def __init__(self, c_in, c_out, kernel_size=3, stride=1, padding=1, version=1, history=1):
        super().__init__()
        self.c_in, self.c_out, self.k, self.stride, self.padding = c_in, c_out, kernel_size, stride, padding
        self.m = history if version == 2 else 0
        self.gates = nn.Conv2d(c_in * (1 + self.m), 4 * c_out, kernel_size, stride=stride,
                               padding=padding, bias=False)
        self.eval_state = "reset"
        self.c = None
        self.x_prev = None

    def out_size(self, h, w):
        f = lambda n: (n + 2 * self.padding - self.k) // self.stride + 1
        return f(h), f(w)

    @staticmethod
    def _rows(s, n):
        if s.shape[0] >= n:
            return s[:n]
        mean = s.mean(0, keepdim=True)
        return torch.cat([s, mean.expand(n - s.shape[0], *s.shape[1:])], 0)

    def forward(self, x):
        n, _, h, w = x.shape
        ho, wo = self.out_size(h, w)
        c_shape = (n, self.c_out, ho, wo)
        x_shape = (n, self.m * self.c_in, h, w)
        if self.training:
            if self.c is None:
                self.c = torch.randn(c_shape, dtype=x.dtype) * 0.001
            if self.m and self.x_prev is None:
                self.x_prev = torch.randn(x_shape, dtype=x.dtype) * 0.001
            c_prev = self._rows(self.c, n)
            x_prev = self._rows(self.x_prev, n) if self.m else None
        elif self.eval_state == "global":
            if self.c is None:
                raise RuntimeError("eval_state global needs a training state")
            c_prev = self.c.mean(0, keepdim=True).expand(c_shape)
            x_prev = self.x_prev.mean(0, keepdim=True).expand(x_shape) if self.m else None
        else:
            c_prev = torch.randn(c_shape, dtype=x.dtype) * 0.001
            x_prev = torch.randn(x_shape, dtype=x.dtype) * 0.001 if self.m else None
        # states are constants (detached) in the input's precision (float64 oracles)
        c_prev = c_prev.detach().to(x.dtype)
        x_prev = x_prev.detach().to(x.dtype) if self.m else None
        gate_in = torch.cat([x, x_prev], 1) if self.m else x
        i, f, o, g = self.gates(gate_in).chunk(4, 1)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        y = torch.sigmoid(o) * torch.tanh(c)
        if self.training:
            self.c = c.detach().clone()
            if self.m:
                self.x_prev = torch.cat([x.detach(), x_prev[:, :(self.m - 1) * self.c_in]], 1).clone()
        return y


def fuse(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=True), nn.BatchNorm2d(c_out), nn.ReLU(True))


class _StateMixin:
    def cells(self):
        return [(n, mod) for n, mod in self.named_modules() if isinstance(mod, BConvCell)]

    def state_names(self):
        out = []
        for n, c in self.cells():
            out.append(n + ".c")
            if c.m:
                out.append(n + ".x_prev")
        return out

    def get_states(self):
        out = {}
        for n, c in self.cells():
            out[n + ".c"] = c.c
            if c.m:
                out[n + ".x_prev"] = c.x_prev
        return out

    def set_states(self, states):
        for n, c in self.cells():
            if n + ".c" in states:
                c.c = torch.as_tensor(states[n + ".c"]).detach().clone()
            if c.m and n + ".x_prev" in states:
                c.x_prev = torch.as_tensor(states[n + ".x_prev"]).detach().clone()

    def reset_states(self):
        for _, c in self.cells():
            c.c = None
            c.x_prev = None

    def set_eval_state(self, mode):
        for _, c in self.cells():
            c.eval_state = mode


# ---------------------------------------------------------------- backbones (torchvision names)
def small_resnet18(width=64, classes=1000):
    """torchvision's resnet18 with a 3x3 stride-1 stem and no max-pool ("resnet18-small"), and
    with layer planes width, 2*width, 4*width, 8*width ("resnet18-narrow": width 16)."""
    from torchvision.models.resnet import BasicBlock
    m = torchvision.models.resnet18(num_classes=classes)
    m.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    if width != 64:
        # rebuild every layer at the new width (assigning keeps the state_dict order)
        m.bn1 = nn.BatchNorm2d(width)
        m.inplanes = width
        for i in range(4):
            setattr(m, "layer%d" % (i + 1),
                    m._make_layer(BasicBlock, width << i, 2, stride=1 if i == 0 else 2))
        m.fc = nn.Linear(8 * width, classes)
    for mod in m.modules():  # torchvision's init of the convs
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
    return m


SMALL_RESNET_WIDTH = {"resnet18-small": 64, "resnet18-narrow": 16}


class _ResNetBackbone(nn.Module):
    """torchvision ResNet without avgpool/fc; stages = [stem, layer1, ..., layer4]."""

    def __init__(self, name):
        super().__init__()
        small = name in SMALL_RESNET_WIDTH
        tv = small_resnet18(SMALL_RESNET_WIDTH[name]) if small else getattr(torchvision.models, name)()
        self.small = small
        self.mods = [("conv1", tv.conv1), ("bn1", tv.bn1), ("relu", tv.relu)]
        if not small:
            self.mods.append(("maxpool", tv.maxpool))
        self.mods += [("layer%d" % i, getattr(tv, "layer%d" % i)) for i in range(1, 5)]

    def register(self, owner):
        for n, mod in self.mods:
            owner.add_module(n, mod)

    @staticmethod
    def stages(owner, x):
        x = owner.relu(owner.bn1(owner.conv1(x)))
        if hasattr(owner, "maxpool"):
            x = owner.maxpool(x)
        st = [x]
        for i in range(1, 5):
            x = getattr(owner, "layer%d" % i)(x)
            st.append(x)
        return st, x


class _DenseNetBackbone(nn.Module):
    """torchvision DenseNet `features`; stages = [stem, transition outputs], last = relu(norm5)."""

    def __init__(self, name):
        super().__init__()
        if name == "densenet-bc-100":
            tv = torchvision.models.DenseNet(growth_rate=12, block_config=(16, 16, 16),
                                              num_init_features=24, bn_size=4)
            tv.features.conv0 = nn.Conv2d(3, 24, 3, 1, 1, bias=False)
            del tv.features.norm0, tv.features.relu0, tv.features.pool0
        else:
            tv = getattr(torchvision.models, name)()
        self.mods = [("features", tv.features)]

    def register(self, owner):
        for n, mod in self.mods:
            owner.add_module(n, mod)

    @staticmethod
    def stages(owner, x):
        st = []
        names = list(owner.features._modules.keys())
        for n in names:
            x = owner.features._modules[n](x)
            if n in ("pool0",) or n.startswith("transition") or (n == "conv0" and "pool0" not in names):
                st.append(x)
        return st, F.relu(x)


def _cell_step(h, w, th, tw):
    """(kernel, stride, padding) of the cell taking (h, w) to (th, tw), in ptl's order."""
    for k, s, p in ((3, 1, 1), (3, 2, 1), (3, 2, 0), (2, 2, 0)):
        f = lambda n: (n + 2 * p - k) // s + 1
        if f(h) == th and f(w) == tw:
            return k, s, p
    raise ValueError("no stride-1/2 cell takes %dx%d to %dx%d" % (h, w, th, tw))


class PTLNet(nn.Module, _StateMixin):
    """ptl-<backbone> / ptlv2-<backbone> (same plan as src/models/ptl.c)."""

    output_names = ["features", "logits"]

    def __init__(self, arch, classes, in_shape, history=1):
        super().__init__()
        version = 2 if arch.startswith("ptlv2-") else 1
        bname = arch.split("-", 1)[1]
        bb = _ResNetBackbone(bname) if bname.startswith("resnet") else _DenseNetBackbone(bname)
        bb.register(self)
        self._stages = type(bb).stages
        with torch.no_grad():
            was = self.training
            self.eval()
            st, last = self._stages(self, torch.zeros(1, *in_shape))
            self.train(was)
        shapes = [tuple(t.shape[1:]) for t in st]
        last_shape = tuple(last.shape[1:])
        n_fuse = len(st) - 1 if st[-1] is last else len(st)
        self.n_fuse = n_fuse
        self.ptl = nn.Module()
        self._plan = []  # ("cell", name) / ("fuse", name, stage index)
        k_cell = [0]

        def add_cell(c_in, c_out, k, s, p):
            k_cell[0] += 1
            name = "bconv%d" % k_cell[0]
            self.ptl.add_module(name, BConvCell(c_in, max(c_out, MIN_CELL_C), k, s, p, version, history))
            self._plan.append(("cell", name))
            return max(c_out, MIN_CELL_C)

        # stem cells
        c0, h0, w0 = shapes[0]
        h, w = in_shape[1], in_shape[2]
        hs = []
        while h > h0 or w > w0:
            hs.append((h, w))
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        n = max(len(hs), 1)
        ch, cw, cc = in_shape[1], in_shape[2], in_shape[0]
        for j in range(n):
            th, tw = (h0, w0) if j == n - 1 else ((ch - 1) // 2 + 1, (cw - 1) // 2 + 1)
            k, s, p = _cell_step(ch, cw, th, tw)
            cc = add_cell(cc, c0 >> (n - j), k, s, p)
            ch, cw = th, tw
        for k in range(n_fuse):
            sc, sh, sw = shapes[k]
            f_c = max(sc // 2, c0)
            name = "fuse%d" % (k + 1)
            self.ptl.add_module(name, fuse(sc + cc, f_c))
            self._plan.append(("fuse", name, k))
            tc, th, tw = shapes[k + 1] if k + 1 < n_fuse else last_shape
            kk, s, p = _cell_step(sh, sw, th, tw)
            c_out = f_c // 4 if k + 1 >= n_fuse else f_c * s
            cc = add_cell(f_c, c_out, kk, s, p)
        self.head = nn.Module()
        self.head.reduction = fuse(cc + last_shape[0], FEATURE_DIM)
        self.head.classifier = nn.Sequential(nn.Linear(FEATURE_DIM, FEATURE_DIM), nn.ReLU(True),
                                             nn.Linear(FEATURE_DIM, FEATURE_DIM), nn.ReLU(True),
                                             nn.Linear(FEATURE_DIM, classes))

    def forward(self, x):
        st, last = self._stages(self, x)
        c = x
        for step in self._plan:
            if step[0] == "cell":
                c = getattr(self.ptl, step[1])(c)
            else:
                c = getattr(self.ptl, step[1])(torch.cat([st[step[2]], c], 1))
        y = self.head.reduction(torch.cat([c, last], 1))
        f = F.adaptive_avg_pool2d(y, 1).flatten(1)
        return {"features": f, "logits": self.head.classifier(f)}


# ---------------------------------------------------------------- MGN / MGN-PTL
class PTLModule(nn.Module):
    """The release's PTL module: bconv1..8, then fuse1..4 (registration order)."""

    def __init__(self):
        super().__init__()
        self.bconv1 = BConvCell(3, 16, 3, 2, 1)
        self.bconv2 = BConvCell(16, 32, 3, 2, 1)
        self.bconv3 = BConvCell(64, 64, 3, 1, 1)
        self.bconv4 = BConvCell(128, 256, 3, 2, 1)
        self.bconv5 = BConvCell(256, 512, 3, 2, 1)
        self.bconv6 = BConvCell(512, 128, 3, 2, 1)
        self.bconv7 = BConvCell(512, 128, 3, 1, 1)
        self.bconv8 = BConvCell(512, 128, 3, 1, 1)
        self.fuse1 = fuse(64 + 32, 64)
        self.fuse2 = fuse(256 + 64, 128)
        self.fuse3 = fuse(512 + 256, 256)
        self.fuse4 = fuse(1024 + 512, 512)


class MGN(nn.Module, _StateMixin):
    """mgn / mgn-ptl: the release's MGN_PTL with max-pools generalised to adaptive ones."""

    output_names = (["features"] + ["logits.%d" % i for i in range(8)] +
                    ["triplet.%d" % i for i in range(3)])

    def __init__(self, classes, with_ptl):
        super().__init__()
        if with_ptl:
            self.ptl = PTLModule()
        self.with_ptl = with_ptl
        self.backbone = torchvision.models.resnet50()
        res_conv4 = nn.Sequential(*self.backbone.layer3[1:])
        res_p_conv5 = nn.Sequential(
            Bottleneck(1024, 512, downsample=nn.Sequential(nn.Conv2d(1024, 2048, 1, bias=False),
                                                           nn.BatchNorm2d(2048))),
            Bottleneck(2048, 512), Bottleneck(2048, 512))
        res_p_conv5.load_state_dict(self.backbone.layer4.state_dict())
        self.p1 = nn.Sequential(copy.deepcopy(res_conv4), copy.deepcopy(self.backbone.layer4))
        self.p2 = nn.Sequential(copy.deepcopy(res_conv4), copy.deepcopy(res_p_conv5))
        self.p3 = nn.Sequential(copy.deepcopy(res_conv4), copy.deepcopy(res_p_conv5))
        self.reduction = nn.Sequential(nn.Conv2d(2048 + (128 if with_ptl else 0), FEATURE_DIM, 1, bias=True),
                                       nn.BatchNorm2d(FEATURE_DIM), nn.ReLU())
        for name in ["fc_id_2048_0", "fc_id_2048_1", "fc_id_2048_2", "fc_id_256_1_0",
                     "fc_id_256_1_1", "fc_id_256_2_0", "fc_id_256_2_1", "fc_id_256_2_2"]:
            setattr(self, name, nn.Linear(FEATURE_DIM, classes))

    def forward(self, x):
        b, p = self.backbone, getattr(self, "ptl", None)
        x1 = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        if p is not None:
            c3 = p.bconv3(p.fuse1(torch.cat([p.bconv2(p.bconv1(x)), x1], 1)))
        x2 = b.layer1(x1)
        if p is not None:
            c4 = p.bconv4(p.fuse2(torch.cat([x2, c3], 1)))
        x3 = b.layer2(x2)
        if p is not None:
            c5 = p.bconv5(p.fuse3(torch.cat([x3, c4], 1)))
        x4 = b.layer3[0](x3)
        p1, p2, p3 = self.p1(x4), self.p2(x4), self.p3(x4)
        gmax = lambda t: F.adaptive_max_pool2d(t, 1)
        zg = [gmax(p1), gmax(p2), gmax(p3)]
        zp2, zp3 = F.adaptive_max_pool2d(p2, (2, 1)), F.adaptive_max_pool2d(p3, (3, 1))
        parts = [zp2[:, :, 0:1], zp2[:, :, 1:2], zp3[:, :, 0:1], zp3[:, :, 1:2], zp3[:, :, 2:3]]
        if p is not None:
            z3 = p.fuse4(torch.cat([x4, c5], 1))
            c6, c7, c8 = p.bconv6(z3), p.bconv7(z3), p.bconv8(z3)
            zgc = [gmax(c6), gmax(c7), gmax(c8)]
            zp2c, zp3c = F.adaptive_max_pool2d(c7, (2, 1)), F.adaptive_max_pool2d(c8, (3, 1))
            partsc = [zp2c[:, :, 0:1], zp2c[:, :, 1:2], zp3c[:, :, 0:1], zp3c[:, :, 1:2], zp3c[:, :, 2:3]]
            ins = [torch.cat([a, c], 1) for a, c in zip(zg + parts, zgc + partsc)]
        else:
            ins = zg + parts
        f = [self.reduction(t).flatten(1) for t in ins]
        fcs = [self.fc_id_2048_0, self.fc_id_2048_1, self.fc_id_2048_2, self.fc_id_256_1_0,
               self.fc_id_256_1_1, self.fc_id_256_2_0, self.fc_id_256_2_1, self.fc_id_256_2_2]
        out = {"features": torch.cat(f, 1)}
        for i, (fc, t) in enumerate(zip(fcs, f)):
            out["logits.%d" % i] = fc(t)
        for i in range(3):
            out["triplet.%d" % i] = f[i]
        return out


def arch_names():
    bbs = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet18-small", "resnet18-narrow",
           "densenet121", "densenet161", "densenet169", "densenet-bc-100"]
    return ["ptl-" + b for b in bbs] + ["ptlv2-" + b for b in bbs] + ["mgn", "mgn-ptl"]


def build(arch, classes, in_shape, eval_state="reset", history=1):
    if arch in ("mgn", "mgn-ptl"):
        model = MGN(classes, arch == "mgn-ptl")
    elif arch.startswith("ptl-") or arch.startswith("ptlv2-"):
        model = PTLNet(arch, classes, tuple(in_shape), history)
    else:
        raise ValueError("unknown architecture %r" % arch)
    model.set_eval_state(eval_state)
    return model


if __name__ == "__main__":
    import sys
    for a in sys.argv[1:] or arch_names():
        shape = (3, 96, 32) if a.startswith("mgn") else (3, 32, 32) if ("small" in a or "narrow" in a or "bc-100" in a) else (3, 64, 64)
        m = build(a, 10, shape)
        n = sum(t.numel() for t in m.parameters())
        print("%-24s %12d parameters, %d entries, states %s" % (a, n, len(m.state_dict()), m.state_names()[:3]))
