#!/usr/bin/env python3
"""Converts PyTorch weights to the HDF5 weights file that ptl loads (docs/weights.md).

    torch2h5.py IN.pth OUT.h5
    torch2h5.py --torchvision NAME [--classes K] [--seed S] OUT.h5

IN.pth may hold a state_dict, a pickled nn.Module, or a training checkpoint (a dict with a
'state_dict' or 'model' key); the tool says which it found. --torchvision writes a randomly
initialised torchvision model (pretrained weights cannot be downloaded everywhere, so this is
the test vehicle). --drop PREFIX leaves out entries whose names start with PREFIX (repeatable):
`--drop fc.` removes an ImageNet classifier before a partial load into a model with another
number of classes.

Every state_dict entry becomes one dataset at the root of OUT.h5, named like the entry:
floating-point tensors as float32 with their shape, integer tensors (BatchNorm's
num_batches_tracked) as int64. OUT.h5 is written to a temporary file and renamed into place.

Needs torch and h5py (and torchvision for --torchvision). Loading IN.pth unpickles it: only
convert files you trust.
"""
import argparse
import collections
import os
import sys


def fail(msg):
    print("torch2h5: " + msg, file=sys.stderr)
    sys.exit(1)


def import_torch():
    try:
        import h5py  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        fail("needs torch and h5py (%s); try /usr/bin/python3" % e)


def is_state_dict(obj):
    import torch
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def state_dict_of(obj, path):
    """The state_dict inside whatever torch.load returned, and a description of what it was."""
    import torch
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict(), "a pickled module (%s)" % type(obj).__name__
    if is_state_dict(obj):
        return obj, "a state_dict"
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, torch.nn.Module):
                return inner.state_dict(), "a checkpoint with a pickled module under '%s'" % key
            if is_state_dict(inner):
                return inner, "a checkpoint with its state_dict under '%s'" % key
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        fail("%s: a dict without tensors at the top and without a 'state_dict' or 'model' "
             "entry (keys: %s)" % (path, keys or "none"))
    fail("%s: holds a %s, not a state_dict, module or checkpoint" % (path, type(obj).__name__))


def strip_data_parallel(sd):
    """nn.DataParallel / DistributedDataParallel prefix every name with 'module.'."""
    if sd and all(k.startswith("module.") for k in sd):
        print("torch2h5: removed the 'module.' prefix of (Distributed)DataParallel")
        return collections.OrderedDict((k[len("module."):], v) for k, v in sd.items())
    return sd


def load_pth(path):
    import torch
    if not os.path.isfile(path):
        fail("%s: no such file" % path)
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many kinds here (pickle, zip, EOF)
        fail("%s: cannot load with torch.load (%s: %s)" % (path, type(e).__name__, e))
    sd, what = state_dict_of(obj, path)
    print("torch2h5: %s: found %s" % (path, what))
    return strip_data_parallel(sd)


def torchvision_model(name, classes, seed):
    import torch
    try:
        import torchvision
    except ImportError as e:
        fail("--torchvision needs torchvision (%s)" % e)
    ctor = getattr(torchvision.models, name, None)
    if ctor is None or not callable(ctor) or name.startswith("_"):
        known = sorted(n for n in dir(torchvision.models)
                       if n[:1].islower() and not n.startswith("_")
                       and callable(getattr(torchvision.models, n)))
        fail("--torchvision %s: not a torchvision model (e.g. %s)" %
             (name, ", ".join(k for k in known if k.startswith(("resnet", "densenet")))))
    torch.manual_seed(seed)
    try:
        model = ctor(num_classes=classes)  # random init: no download
    except TypeError as e:
        fail("--torchvision %s: cannot build it with num_classes=%d (%s)" % (name, classes, e))
    print("torch2h5: torchvision %s, %d classes, seed %d, random initialisation" %
          (name, classes, seed))
    return model.state_dict()


def write_h5(sd, out):
    import h5py
    import numpy as np
    import torch
    tmp = "%s.tmp.%d" % (out, os.getpid())
    try:
        # track_order keeps the state_dict order for readers that ask for it (h52torch.py).
        with h5py.File(tmp, "w", track_order=True) as f:
            for name, t in sd.items():
                if "/" in name:
                    raise ValueError("entry '%s': '/' cannot be part of an HDF5 name" % name)
                t = t.detach().cpu()
                if t.is_floating_point():
                    a = t.to(torch.float32).numpy()
                elif t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                 torch.uint8):
                    a = t.to(torch.int64).numpy()
                else:
                    raise ValueError("entry '%s' has dtype %s (only float and integer tensors "
                                     "are weights)" % (name, t.dtype))
                # (np.ascontiguousarray would turn a 0-d counter into shape [1])
                f.create_dataset(name, data=np.array(a, order="C"))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except (OSError, ValueError) as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        fail("%s: %s" % (out, e))


def main():
    p = argparse.ArgumentParser(
        prog="torch2h5.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("paths", nargs="+", metavar="PATH", help="IN.pth OUT.h5, or OUT.h5 with "
                   "--torchvision")
    p.add_argument("--torchvision", metavar="NAME",
                   help="write a randomly initialised torchvision model (e.g. resnet18)")
    p.add_argument("--classes", type=int, default=1000,
                   help="classifier outputs for --torchvision (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed for --torchvision")
    p.add_argument("--drop", action="append", default=[], metavar="PREFIX",
                   help="leave out entries whose names start with PREFIX (repeatable)")
    a = p.parse_intermixed_args()  # options may follow the paths
    if a.torchvision:
        if len(a.paths) != 1:
            p.error("with --torchvision give only OUT.h5")
        if a.classes < 1:
            p.error("--classes must be positive")
    elif len(a.paths) != 2:
        p.error("expected IN.pth OUT.h5 (or --torchvision NAME OUT.h5)")
    out = a.paths[-1]
    if not a.torchvision and os.path.abspath(a.paths[0]) == os.path.abspath(out):
        p.error("OUT.h5 is IN.pth: refusing to overwrite the input")
    if not a.torchvision and not os.path.isfile(a.paths[0]):
        fail("%s: no such file" % a.paths[0])  # before the slow torch import
    import_torch()
    sd = torchvision_model(a.torchvision, a.classes, a.seed) if a.torchvision \
        else load_pth(a.paths[0])
    if a.drop:
        kept = collections.OrderedDict(
            (k, v) for k, v in sd.items() if not any(k.startswith(d) for d in a.drop))
        print("torch2h5: dropped %d entries starting with %s" %
              (len(sd) - len(kept), ", ".join(a.drop)))
        sd = kept
    if not sd:
        fail("nothing to write: the state_dict is empty")
    write_h5(sd, out)
    print("torch2h5: wrote %d entries to %s" % (len(sd), out))


if __name__ == "__main__":
    main()
