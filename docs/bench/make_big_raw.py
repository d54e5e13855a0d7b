#!/usr/bin/env python3
"""Concatenates a raw PACMAN file N times (messages and io_groups, Unix times shifted so the copies
follow each other) into a bigger raw file for throughput measurements, and the matching packet
file through larmon convert. Needs h5py + numpy in a scratch venv; never part of the build or CI:
    python docs/bench/make_big_raw.py IN_RAW.h5 OUT_RAW.h5 --copies 20
"""
import argparse

import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("input")
ap.add_argument("output")
ap.add_argument("--copies", type=int, default=20)
args = ap.parse_args()

with h5py.File(args.input, "r") as f:
    msgs = f["msgs"][:]
    groups = f["msg_headers"][:]
    meta = dict(f["meta"].attrs)
span = int(meta["modified"] - meta["created"]) + 1
out_msgs, out_groups = [], []
for c in range(args.copies):
    for m in msgs:
        m = m.copy()
        unix = int.from_bytes(m[1:5].tobytes(), "little") + c * span
        m[1:5] = np.frombuffer(unix.to_bytes(4, "little"), dtype=np.uint8)
        out_msgs.append(m)
    out_groups.append(groups)
with h5py.File(args.output, "w", libver="latest") as f:
    g = f.create_group("meta")
    for k, v in meta.items():
        g.attrs[k] = v
    d = f.create_dataset("msgs", (len(out_msgs),), dtype=h5py.vlen_dtype(np.uint8),
                         maxshape=(None,), chunks=(1024,), compression="gzip")
    d[:] = out_msgs
    f.create_dataset("msg_headers", data=np.concatenate(out_groups), maxshape=(None,),
                     chunks=(1024,), compression="gzip")
print(f"{args.output}: {len(out_msgs)} messages")
