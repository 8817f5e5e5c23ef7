#!/usr/bin/env python3
"""Converts a ptl HDF5 weights file (docs/weights.md) to a PyTorch state_dict.

    h52torch.py IN.h5 OUT.pth

Every dataset at the root of IN.h5 becomes one entry of an OrderedDict saved with
torch.save, ready for model.load_state_dict(torch.load("OUT.pth")): floating-point datasets
keep their type (ptl writes float32), integer datasets (counters such as
num_batches_tracked) become int64 tensors, scalars stay 0-dimensional. Entries keep the order
they were written in when the file tracks it (files from ptl and torch2h5.py do), else
alphabetical order. OUT.pth is written to a temporary file and renamed into place.

Needs torch, h5py and numpy.
"""
import argparse
import collections
import os
import sys


def fail(msg):
    print("h52torch: " + msg, file=sys.stderr)
    sys.exit(1)


def ordered_names(f):
    """Root link names in creation order if the file tracks it, else by name."""
    import h5py
    names = []

    def visit(name, *_):
        names.append(name.decode() if isinstance(name, bytes) else name)

    try:
        f.id.links.iterate(visit, idx_type=h5py.h5.INDEX_CRT_ORDER)
        return names
    except Exception:  # creation order not tracked: h5py raises from the HDF5 error
        return sorted(f.keys())


def read_state_dict(path):
    import h5py
    import numpy as np
    import torch
    sd = collections.OrderedDict()
    try:
        with h5py.File(path, "r") as f:
            for name in ordered_names(f):
                obj = f.get(name)
                if not isinstance(obj, h5py.Dataset):
                    fail("%s: '%s' is not a dataset (a weights file holds only datasets at "
                         "its root)" % (path, name))
                a = obj[()]
                kind = np.asarray(a).dtype.kind
                if kind == "f":
                    t = torch.from_numpy(np.array(a))
                elif kind in "iu":
                    t = torch.from_numpy(np.array(a, dtype=np.int64))
                else:
                    fail("%s: '%s' has type %s (expected float or integer)" %
                         (path, name, obj.dtype))
                sd[name] = t
    except OSError as e:
        fail("%s: truncated or corrupt (%s)" % (path, e))
    if not sd:
        fail("%s: holds no datasets" % path)
    return sd


def main():
    p = argparse.ArgumentParser(
        prog="h52torch.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("input", metavar="IN.h5")
    p.add_argument("output", metavar="OUT.pth")
    a = p.parse_args()
    if os.path.abspath(a.input) == os.path.abspath(a.output):
        p.error("OUT.pth is IN.h5: refusing to overwrite the input")
    if not os.path.isfile(a.input):
        fail("%s: no such file" % a.input)
    try:
        import h5py
    except ImportError as e:
        fail("needs h5py (%s); try /usr/bin/python3" % e)
    if not h5py.is_hdf5(a.input):  # checked before the slow torch import
        fail("%s: not an HDF5 file" % a.input)
    try:
        import torch
    except ImportError as e:
        fail("needs torch (%s); try /usr/bin/python3" % e)
    sd = read_state_dict(a.input)
    tmp = "%s.tmp.%d" % (a.output, os.getpid())
    try:
        torch.save(sd, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, a.output)
    except (OSError, RuntimeError) as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        fail("%s: cannot write (%s)" % (a.output, e))
    print("h52torch: wrote %d entries to %s" % (len(sd), a.output))


if __name__ == "__main__":
    main()
