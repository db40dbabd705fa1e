"""Issue 3: zarrflow through Dask, against zarr-python + Dask and tensorstore.

Workloads ``seed``, ``large`` (zstd-3 and blosc-lz4 with shuffle) and
``small-chunks``: a full read with ``a.to_dask().compute()`` and a full write
with ``zf.to_zarr(x, a)`` against ``da.from_zarr(arr).compute()`` and
``da.to_zarr(x, arr)`` over zarr-python 3, and tensorstore's direct read and
write (no Dask). Then the worth of the "several chunks per task" rule
(``chunks_per_task``), and ``graph``: building the dask array of a
1,000,000-chunk array, scheduling 10,000 tasks, and ``.sum()`` over 1,000,000
missing chunks.

Run: ``python benchmarks/bench_dask.py [--quick] [--repeat N] [--workload NAME]``
(``--workload seed``, ``large`` or ``small-chunks`` runs only that workload's tables).
"""

from __future__ import annotations

import argparse
import os
import sys

import dask.array as da
import numpy as np

import zarrflow as zf
from common import (
    CORES,
    SEED,
    SMALL_CHUNKS,
    Case,
    Goals,
    Table,
    Workload,
    check_equal,
    large_workloads,
    optional,
    parse_args,
    print_header,
    read_ceilings,
    run_table,
    scratch_dir,
    thread_pools,
    ts_array,
    zarr_array,
    zarrs_array,
)

ZF_READ = "zarrflow `a.to_dask().compute()`"
ZF_WRITE = "zarrflow `zf.to_zarr(x, a)`"
ZF_SUM = "zarrflow `a.to_dask().sum().compute()`"
TS_READ = "tensorstore `read()` (direct, no Dask)"
ZARRS_READ = "zarrs-python `arr[:]` (direct, no Dask)"
ZARRS_DASK = "zarrs-python + Dask `da.from_zarr(arr).compute()`"
CEILING = f"ceiling: codec decode ({CORES} thr)"
TS_WRITE = "tensorstore `write(x)` (direct, no Dask)"
DASK_THREADS = f"{CORES} (Dask threads)"
GRAPH_SHAPE = (10_000, 10_000)  # 10×10 chunks: 1,000,000 of them
QUICK_GRAPH_SHAPE = (1_000, 10_000)  # 100,000 chunks
SCHEDULE_SHAPE = (1_000, 1_000)  # 10×10 chunks: 10,000 tasks


def tasks(x: da.Array) -> str:
    return f"{x.npartitions:,} tasks"


def read_path(root: str, wl: Workload) -> str:
    """Where ``bench_read`` leaves the workload's array (read again by the other benches)."""
    return os.path.join(root, f"{wl.name}-read.zarr")


def bench_read(
    root: str, wl: Workload, data: np.ndarray, peers: dict, repeat: int, pools=None
) -> Table:
    """A full read through Dask (and the peers' direct reads) of the same files.

    With ``pools`` (large workloads) the table ends with the ceilings: the
    codec alone on the pools' threads, raw file reads, numpy memcpy.
    """
    path = read_path(root, wl)
    a = wl.create(path)
    a[:] = data
    check_equal("zarrflow to_dask", a.to_dask().compute(), data)
    cases = {ZF_READ: Case(lambda: a.to_dask().compute(), DASK_THREADS, note=tasks(a.to_dask()))}
    if peers["zarr"]:
        z = zarr_array(path)
        check_equal("zarr-python + Dask", da.from_zarr(z).compute(), data)
        cases["zarr-python + Dask `da.from_zarr(arr).compute()`"] = Case(
            lambda: da.from_zarr(z).compute(), DASK_THREADS, note=tasks(da.from_zarr(z))
        )
    if peers["zarrs"]:
        zs = zarrs_array(path)
        check_equal("zarrs-python", zs[:], data)
        cases[ZARRS_DASK] = Case(
            lambda: da.from_zarr(zs).compute(), DASK_THREADS, note=tasks(da.from_zarr(zs))
        )
        cases[ZARRS_READ] = Case(lambda: zs[:], "zarrs pool")
    if peers["tensorstore"]:
        t = ts_array(path)
        cases[TS_READ] = Case(lambda: t.read().result(), "own pools")
    cases["zarrflow `a[:]` (direct)"] = Case(lambda: a[:], DASK_THREADS)
    if pools is not None:
        cases.update(read_ceilings(wl, a, path, pools, ZF_READ))
    return run_table(f"read through Dask — {wl.title}", wl.nbytes, wl.nchunks, cases, repeat)


