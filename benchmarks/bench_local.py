"""Issue 2: zarrflow's synchronous ``a[:]`` and ``a[:] = x`` on local files, against the peers.

Workloads ``large`` (zstd-3 and blosc-lz4 with shuffle) and ``small-chunks``.
Contenders: zarrflow (default: a threaded Dask graph when the selection spans
many chunks; and under ``dask.config.set(scheduler="sync")``, one thread),
zarr-python 3 used directly, tensorstore's zarr3 driver (its own thread pools,
and capped at one thread), and the ceilings: the codec alone on N threads, raw
page-cache file reads or writes, numpy memcpy. Every reader reads the same
files (written by zarrflow); every writer writes its own copy of the same
array, checked afterwards.

For ``small-chunks`` the read table also has ``a.to_dask().compute()`` and two
floors for zstd: python-zstandard decoding every chunk with one reused context
(what zarrflow's codec costs), and that decode plus the minimal
open/read/close of each file, on one thread with no placement — what is left
between them and ``a[:]`` under the sync scheduler is zarrflow's own overhead.

Run: ``python benchmarks/bench_local.py [--quick] [--repeat N] [--workload NAME]``
(``--workload small-chunks`` runs only that one).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import numpy as np
import zstandard

import zarrflow as zf
from common import (
    CORES,
    SMALL_CHUNKS,
    Case,
    Goals,
    Table,
    Threads,
    Workload,
    check_equal,
    chunk_paths,
    large_workloads,
    optional,
    parse_args,
    print_header,
    read_ceilings,
    run_table,
    scratch_dir,
    stored_bytes,
    sync_scheduler,
    thread_pools,
    ts_array,
    write_ceilings,
    zarr_array,
    zarrs_array,
)

ZF = "zarrflow `a[:]`"
ZF_SYNC = "zarrflow `a[:]`, scheduler=sync"
ZF_SET = "zarrflow `a[:] = x`"
ZARR_READ = "zarr-python `arr[:]`"
ZARRS_READ = "zarrs-python `arr[:]` (zarr-python + ZarrsCodecPipeline)"
TS_READ = "tensorstore `read()`"
ZF_SET_SYNC = "zarrflow `a[:] = x`, scheduler=sync"
ZF_DASK = "zarrflow `a.to_dask().compute()`"
GRAPH_THREADS = f"{CORES} (Dask threads)"


def in_sync(fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        with sync_scheduler():
            fn()

    return run


def bench_write(
    root: str, wl: Workload, data: np.ndarray, peers: dict, pools: dict[int, Threads], repeat: int
) -> Table:
    """``a[:] = x`` of each contender into its own copy of the array (created by zarrflow)."""

    def target(name: str) -> str:
        path = os.path.join(root, f"write-{name}.zarr")
        wl.create(path)
        written[name] = path
        return path

    def assign(array) -> Callable[[], None]:
        def run() -> None:
            array[:] = data

        return run

    def ts_write(array) -> Callable[[], None]:
        return lambda: array.write(data).result()

    written: dict[str, str] = {}
    a = zf.open(target(ZF_SET))
    cases = {ZF_SET: Case(assign(a), GRAPH_THREADS), ZF_SET_SYNC: Case(in_sync(assign(a)), 1)}
    if peers["zarr"]:
        label = "zarr-python `arr[:] = x`"
        cases[label] = Case(assign(zarr_array(target(label), "r+")), "asyncio")
    if peers["tensorstore"]:
        label = "tensorstore `write(x)`"
        cases[label] = Case(ts_write(ts_array(target(label))), "own pools")
        label = "tensorstore `write(x)`, 1 thread"
        cases[label] = Case(ts_write(ts_array(target(label), threads=1)), 1, ZF_SET_SYNC)
    cases.update(write_ceilings(wl, data, root, pools, ZF_SET_SYNC))
    table = run_table(f"write — {wl.title}", wl.nbytes, wl.nchunks, cases, repeat)
    for label, path in written.items():
        check_equal(f"write {label} {wl.codec_label}", zf.open(path)[:], data)
    for row in table.rows:
        if row.label in written:
            row.note = f"stored {stored_bytes(written[row.label]) / 1e6:.1f} MB"
    return table


def bench_read(
    root: str, wl: Workload, data: np.ndarray, peers: dict, pools: dict[int, Threads], repeat: int
) -> Table:
    """``a[:]`` of each contender over the same files."""
    path = os.path.join(root, "read.zarr")
    a = wl.create(path)
    a[:] = data
    cases = {ZF: Case(lambda: a[:], GRAPH_THREADS), ZF_SYNC: Case(in_sync(lambda: a[:]), 1)}
    check_equal("zarrflow read", a[:], data)
    if peers["zarr"]:
        z = zarr_array(path)
        check_equal("zarr-python read", z[:], data)
        cases[ZARR_READ] = Case(lambda: z[:], "asyncio")
    if peers["zarrs"]:
        zs = zarrs_array(path)
        check_equal("zarrs-python read", zs[:], data)
        cases[ZARRS_READ] = Case(lambda: zs[:], "zarrs pool")
    if peers["tensorstore"]:
        t, t1 = ts_array(path), ts_array(path, threads=1)
        check_equal("tensorstore read", t.read().result(), data)
        cases[TS_READ] = Case(lambda: t.read().result(), "own pools")
        cases["tensorstore `read()`, 1 thread"] = Case(lambda: t1.read().result(), 1, ZF_SYNC)
    if wl is SMALL_CHUNKS:
        d = a.to_dask()
        check_equal("zarrflow to_dask", d.compute(), data)
        cases[ZF_DASK] = Case(lambda: d.compute(scheduler="threads"), GRAPH_THREADS)
        cases.update(zstd_floors(a, path))
    cases.update(read_ceilings(wl, a, path, pools, ZF_SYNC))
    return run_table(f"read — {wl.title}", wl.nbytes, wl.nchunks, cases, repeat)


def zstd_floors(a, path: str) -> dict[str, Case]:
    """One thread, no placement: zstd decode with a reused context, then with file reads too."""
    paths = chunk_paths(a, path)
    encoded = [_read_hinted(p) for p in paths]
    dctx = zstandard.ZstdDecompressor()
    size = a.dtype.itemsize * int(np.prod(a.chunks))

    def decode() -> None:
        for data in encoded:
            dctx.decompress(data, max_output_size=size)

    def read_and_decode() -> None:
        for p in paths:
            dctx.decompress(_read_hinted(p), max_output_size=size)

    return {
        "floor: zstd decode, reused context": Case(decode, 1, ZF_SYNC),
        "floor: open/read/close + zstd decode": Case(read_and_decode, 1, ZF_SYNC),
    }


def _read_hinted(path: str, limit: int = 1 << 20) -> bytes:
    """open, one read, close: the fewest system calls that read a small file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def large_goals(goals: Goals, wl: Workload, read: Table, peers: dict) -> None:
    """``a[:]`` against zarr-python, zarrs-python and tensorstore; and against its ceiling."""
    what = f"large {wl.codec_label} `a[:]`"
    if peers["zarr"]:
        goals.at_most(f"{what}: t(zarrflow) / t(zarr-python)", read.relative(ZF, ZARR_READ))
    if peers["zarrs"]:
        goals.at_most(f"{what}: t(zarrflow) / t(zarrs-python)", read.relative(ZF, ZARRS_READ))
    if peers["tensorstore"]:
        goals.at_most(f"{what}: t(zarrflow) / t(tensorstore)", read.relative(ZF, TS_READ))
    ceiling = f"ceiling: codec decode ({CORES} thr)"
    goals.at_most(f"{what}: t(zarrflow) / t({ceiling})", read.relative(ZF, ceiling), 1.3)


