#!/usr/bin/env python3
"""PyTorch reference fixtures for every op in include/ptl/ops.h (read by tests/unit/test_oracle.c).

    make_op_fixtures.py --out FILE.h5

Layout: one group per op, one subgroup per case: /<op>/<case>. A case's attributes are the op's
parameters (int32 / float32 scalars); its datasets are the float32 inputs, parameters, upstream
gradient `dy`, and the expected outputs and gradients (int32 for labels and indices). Every
input is drawn as float32 and stored as such; the reference is computed by torch in float64 from
exactly those float32 values (float parameters too, e.g. eps = float64(float32(1e-5))) and
stored rounded to float32, so a comparison measures ptl's error only.

Inputs avoid the points where a derivative is undefined: no ReLU input near 0, distinct values
under every max-pool window, and triplet batches whose mining and hinges are far from ties.
Large element-wise cases repeat a short random block so the file stays small (< 3 MB).

Needs torch and h5py; deterministic (torch.manual_seed), so regenerating gives the same numbers.
"""
import argparse
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

# Element-wise loops shorter than this stay serial in ptl (PTL_OMP_MIN_ELEMENTS in check.h):
# the "big" cases sit above it so the OpenMP path is compared too.
OMP_MIN = 32768
BIG = OMP_MIN + 1001  # odd: vector-loop tails too

# The ops test_oracle.c requires; each must get at least one case.
OPS = [
    "gemm", "conv2d", "linear",
    "batchnorm2d_train", "batchnorm1d_train", "batchnorm2d_eval", "batchnorm1d_eval",
    "relu", "sigmoid", "tanh", "maxpool2d", "avgpool2d",
    "adaptive_avgpool2d", "adaptive_maxpool2d", "concat", "split", "add", "mul",
    "cross_entropy", "triplet_hard",
]


def f32(x):
    """The float32 value ptl will see, as a Python float (for float parameters)."""
    return float(np.float32(x))


def randn(*shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape, dtype=torch.float32) * scale + shift).float()


def tiled(n, scale=1.0, avoid_zero=False):
    """n float32 values: a random block of 997 repeated. For the big element-wise cases, whose
    job is the threaded path over every index: repeats compress to almost nothing, and the
    prime period never lines up with a thread's chunk."""
    block = randn(997, scale=scale)
    if avoid_zero:  # |x| >= 0.01: away from ReLU's kink
        block = (torch.sign(block) * (block.abs() + 0.01)).float()
    return block.repeat((n + 996) // 997)[:n].contiguous()


def distinct(*shape, scale=0.05):
    """A random permutation of well-spaced values: no ties under any max-pool window."""
    n = int(np.prod(shape))
    perm = torch.randperm(n).double()
    return ((perm - n / 2) * scale).float().reshape(*shape)


def leaf(x32):
    """float64 copy of a float32 tensor that collects a gradient."""
    return x32.double().clone().requires_grad_(True)


class Writer:
    def __init__(self, path):
        # v110 format (compact groups, single-chunk index without a B-tree): a third of the
        # file is metadata otherwise. Readable by HDF5 >= 1.10, which ptl requires anyway.
        # No object timestamps: the same generator and torch give a byte-identical file.
        fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
        fcpl.set_obj_track_times(False)
        fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
        fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
        self.f = h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl,
                                           fapl=fapl))
        self.gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        self.gcpl.set_obj_track_times(False)
        self.f.attrs["generator"] = "tests/reference/make_op_fixtures.py"
        self.f.attrs["torch_version"] = str(torch.__version__)
        self.count = {op: 0 for op in OPS}

    def group(self, parent, name):
        if name not in parent:
            h5py.h5g.create(parent.id, name.encode(), gcpl=self.gcpl)
        return parent[name]

    def case(self, op, name, attrs, data):
        assert op in self.count, op
        g = self.group(self.group(self.f, op), f"{self.count[op]:02d}_{name}")
        self.count[op] += 1
        for k, v in attrs.items():
            if isinstance(v, (bool, int, np.integer)):
                g.attrs.create(k, int(v), dtype=np.int32)
            else:
                g.attrs.create(k, f32(v), dtype=np.float32)
        for k, v in data.items():
            if isinstance(v, torch.Tensor):
                v = v.detach()
                v = v.to(torch.int32) if not v.is_floating_point() else v.float()
                v = v.numpy()
            v = np.ascontiguousarray(v)
            v = v.astype(np.int32) if v.dtype.kind in "iu" else v.astype(np.float32)
            kw = {}
            if v.size >= 1024:  # one chunk, shuffle + gzip; small ones stay contiguous
                kw = dict(chunks=v.shape, compression="gzip", compression_opts=9, shuffle=True)
            g.create_dataset(k, data=v.reshape(v.shape or (1,)), **kw)

    def close(self):
        missing = [op for op, n in self.count.items() if n == 0]
        assert not missing, f"no case for {missing}"
        self.f.close()


