"""Issue 13: nothing is lost — the reliability table, measured, and what safety costs.

Part 1 runs the scenarios of issue 13's table against zarrflow, each with its
mechanism on (the default) and off (``zarrflow.conditional_writes`` /
``zarrflow.consistent_reads`` False), and prints lost / mixed counts:

- independent processes (forked, no Dask, no shared lock) writing their own
  columns of one chunk, and of one shard, local files and moto's S3
  (``zarrflow.testing.contention.run_counters``, 4 processes x 125 rounds);
- reader processes doing partial reads of a shard one process rewrites
  (``run_mixed_reads``; each version holds one value, two values in one read
  is a mixed read; 2 x 5000 reads locally, 2 x 100 on S3);
- two threads, and two processes, each appending 60 one-row blocks;
- a stale handle setting an attribute after another appended;
- ``to_zarr(strategy="lock")`` with one chunk's writes failing: how often the
  chunk is listed, and whether it kept its old content;
- two threads writing one chunk through a symlinked root and its real path,
  conditional writes off (the real-path lock alone).

The client-thread-beside-the-cluster and paused-worker rows need a
``LocalCluster``: tests/test_no_lost_updates.py runs them (0 lost; lost with
conditional writes off).

Part 2, the cost: ``a[...] = x`` (aligned: whole chunks, unconditional) and an
unaligned ``to_zarr`` (blocks cutting every chunk: read-modify-writes,
conditional), with conditional writes on and off, beside tensorstore writing
the same data (whole, and in the same unaligned blocks). 2048 x 2048 float32,
256 x 256 chunks, zstd level 1, local files; median of 5 (min-max), round-robin.

Run: ``python benchmarks/bench_reliability.py [--quick] [--no-s3]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import numpy as np

import zarrflow as zf
from zarrflow.storage import LocalStore
from zarrflow.testing.contention import run_appenders, run_counters, run_mixed_reads
from zarrflow.testing.faults import FaultyStore

OFF = {"zarrflow.conditional_writes": False, "zarrflow.consistent_reads": False}


def _row(scenario: str, on: str, off: str) -> None:
    print(f"| {scenario} | {on} | {off} |", flush=True)


def _counter_array(url: str, sharded: bool, options: dict | None) -> None:
    kw = {"chunks": (1, 4), "shards": (1, 8)} if sharded else {"chunks": (1, 8)}
    zf.create(url, shape=(1, 8), dtype="i4", storage_options=options, **kw)


def _new(base: str) -> str:
    return f"{base}/{uuid.uuid4().hex}.zarr"


def lost_updates(base: str, options: dict | None, where: str, rounds: int) -> None:
    for sharded in (False, True):
        counts = []
        for conditional in (True, False):
            url = _new(base)
            _counter_array(url, sharded, options)
            got = run_counters(url, options, 4, rounds, conditional)
            counts.append(f"{got['lost']} of {got['rounds']} lost")
        what = "shard" if sharded else "chunk"
        _row(f"4 processes writing parts of one {what} ({where})", *counts)


def mixed_reads(base: str, options: dict | None, where: str, reads: int) -> None:
    counts = []
    for conditional in (True, False):
        url = _new(base)
        a = zf.create(url, shape=(1, 64), chunks=(1, 4), shards=(1, 64), dtype="i4",
                      storage_options=options)  # fmt: skip
        a[...] = 1
        got = run_mixed_reads(url, options, 2, reads, conditional)
        bad = got["mixed"] + got["corrupt"]
        counts.append(f"{bad} of {got['reads']} mixed ({got['versions']} versions written)")
    _row(f"2 processes reading a shard another rewrites ({where})", *counts)


def appends(base: str) -> None:
    counts = []
    for conditional in (True, False):
        url = _new(base)
        zf.create(url, shape=(0, 3), chunks=(4, 3), dtype="i4")
        start = threading.Barrier(2)

        def work(ident: int, url: str = url, start: threading.Barrier = start) -> None:
            a = zf.open_array(url, mode="r+")
            start.wait()
            for _ in range(60):
                a.append(np.full((1, 3), ident, "i4"))

        with dask.config.set({} if conditional else OFF), ThreadPoolExecutor(2) as pool:
            list(pool.map(work, [1, 2]))
        got = zf.open_array(url, mode="r")[...]
        kept = sum(int((got == k).all(axis=1).sum()) for k in (1, 2))
        counts.append(f"{120 - kept} of 120 rows lost")
    _row("2 threads appending 60 rows each", *counts)
    counts = []
    for conditional in (True, False):
        url = _new(base)
        zf.create(url, shape=(0, 3), chunks=(4, 3), dtype="i4")
        got = run_appenders(url, None, 2, 60, conditional)
        counts.append(f"{got['lost']} of {got['rows']} rows lost")
    _row("2 processes appending 60 rows each", *counts)


def stale_attrs(base: str) -> None:
    url = _new(base)
    zf.create(url, shape=(2, 2), chunks=(2, 2), dtype="i4")
    a, b = zf.open_array(url, mode="r+"), zf.open_array(url, mode="r+")
    a.append(np.ones((3, 2), "i4"))
    b.attrs["x"] = 1
    shape = zf.open_array(url, mode="r").shape
    verdict = "A's append kept" if shape == (5, 2) else f"shape reverted to {shape}"
    _row("handle B sets an attribute after handle A appended", verdict, "(no switch: CAS always)")


def failing_chunk(base: str) -> None:
    store = LocalStore(_new(base))
    a = zf.create(store, shape=(3, 8), chunks=(3, 4), dtype="i4")
    a[...] = 1
    b = zf.open_array(FaultyStore(store, permanent=1.0, ops=("set",), match=r"c/0/0$"), mode="r+")
    listed = 0
    try:
        zf.to_zarr(da.full((3, 8), 7, chunks=(3, 1), dtype="i4"), b, strategy="lock",
                   scheduler="threads")  # fmt: skip
    except zf.ParallelChunkError as e:
        listed = sum(f.chunk_index == (0, 0) for f in e.failures)
    old = bool((zf.open_array(store, mode="r")[:, :4] == 1).all())
    verdict = f"listed {listed}x, {'old content kept' if old else 'torn'}"
    _row('`to_zarr(strategy="lock")`, one chunk\'s writes fail', verdict, "(no switch)")


def symlinked(base: str) -> None:
    real = _new(base)
    zf.create(real, shape=(1, 2), chunks=(1, 2), dtype="i4")
    link = real + "-link"
    os.symlink(real, link)
    arrays = [zf.open_array(real, mode="r+"), zf.open_array(link, mode="r+")]
    start = threading.Barrier(2)

    def work(k: int) -> int:
        start.wait()
        lost = 0
        for i in range(300):
            if arrays[k][0, k] != i:
                lost += 1
            arrays[k][0, k] = i + 1
        return lost

    with dask.config.set(OFF), ThreadPoolExecutor(2) as pool:
        lost = sum(pool.map(work, range(2)))
    _row("symlinked path and real path, 2 threads x 300 (locks alone)", "—", f"{lost} lost")


# -- tensorstore, the same harnesses (forked before tensorstore is imported here) ----------------
def _ts_open(path: str):
    import tensorstore as ts

    return ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}).result()


def _ts_counter(path, cols, rounds, start, results) -> None:
    try:
        t = _ts_open(path)
        start.wait()
        lost = 0
        for i in range(rounds):
            if (t[0, cols].read().result() != i).any():
                lost += 1
            t[0, cols].write(np.full(2, i + 1, "i4")).result()
        results.put(lost)
    except BaseException as e:  # reported to the parent
        results.put(repr(e))


def _ts_reader(path, reads, start, results) -> None:
    try:
        t = _ts_open(path)
        start.wait()
        mixed = 0
        for _ in range(reads):
            if len(np.unique(t[0, ::8].read().result())) > 1:
                mixed += 1
        results.put(mixed)
    except BaseException as e:
        results.put(repr(e))


def _forked(target, argsets: list[tuple]) -> list:
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(len(argsets)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, start, results)) for a in argsets]
    for p in procs:
        p.start()
    out = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(30)
    bad = [o for o in out if isinstance(o, str)]
    if bad:
        raise RuntimeError(bad[0])
    return out


def tensorstore_rows(base: str, rounds: int, reads: int) -> None:
    if "tensorstore" in sys.modules:  # pragma: no cover - forked children must import it afresh
        raise RuntimeError("run the tensorstore rows before tensorstore is imported")
    for sharded in (False, True):
        url = _new(base)
        _counter_array(url, sharded, None)
        lost = sum(_forked(_ts_counter, [(url, slice(2 * k, 2 * k + 2), rounds) for k in range(4)]))
        what = "shard" if sharded else "chunk"
        _row(f"tensorstore: 4 processes writing parts of one {what} (local)",
             f"{lost} of {4 * rounds} lost", "—")  # fmt: skip
    url = _new(base)
    a = zf.create(url, shape=(1, 64), chunks=(1, 4), shards=(1, 64), dtype="i4")
    a[...] = 1
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()

    def rewrite() -> None:
        b, v = zf.open_array(url, mode="r+"), 2
        while not stop.is_set():
            b[...] = v
            v += 1

    writer = ctx.Process(target=rewrite)
    writer.start()
    try:
        mixed = sum(_forked(_ts_reader, [(url, reads)] * 2))
    finally:
        stop.set()
        writer.join(30)
    _row("tensorstore: 2 processes reading a shard another rewrites (local)",
         f"{mixed} of {2 * reads} mixed", "—")  # fmt: skip


# -- part 2: the cost ------------------------------------------------------------------------------
def _round_robin(cases: dict[str, Callable[[], None]], repeat: int) -> dict[str, list[float]]:
    """One warm-up each, then ``repeat`` rounds of one run of every case (load hits all alike)."""
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def cost(base: str, repeat: int, side: int) -> None:
    import tensorstore as ts

    data = np.random.default_rng(0).random((side, side), dtype="f4").round(2)
    url = _new(base)
    zstd = {"name": "zstd", "configuration": {"level": 1, "checksum": False}}
    codecs = [{"name": "bytes", "configuration": {"endian": "little"}}, zstd]
    a = zf.create(url, shape=data.shape, chunks=(256, 256), dtype="f4", codecs=codecs)
    x = da.from_array(data, chunks=(384, 384))  # cuts every chunk: read-modify-writes
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": url}}).result()
    blocks = [(slice(i, min(i + 384, side)), slice(j, min(j + 384, side)))
              for i in range(0, side, 384) for j in range(0, side, 384)]  # fmt: skip

    def ts_unaligned() -> None:
        futures = [t[b].write(data[b]) for b in blocks]
        for f in futures:
            f.result()

    cases: dict[str, Callable[[], None]] = {}
    for label, settings in (("on", {}), ("off", OFF)):

        def aligned(settings=settings) -> None:
            with dask.config.set(settings):
                a[...] = data

        def unaligned(settings=settings) -> None:
            with dask.config.set(settings):
                zf.to_zarr(x, a, strategy="lock", scheduler="threads")

        cases[f"zarrflow a[...] = x, conditional {label}"] = aligned
        cases[f"zarrflow unaligned to_zarr, conditional {label}"] = unaligned
    cases["tensorstore write(x)"] = lambda: t.write(data).result()
    cases["tensorstore unaligned 384x384 writes"] = ts_unaligned
    mb = data.nbytes / 1e6
    print(f"\n{side}x{side} float32 ({mb:.0f} MB), 256x256 chunks, zstd 1, local files, "
          f"median of {repeat} (min-max):\n")  # fmt: skip
    print("| write | s | MB/s |\n|---|---|---|")
    for name, times in _round_robin(cases, repeat).items():
        med, lo, hi = statistics.median(times), min(times), max(times)
        print(f"| {name} | {med:.3f} ({lo:.3f}-{hi:.3f}) | {mb / med:.0f} |", flush=True)
    np.testing.assert_array_equal(a[...], data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and repetitions")
    parser.add_argument("--no-s3", action="store_true", help="skip the moto S3 rows")
    parser.add_argument("--only", choices=["table", "cost"], help="one part only")
    args = parser.parse_args()
    rounds, reads, repeat = (40, 1000, 3) if args.quick else (125, 5000, 5)
    base = tempfile.mkdtemp(prefix="bench-reliability-")
    if args.only == "cost":
        cost(base, repeat, 1024 if args.quick else 2048)
        return
    print("| scenario | result (zarrflow: mechanism on) | zarrflow: mechanism off |\n|---|---|---|")
    tensorstore_rows(base, rounds, reads)
    lost_updates(base, None, "local", rounds)
    mixed_reads(base, None, "local", reads)
    if not args.no_s3:
        from zarrflow.testing.s3_server import S3Server

        with S3Server(max_seconds=1800) as server:
            server.create_bucket("zfbench")
            options = server.storage_options()
            lost_updates("s3://zfbench", options, "S3, moto", rounds)
            mixed_reads("s3://zfbench", options, "S3, moto", reads // 50)
    appends(base)
    stale_attrs(base)
    failing_chunk(base)
    symlinked(base)
    if args.only is None:
        cost(base, repeat, 1024 if args.quick else 2048)


if __name__ == "__main__":
    sys.exit(main())
