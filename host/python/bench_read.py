"""Packets into pyarrow: larmon.read against h5py on the same packet file.

    bash .ci/python bench                         # tests/data/small-packets.h5
    FILE=../shared/fixtures/cosmics-packets.h5 bash .ci/python bench

Prints the median of 7 passes (page cache warm after the first) for
  larmon.read(FILE)                 -> pyarrow.Table (decoded by larmon, handed over zero-copy)
  h5py  f["packets"][:]             -> numpy structured array (no pyarrow yet)
  h5py  + pa.table(columns)         -> pyarrow.Table (what an analyst needs)
"""

import statistics
import sys
import time

import h5py
import pyarrow as pa

import larmon


def timed(f, passes=7):
    times = []
    for _ in range(passes):
        t = time.perf_counter()
        result = f()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def h5py_table(path):
    with h5py.File(path, "r") as f:
        packets = f["packets"][:]
    return pa.table({name: packets[name] for name in packets.dtype.names})


def h5py_numpy(path):
    with h5py.File(path, "r") as f:
        return f["packets"][:]


def main(path):
    larmon_s, table = timed(lambda: larmon.read(path))
    numpy_s, array = timed(lambda: h5py_numpy(path))
    table_s, h5table = timed(lambda: h5py_table(path))
    assert table.num_rows == len(array) == h5table.num_rows
    rows = table.num_rows
    print(f"{path}: {rows} packet rows (median of 7 passes)")
    for name, seconds in [
        ("larmon.read -> pyarrow.Table", larmon_s),
        ("h5py -> numpy structured array", numpy_s),
        ("h5py -> pyarrow.Table", table_s),
    ]:
        print(f"  {name:32s} {seconds * 1e3:8.2f} ms  {rows / seconds / 1e6:7.1f} M rows/s")
    print(f"  larmon.read is {table_s / larmon_s:.2f}x h5py -> pyarrow.Table")


if __name__ == "__main__":
    main(sys.argv[1])