def grads(*tensors):
    return [None if t.grad is None else t.grad for t in tensors]


# ---------------------------------------------------------------------------------------------


def gen_gemm(w):
    # (trans_a, trans_b, m, n, k, alpha, beta, pad): leading dimensions are the minimal ones
    # plus `pad` columns that ptl must neither read into the product nor write.
    for ta, tb, m, n, k, alpha, beta, pad in [
        (0, 0, 5, 7, 3, 1.0, 0.0, 0), (1, 0, 4, 6, 9, 0.5, 0.25, 0), (0, 1, 1, 1, 1, 2.0, 0.0, 0),
        (1, 1, 8, 3, 5, -1.5, 1.0, 2), (0, 0, 17, 33, 65, 1.0, 0.0, 0), (0, 1, 6, 2, 11, 1.0, -0.5, 3),
    ]:
        ar, ac = (k, m) if ta else (m, k)
        br, bc = (n, k) if tb else (k, n)
        lda, ldb, ldc = ac + pad, bc + pad, n + pad
        a, b, c = randn(ar, lda), randn(br, ldb), randn(m, ldc)
        a64, b64, c64 = a.double(), b.double(), c.double()
        opa = a64[:, :ac].t() if ta else a64[:, :ac]
        opb = b64[:, :bc].t() if tb else b64[:, :bc]
        out = c64.clone()
        out[:, :n] = f32(alpha) * (opa @ opb) + f32(beta) * c64[:, :n]
        w.case("gemm", f"{'T' if ta else 'N'}{'T' if tb else 'N'}_m{m}_n{n}_k{k}_pad{pad}",
               dict(trans_a=ta, trans_b=tb, m=m, n=n, k=k, alpha=alpha, beta=beta,
                    lda=lda, ldb=ldb, ldc=ldc),
               dict(a=a, b=b, c=c, out=out))