def _workload_arg() -> str:
    """``--workload`` (all, large or small-chunks), taken off the command line for parse_args."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--workload", choices=["all", "large", "small-chunks"], default="all")
    known, rest = p.parse_known_args()
    if "-h" in rest or "--help" in rest:
        print("extra option: --workload {all,large,small-chunks}  run only these workloads")
    sys.argv[1:] = rest
    return known.workload


def main() -> None:
    only = _workload_arg()
    args = parse_args(__doc__)
    print_header("bench_local.py", args)
    peers = {"zarr": optional("zarr"), "tensorstore": optional("tensorstore")}
    peers["zarrs"] = peers["zarr"] and optional("zarrs")
    goals = Goals()
    workloads = {
        "all": [*large_workloads(args.quick), SMALL_CHUNKS],
        "large": large_workloads(args.quick),
        "small-chunks": [SMALL_CHUNKS],
    }[only]
    with scratch_dir() as root, thread_pools(CORES, 1) as pools:
        for wl in workloads:
            data = wl.data()
            bench_write(root, wl, data, peers, pools, args.repeat).print()
            read = bench_read(root, wl, data, peers, pools, args.repeat)
            read.print()
            if wl is SMALL_CHUNKS:
                for label in (ZF, ZF_SYNC, ZF_DASK):
                    us = read.timing(label).us_per(wl.nchunks)
                    goals.at_most(f"small-chunks {label} per chunk", us, 20.0, "µs/chunk")
            else:
                large_goals(goals, wl, read, peers)
    goals.print()


if __name__ == "__main__":
    main()