def bench_write(root: str, wl: Workload, data: np.ndarray, peers: dict, repeat: int) -> Table:
    """A full write of a dask array (blocks = chunks) through Dask, and tensorstore's direct one."""
    x = da.from_array(data, chunks=wl.chunks)
    paths = {who: os.path.join(root, f"{wl.name}-write-{who}.zarr") for who in ("zf", "zarr", "ts")}
    arrays = {who: wl.create(path) for who, path in paths.items()}
    cases = {ZF_WRITE: Case(lambda: zf.to_zarr(x, arrays["zf"]), DASK_THREADS, note=tasks(x))}
    if peers["zarr"]:
        z = zarr_array(paths["zarr"], "r+")
        cases["zarr-python + Dask `da.to_zarr(x, arr)`"] = Case(
            lambda: da.to_zarr(x, z), DASK_THREADS, note=tasks(x)
        )
    if peers["tensorstore"]:
        t = ts_array(paths["ts"])
        cases[TS_WRITE] = Case(lambda: t.write(data).result(), "own pools")
    table = run_table(f"write through Dask — {wl.title}", wl.nbytes, wl.nchunks, cases, repeat)
    for who, a in arrays.items():
        if who == "zf" or peers["zarr" if who == "zarr" else "tensorstore"]:
            check_equal(f"write {who}", a[:], data)
    return table


def bench_chunks_per_task(root: str, wl: Workload, counts: list[int], repeat: int) -> Table:
    """``to_dask(chunks_per_task=n).compute()`` for several ``n``, against the automatic rule."""
    a = zf.open(read_path(root, wl))
    auto = f"auto ({a.to_dask().npartitions} tasks)"
    cases = {auto: Case(lambda: a.to_dask().compute(), DASK_THREADS, note=tasks(a.to_dask()))}
    for n in counts:
        cases[f"chunks_per_task={n}"] = Case(
            lambda n=n: a.to_dask(chunks_per_task=n).compute(),
            DASK_THREADS,
            note=tasks(a.to_dask(chunks_per_task=n)),
        )
    title = f"several chunks per task — {wl.title}"
    return run_table(title, wl.nbytes, wl.nchunks, cases, repeat)


def bench_graph_build(root: str, shape: tuple[int, int], peers: dict, repeat: int) -> Table:
    """Building the dask array (no compute) of an array of 10×10 chunks."""
    path = os.path.join(root, "graph.zarr")
    a = zf.create(path, shape=shape, chunks=(10, 10), dtype="uint8", overwrite=True)
    cases = {
        "zarrflow `a.to_dask(chunks_per_task=1)`": Case(lambda: a.to_dask(chunks_per_task=1), 1),
        "zarrflow `a.to_dask()` (auto)": Case(a.to_dask, 1),
    }
    if peers["zarr"]:
        z = zarr_array(path)
        cases["zarr-python + Dask `da.from_zarr(arr)`"] = Case(lambda: da.from_zarr(z), 1)
    cases["Dask `da.zeros(shape, chunks=(10, 10))`"] = Case(
        lambda: da.zeros(shape, chunks=(10, 10), dtype="u1"), 1
    )
    title = f"graph — building the dask array of {a.nchunks:,} chunks (10×10 uint8)"
    return run_table(title, a.nbytes, a.nchunks, cases, repeat)


def bench_graph_sum(root: str, shape: tuple[int, int], peers: dict, repeat: int) -> Table:
    """``.sum()`` over an array whose chunks were never written (fill value everywhere)."""
    path = os.path.join(root, "graph.zarr")
    a = zf.create(path, shape=shape, chunks=(10, 10), dtype="uint8", overwrite=True)
    cases = {
        ZF_SUM: Case(lambda: a.to_dask().sum().compute(), DASK_THREADS, note=tasks(a.to_dask()))
    }
    if peers["tensorstore"]:
        t = ts_array(path)
        cases["tensorstore `read().result().sum()`"] = Case(
            lambda: t.read().result().sum(), "own pools"
        )
    title = f"graph — `.sum()` over {a.nchunks:,} missing chunks (10×10 uint8)"
    return run_table(title, a.nbytes, a.nchunks, cases, repeat)