def gen_conv2d(w):
    # (n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, bias)
    for n, ci, h, wd, co, kh, kw, sh, sw, ph, pw, bias in [
        (2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1),    # the common 3x3 "same"
        (1, 3, 7, 5, 2, 3, 3, 2, 2, 1, 1, 0),    # batch 1, non-square, no bias
        (2, 4, 1, 1, 3, 1, 1, 1, 1, 0, 0, 1),    # 1x1 image, 1x1 kernel
        (1, 1, 1, 1, 2, 3, 3, 1, 1, 1, 1, 1),    # 1x1 image under a padded 3x3
        (1, 2, 9, 9, 3, 2, 2, 3, 3, 0, 0, 1),    # stride > kernel: skipped pixels get no grad
        (2, 2, 5, 6, 2, 3, 3, 1, 1, 2, 2, 1),    # padding > half the kernel
        (1, 3, 6, 7, 5, 5, 3, 2, 1, 2, 1, 0),    # non-square kernel, unequal strides
        (3, 1, 4, 4, 1, 4, 4, 1, 1, 0, 0, 1),    # kernel = image
        (2, 8, 12, 10, 16, 3, 3, 1, 1, 1, 1, 1),  # a GEMM with some depth
        (1, 3, 11, 11, 4, 7, 7, 2, 2, 3, 3, 0),  # ResNet-stem-like 7x7/2
        (5, 3, 5, 7, 6, 3, 2, 2, 1, 1, 0, 1),    # an odd batch of several images
    ]:
        x, wt, dy_shape = randn(n, ci, h, wd), randn(co, ci, kh, kw, scale=0.3), None
        b = randn(co) if bias else None
        xl, wl = leaf(x), leaf(wt)
        bl = leaf(b) if bias else None
        y = F.conv2d(xl, wl, bl, stride=(sh, sw), padding=(ph, pw))
        dy_shape = y.shape
        dy = randn(*dy_shape)
        y.backward(dy.double())
        data = dict(x=x, weight=wt, dy=dy, y=y, dx=xl.grad, dweight=wl.grad)
        if bias:
            data.update(bias=b, dbias=bl.grad)
        w.case("conv2d", f"n{n}_c{ci}_{h}x{wd}_o{co}_k{kh}x{kw}_s{sh}x{sw}_p{ph}x{pw}"
               + ("_bias" if bias else ""),
               dict(n=n, c_in=ci, h=h, w=wd, c_out=co, kh=kh, kw=kw, stride_h=sh, stride_w=sw,
                    pad_h=ph, pad_w=pw, has_bias=bias), data)


def gen_linear(w):
    for n, fi, fo, bias in [(4, 5, 3, 1), (1, 7, 2, 0), (16, 33, 10, 1), (3, 1, 1, 1),
                            (5, 64, 1, 0)]:
        x, wt = randn(n, fi), randn(fo, fi, scale=0.3)
        b = randn(fo) if bias else None
        xl, wl = leaf(x), leaf(wt)
        bl = leaf(b) if bias else None
        y = F.linear(xl, wl, bl)
        dy = randn(n, fo)
        y.backward(dy.double())
        data = dict(x=x, weight=wt, dy=dy, y=y, dx=xl.grad, dweight=wl.grad)
        if bias:
            data.update(bias=b, dbias=bl.grad)
        w.case("linear", f"n{n}_in{fi}_out{fo}" + ("_bias" if bias else ""),
               dict(n=n, in_features=fi, out_features=fo, has_bias=bias), data)


