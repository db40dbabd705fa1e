"""Issue 2: zarrflow's synchronous ``a[:]`` and ``a[:] = x`` on local files, against the peers.

Workloads ``large`` (zstd-3 and blosc-lz4 with shuffle) and ``small-chunks``.
Contenders: zarrflow (default: a threaded Dask graph when the selection spans
many chunks; and under ``dask.config.set(scheduler="sync")``, one thread),
zarr-python 3 used directly, tensorstore's zarr3 driver (its own thread pools,
and capped at one thread), and the ceilings: the codec alone on N threads, raw
page-cache file reads or writes, numpy memcpy. Every reader reads the same
files (written by zarrflow); every writer writes its own copy of the same
array, checked afterwards.

Run: ``python benchmarks/bench_local.py [--quick] [--repeat N]``
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

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
)

ZF = "zarrflow `a[:]`"
ZF_SYNC = "zarrflow `a[:]`, scheduler=sync"
ZF_SET = "zarrflow `a[:] = x`"
ZARR_READ = "zarr-python `arr[:]`"
ZF_SET_SYNC = "zarrflow `a[:] = x`, scheduler=sync"
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
    if peers["tensorstore"]:
        t, t1 = ts_array(path), ts_array(path, threads=1)
        check_equal("tensorstore read", t.read().result(), data)
        cases["tensorstore `read()`"] = Case(lambda: t.read().result(), "own pools")
        cases["tensorstore `read()`, 1 thread"] = Case(lambda: t1.read().result(), 1, ZF_SYNC)
    cases.update(read_ceilings(wl, a, path, pools, ZF_SYNC))
    return run_table(f"read — {wl.title}", wl.nbytes, wl.nchunks, cases, repeat)


def main() -> None:
    args = parse_args(__doc__)
    print_header("bench_local.py", args)
    peers = {"zarr": optional("zarr"), "tensorstore": optional("tensorstore")}
    goals = Goals()
    with scratch_dir() as root, thread_pools(CORES, 1) as pools:
        for wl in [*large_workloads(args.quick), SMALL_CHUNKS]:
            data = wl.data()
            bench_write(root, wl, data, peers, pools, args.repeat).print()
            read = bench_read(root, wl, data, peers, pools, args.repeat)
            read.print()
            if wl is SMALL_CHUNKS:
                for label in (ZF, ZF_SYNC):
                    us = read.timing(label).us_per(wl.nchunks)
                    goals.at_most(f"small-chunks {label} per chunk", us, 20.0, "µs/chunk")
            elif peers["zarr"]:
                ratio = read.relative(ZF, ZARR_READ)
                goals.at_most(f"large {wl.codec_label} `a[:]`: t(zarrflow) / t(zarr-python)", ratio)
    goals.print()


if __name__ == "__main__":
    main()