def bench_scheduling(root: str, peers: dict, repeat: int) -> Table:
    """10,000 one-chunk tasks (missing chunks) and a sum: the per-task cost of the scheduler."""
    path = os.path.join(root, "schedule.zarr")
    a = zf.create(path, shape=SCHEDULE_SHAPE, chunks=(10, 10), dtype="uint8", overwrite=True)
    cases = {
        "zarrflow `a.to_dask(chunks_per_task=1).sum().compute()`": Case(
            lambda: a.to_dask(chunks_per_task=1).sum().compute(), DASK_THREADS
        )
    }
    if peers["zarr"]:
        z = zarr_array(path)
        cases["zarr-python + Dask `da.from_zarr(arr).sum().compute()`"] = Case(
            lambda: da.from_zarr(z).sum().compute(), DASK_THREADS
        )
    cases["Dask alone `da.zeros(..., chunks=(10, 10)).sum().compute()`"] = Case(
        lambda: da.zeros(SCHEDULE_SHAPE, chunks=(10, 10), dtype="u1").sum().compute(), DASK_THREADS
    )
    title = f"graph — scheduling {a.nchunks:,} tasks (one missing 10×10 chunk each, then a sum)"
    return run_table(title, a.nbytes, a.nchunks, cases, repeat)


def _workload_arg() -> str:
    """``--workload``, taken out before the common options."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--workload", choices=["all", "seed", "large", "small-chunks"], default="all")
    own, rest = p.parse_known_args()
    sys.argv[1:] = rest
    return own.workload


def read_goals(goals: Goals, wl: Workload, read: Table, peers: dict) -> None:
    """Issue 14's read goals: seed ≥ 1.0× tensorstore; large ≥ 1.1× it, ≥ 0.9× zarrs-python."""
    what = f"{wl.name} {wl.codec_label} read"
    large = wl is not SEED
    if peers["tensorstore"]:
        limit = 1 / 1.1 if large else 1.0
        goals.at_most(
            f"{what}: t(to_dask) / t(tensorstore)", read.relative(ZF_READ, TS_READ), limit
        )
    if peers["zarrs"] and large:
        ratio = read.relative(ZF_READ, ZARRS_READ)
        goals.at_most(f"{what}: t(to_dask) / t(zarrs-python)", ratio, 1 / 0.9)
    if any(r.label == CEILING for r in read.rows):
        goals.at_most(f"{what}: t(to_dask) / t({CEILING})", read.relative(ZF_READ, CEILING), 1.3)


def main() -> None:
    only = _workload_arg()
    args = parse_args(__doc__)
    print_header("bench_dask.py", args)
    peers = {"zarr": optional("zarr"), "tensorstore": optional("tensorstore")}
    peers["zarrs"] = peers["zarr"] and optional("zarrs")
    goals = Goals()
    with scratch_dir() as root, thread_pools(CORES) as pools:
        chosen = {"all": [SEED, *large_workloads(args.quick)], "seed": [SEED]}
        chosen["large"] = large_workloads(args.quick)
        for wl in chosen.get(only, []):
            data = wl.data()
            read = bench_read(root, wl, data, peers, args.repeat, None if wl is SEED else pools)
            read.print()
            read_goals(goals, wl, read, peers)
            write = bench_write(root, wl, data, peers, args.repeat)
            write.print()
            if peers["tensorstore"]:
                ratio = write.relative(ZF_WRITE, TS_WRITE)
                goals.at_most(
                    f"{wl.name} {wl.codec_label} write: t(to_zarr) / t(tensorstore)", ratio
                )
            if wl is SEED:
                bench_chunks_per_task(root, wl, [1, 10, 50], args.repeat).print()

        if only in ("seed", "large"):
            goals.print()
            return
        small = bench_read(root, SMALL_CHUNKS, SMALL_CHUNKS.data(), peers, args.repeat)
        small.print()
        us = small.timing(ZF_READ).us_per(SMALL_CHUNKS.nchunks)
        goals.at_most("small-chunks `to_dask().compute()` per chunk", us, 20.0, "µs/chunk")
        bench_chunks_per_task(root, SMALL_CHUNKS, [1, 8, 64, 512], args.repeat).print()
        if only == "small-chunks":
            goals.print()
            return

        shape = QUICK_GRAPH_SHAPE if args.quick else GRAPH_SHAPE
        bench_graph_build(root, shape, peers, args.repeat).print()
        bench_scheduling(root, peers, args.repeat).print()
        total = bench_graph_sum(root, shape, peers, args.repeat)
        total.print()
        seconds = total.timing(ZF_SUM).median
        goals.at_most(f"`.sum()` over {total.nchunks:,} missing chunks", seconds, 10.0, "s")
    goals.print()


if __name__ == "__main__":
    main()