def gen_batchnorm(w):
    # (op suffix, shape, eps, momentum, affine); a per-channel offset makes the mean matter.
    cases = [
        ("2d", (4, 3, 5, 5), 1e-5, 0.1, 1),
        ("2d", (2, 5, 1, 1), 1e-5, 0.1, 1),   # 1x1 images: statistics over the batch only
        ("2d", (1, 3, 4, 6), 1e-3, 0.3, 1),   # batch 1: statistics over the image only
        ("2d", (3, 2, 3, 3), 1e-5, 0.1, 0),   # affine = False (gamma, beta NULL)
        ("2d", (8, 16, 7, 7), 1e-5, 0.01, 1),
        ("2d", (4, 2, 6, 6), 1e-5, 0.1, 1, 40.0),  # mean >> std: E[x^2] - E[x]^2 cancels
        ("2d", (4, 3, 20, 15), 1e-5, 0.1, 1),      # rows of 300: summed in float blocks
        ("2d", (2, 4, 16, 16), 1e-5, 0.1, 1, 40.0),  # ... with mean >> std
        ("1d", (8, 4), 1e-5, 0.1, 1),
        ("1d", (2, 3), 1e-5, 0.5, 1),         # the smallest batch that has a variance
        ("1d", (5, 6, 7), 1e-5, 0.1, 0),      # (N, C, L): hw = L
        ("1d", (64, 10), 1e-4, 0.1, 1),
    ]
    for kind, shape, eps, mom, affine, *big in cases:
        n, c = shape[0], shape[1]
        hw = int(np.prod(shape[2:])) if len(shape) > 2 else 1
        lo, hi = (big[0], big[0] + 3) if big else (-3, 3)
        offset = torch.linspace(lo, hi, c).reshape(1, c, *([1] * (len(shape) - 2)))
        x = (randn(*shape, scale=1.5) + offset.float()).float()
        gamma = randn(c, scale=0.5, shift=1.0) if affine else None
        beta = randn(c, scale=0.5) if affine else None
        rm0, rv0 = randn(c, scale=0.5), (torch.rand(c) + 0.5).float()
        attrs = dict(n=n, c=c, hw=hw, eps=eps, momentum=mom, affine=affine)
        name = "x".join(map(str, shape)) + ("" if affine else "_noaffine") + (
            f"_mean{big[0]:g}" if big else "")
        dy = randn(*shape)

        # train: batch statistics; running stats updated in place (unbiased variance)
        xl = leaf(x)
        gl, bl = (leaf(gamma), leaf(beta)) if affine else (None, None)
        rm, rv = rm0.double().clone(), rv0.double().clone()
        y = F.batch_norm(xl, rm, rv, gl, bl, training=True, momentum=f32(mom), eps=f32(eps))
        y.backward(dy.double())
        dims = [0] + list(range(2, len(shape)))
        x64 = x.double()
        save_mean = x64.mean(dim=dims)
        save_invstd = 1.0 / torch.sqrt(x64.var(dim=dims, unbiased=False) + f32(eps))
        data = dict(x=x, running_mean_in=rm0, running_var_in=rv0, dy=dy, y=y,
                    save_mean=save_mean, save_invstd=save_invstd, running_mean=rm,
                    running_var=rv, dx=xl.grad)
        if affine:
            data.update(gamma=gamma, beta=beta, dgamma=gl.grad, dbeta=bl.grad)
        w.case(f"batchnorm{kind}_train", name, attrs, data)

        # eval: running statistics, no update
        xl = leaf(x)
        gl, bl = (leaf(gamma), leaf(beta)) if affine else (None, None)
        y = F.batch_norm(xl, rm0.double(), rv0.double(), gl, bl, training=False,
                         momentum=f32(mom), eps=f32(eps))
        y.backward(dy.double())
        data = dict(x=x, running_mean=rm0, running_var=rv0, dy=dy, y=y, dx=xl.grad)
        if affine:
            data.update(gamma=gamma, beta=beta, dgamma=gl.grad, dbeta=bl.grad)
        w.case(f"batchnorm{kind}_eval", name, attrs, data)


def gen_activations(w):
    for op, fn in [("relu", torch.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh)]:
        for n in [1, 7, 1000, BIG]:
            if n == BIG:
                x, dy = tiled(n, 2.0, avoid_zero=(op == "relu")), tiled(n)
            else:
                x = randn(n, scale=2.0)
                if op == "relu":  # keep |x| >= 0.01: away from the kink
                    x = (torch.sign(x) * (x.abs() + 0.01)).float()
                else:
                    # Backward works from the float32 output: where sigmoid/tanh saturate,
                    # 1 - y^2 (y (1 - y)) is a small difference of O(1) numbers, so a one-element
                    # case far out would measure that rounding, not ptl. |x| <= 3 keeps it < 2e-5.
                    x = x.clamp(-3.0, 3.0)
                dy = randn(n)
            xl = leaf(x)
            y = fn(xl)
            y.backward(dy.double())
            w.case(op, f"n{n}", dict(n=n), dict(x=x, dy=dy, y=y, dx=xl.grad))


