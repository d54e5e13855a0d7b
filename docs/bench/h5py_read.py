#!/usr/bin/env python3
"""Reference for `larmon bench`: how fast h5py reads a `packets` table into numpy.

Run by hand in a scratch venv (pip install h5py numpy); never part of the build or CI:
    python docs/bench/h5py_read.py FILE [--seconds 3]
Prints rows/s (best and median pass), the same statistic `larmon bench` prints.
"""
import argparse
import statistics
import time

import h5py

ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("--seconds", type=float, default=3.0)
args = ap.parse_args()

rates = []
start = time.perf_counter()
while len(rates) < 3 or time.perf_counter() - start < args.seconds:
    t = time.perf_counter()
    with h5py.File(args.file, "r") as f:
        rows = f["packets"][:]
    rates.append(len(rows) / (time.perf_counter() - t))
rates.sort()
print(f"{args.file}: h5py packets -> numpy  {len(rows)} rows  best {rates[-1]/1e6:.1f} M rows/s  "
      f"median {statistics.median(rates)/1e6:.1f} M rows/s  ({len(rates)} passes)")