POOL_CASES = [
    # (n, c, h, w, kh, kw, sh, sw, ph, pw)
    (2, 3, 6, 6, 2, 2, 2, 2, 0, 0),
    (1, 2, 7, 5, 3, 3, 2, 2, 1, 1),   # overlapping windows, padding, non-square
    (2, 1, 5, 5, 3, 3, 1, 1, 1, 1),   # stride 1, every pixel in 9 windows
    (1, 3, 9, 8, 2, 3, 3, 3, 1, 1),   # stride > kernel, non-square kernel
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 0),   # 1x1
    (2, 2, 4, 6, 4, 6, 1, 1, 2, 3),   # kernel = image, padding = kernel / 2
    (3, 4, 8, 8, 3, 3, 2, 2, 0, 0),   # floor output: the last row/column unused
    (1, 2, 5, 5, 3, 3, 2, 2, 1, 1),   # all inputs negative (see gen_pools): padding is -inf
]


def pool_name(n, c, h, wd, kh, kw, sh, sw, ph, pw):
    return f"n{n}_c{c}_{h}x{wd}_k{kh}x{kw}_s{sh}x{sw}_p{ph}x{pw}"


def gen_pools(w):
    for n, c, h, wd, kh, kw, sh, sw, ph, pw in POOL_CASES:
        attrs = dict(n=n, c=c, h=h, w=wd, kh=kh, kw=kw, stride_h=sh, stride_w=sw, pad_h=ph,
                     pad_w=pw)
        name = pool_name(n, c, h, wd, kh, kw, sh, sw, ph, pw)
        x = distinct(n, c, h, wd)
        if (n, c, h, wd) == (1, 2, 5, 5):  # a zero-padded max would win every border window
            x = (x - x.max() - 0.5).float()
        xl = leaf(x)
        y, idx = F.max_pool2d(xl, (kh, kw), (sh, sw), (ph, pw), return_indices=True)
        dy = randn(*y.shape)
        y.backward(dy.double())
        w.case("maxpool2d", name, attrs, dict(x=x, dy=dy, y=y, argmax=idx, dx=xl.grad))
        for cip in (1, 0):
            x = randn(n, c, h, wd)
            xl = leaf(x)
            y = F.avg_pool2d(xl, (kh, kw), (sh, sw), (ph, pw), count_include_pad=bool(cip))
            y.backward(dy.double())
            w.case("avgpool2d", name + f"_cip{cip}", dict(attrs, count_include_pad=cip),
                   dict(x=x, dy=dy, y=y, dx=xl.grad))


def gen_adaptive(w):
    for n, c, h, wd, ho, wo in [
        (2, 3, 7, 7, 3, 3),    # bins that don't divide: overlapping windows
        (1, 2, 5, 9, 2, 4),
        (2, 3, 6, 6, 1, 1),    # global
        (1, 1, 1, 1, 1, 1),
        (1, 2, 4, 4, 4, 4),    # identity
        (1, 2, 3, 5, 5, 7),    # more bins than pixels
        (2, 2, 10, 7, 3, 2),
        (1, 4, 8, 8, 2, 2),    # divides evenly
        (4, 8, 7, 7, 1, 1),    # ResNet head: global over 7x7
    ]:
        attrs = dict(n=n, c=c, h=h, w=wd, h_out=ho, w_out=wo)
        name = f"n{n}_c{c}_{h}x{wd}_to_{ho}x{wo}"
        dy = randn(n, c, ho, wo)
        x = randn(n, c, h, wd)
        xl = leaf(x)
        y = F.adaptive_avg_pool2d(xl, (ho, wo))
        y.backward(dy.double())
        w.case("adaptive_avgpool2d", name, attrs, dict(x=x, dy=dy, y=y, dx=xl.grad))
        x = distinct(n, c, h, wd)
        xl = leaf(x)
        y = F.adaptive_max_pool2d(xl, (ho, wo))
        y.backward(dy.double())
        w.case("adaptive_maxpool2d", name, attrs, dict(x=x, dy=dy, y=y, dx=xl.grad))


def gen_concat_split(w):
    # (channels, n, hw, skip): skip = index whose gradient is NULL in ptl (-1: none). For concat
    # that d_in is not requested; for split that part received no gradient (counts as zero).
    for chans, n, hw, skip in [([3, 5], 2, 4, -1), ([1, 1, 1], 1, 1, -1),
                               ([2, 7, 3, 4], 3, 9, 1), ([6], 2, 5, -1), ([4, 2], 1, 49, 0)]:
        attrs = dict(count=len(chans), n=n, hw=hw, skip=skip)
        name = "c" + "-".join(map(str, chans)) + f"_n{n}_hw{hw}" + (f"_skip{skip}" if skip >= 0
                                                                    else "")
        xs = [randn(n, ci, hw) for ci in chans]
        xls = [leaf(x) for x in xs]
        y = torch.cat(xls, dim=1)
        dy = randn(*y.shape)
        y.backward(dy.double())
        data = dict(channels=np.array(chans, dtype=np.int32), dy=dy, y=y)
        for i, (x, xl) in enumerate(zip(xs, xls)):
            data[f"x{i}"] = x
            if i != skip:
                data[f"dx{i}"] = xl.grad
        w.case("concat", name, attrs, data)

        x = randn(n, sum(chans), hw)
        xl = leaf(x)
        ys = torch.split(xl, chans, dim=1)
        dys = [randn(*yy.shape) for yy in ys]
        total = sum((yy * d.double()).sum() for i, (yy, d) in enumerate(zip(ys, dys))
                    if i != skip)
        total.backward()
        data = dict(channels=np.array(chans, dtype=np.int32), x=x, dx=xl.grad)
        for i, (yy, d) in enumerate(zip(ys, dys)):
            data[f"y{i}"] = yy
            if i != skip:
                data[f"dy{i}"] = d
        w.case("split", name, attrs, data)


def gen_eltwise(w):
    for op in ("add", "mul"):
        for n in [1, 10, 1000, BIG]:
            if n == BIG:
                a, b, dy = tiled(n), tiled(n), tiled(n)
            else:
                a, b, dy = randn(n), randn(n), randn(n)
            al, bl = leaf(a), leaf(b)
            y = al + bl if op == "add" else al * bl
            y.backward(dy.double())
            w.case(op, f"n{n}", dict(n=n), dict(a=a, b=b, dy=dy, y=y, da=al.grad, db=bl.grad))


def gen_cross_entropy(w):
    for n, k, eps, scale in [(4, 5, 0.0, 2.0), (4, 5, 0.1, 2.0), (1, 10, 0.2, 2.0),
                             (16, 3, 0.0, 2.0), (7, 100, 0.05, 3.0), (2, 1, 0.0, 1.0),
                             (3, 4, 0.0, 40.0), (3, 4, 0.3, 40.0),  # large logits: stability
                             (257, 131, 0.1, 0.0)]:  # N*K > OMP_MIN: the threaded path
        logits = randn(n, k, scale=scale) if scale else tiled(n * k, 3.0).reshape(n, k)
        labels = torch.randint(0, k, (n,), dtype=torch.int64)
        dy = randn(1, shift=1.0)
        zl = leaf(logits)
        loss = F.cross_entropy(zl, labels, label_smoothing=f32(eps))
        loss.backward(dy.double()[0])
        probs = torch.softmax(logits.double(), dim=1)
        w.case("cross_entropy", f"n{n}_k{k}_ls{eps:g}" + ("_large" if scale > 10 else "")
               + ("_big" if not scale else ""),
               dict(n=n, k=k, label_smoothing=eps),
               dict(logits=logits, labels=labels, dy=dy, loss=loss.reshape(1), probs=probs,
                    dlogits=zl.grad))


def triplet_reference(feat64, labels, margin):
    """Batch-hard triplet exactly as ops.h: returns loss, pos_idx, neg_idx, distances."""
    n = feat64.shape[0]
    diff = feat64[:, None, :] - feat64[None, :, :]
    dist = torch.sqrt(torch.clamp((diff * diff).sum(-1), min=1e-12))  # (N, N)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(n, dtype=torch.bool)
    pos_mask, neg_mask = same & ~eye, ~same
    inf = torch.tensor(float("inf"), dtype=dist.dtype)
    dp, pidx = torch.where(pos_mask, dist, -inf).max(dim=1)
    dn, nidx = torch.where(neg_mask, dist, inf).min(dim=1)
    valid = pos_mask.any(1) & neg_mask.any(1)
    hinge = torch.relu(dp - dn + margin)
    loss = hinge[valid].mean() if valid.any() else (dist.sum() * 0.0)
    pidx = torch.where(valid, pidx, torch.full_like(pidx, -1))
    nidx = torch.where(valid, nidx, torch.full_like(nidx, -1))
    return loss, pidx, nidx, dist.detach(), dp.detach() - dn.detach() + margin, valid


def triplet_gap(dist, labels, pidx, nidx, hinge, valid):
    """Smallest distance of the mining and the hinges to a tie (must be large)."""
    gap = float("inf")
    for i in range(dist.shape[0]):
        if not valid[i]:
            continue
        gap = min(gap, abs(float(hinge[i])))
        for j in range(dist.shape[0]):
            if j in (i, int(pidx[i]), int(nidx[i])):
                continue
            if labels[j] == labels[i]:
                gap = min(gap, float(dist[i, pidx[i]] - dist[i, j]))
            else:
                gap = min(gap, float(dist[i, j] - dist[i, nidx[i]]))
    return gap


def gen_triplet(w):
    # (P identities, K per identity, extra singleton identities, D, margin)
    for p, k, single, d, margin in [(4, 2, 0, 8, 0.3), (3, 4, 0, 16, 1.0), (2, 3, 2, 5, 0.5),
                                    (1, 4, 0, 3, 0.5), (8, 4, 0, 32, 2.0), (2, 2, 0, 1, 1.0)]:
        labels = torch.cat([torch.arange(p).repeat_interleave(k),
                            torch.arange(p, p + single)])
        n = labels.numel()
        for attempt in range(1000):
            perm = torch.randperm(n)
            lab = labels[perm]
            centers = randn(p + single, d, scale=1.0)
            feat = (centers[lab] + randn(n, d, scale=0.6)).float()
            loss, pidx, nidx, dist, hinge, valid = triplet_reference(feat.double(), lab,
                                                                     f32(margin))
            if triplet_gap(dist, lab, pidx, nidx, hinge, valid) > 0.02:
                break
        else:
            sys.exit(f"triplet P={p} K={k}: no batch without near-ties in 1000 draws")
        fl = leaf(feat)
        loss, pidx, nidx, _, hinge, valid = triplet_reference(fl, lab, f32(margin))
        dy = randn(1, shift=1.0)
        loss.backward(dy.double()[0])
        active = int(((hinge > 0) & valid).sum())
        w.case("triplet_hard", f"p{p}_k{k}_s{single}_d{d}_m{margin:g}_act{active}of{n}",
               dict(n=n, d=d, margin=margin),
               dict(feat=feat, labels=lab, dy=dy, loss=loss.reshape(1), pos_idx=pidx,
                    neg_idx=nidx, dfeat=fl.grad if fl.grad is not None else torch.zeros_like(feat)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="HDF5 file to write")
    args = ap.parse_args()
    torch.manual_seed(20261127)
    torch.set_num_threads(1)  # reduction order fixed: the same file on every machine
    w = Writer(args.out)
    for gen in (gen_gemm, gen_conv2d, gen_linear, gen_batchnorm, gen_activations, gen_pools,
                gen_adaptive, gen_concat_split, gen_eltwise, gen_cross_entropy, gen_triplet):
        gen(w)
    total = sum(w.count.values())
    w.close()
    print(f"{args.out}: {total} cases over {len(OPS)} ops (torch {torch.__version__})")


if __name__ == "__main__":
    main()
