"""Streaming: ``chunk_stream`` and ``parallel_chunk_map`` on the seed array, and their memory.

``seed``: sequential against parallel ``chunk_stream`` at concurrency 2, 4 and
8, ordered and unordered, each chunk going through a numpy reduction in the
consumer; the same streams forced onto Dask tasks
(``zarrflow.stream_inline_seconds=0``: a stream this short otherwise stays in
the caller's thread); ``parallel_chunk_map`` running the same reduction inside
the tasks; the ceiling of two threads of our own reading and reducing with no
hand-off at all; and the same walk with the peers (zarr-python and
tensorstore, chunk by chunk) and with one full read. ``latency``: the seed
walk behind a store that waits 5 ms before every read (an object store's
round trip). ``large stream``: the same walk over the ``large`` array (1 MiB
chunks, milliseconds of decoding each), long enough to go parallel.
``stream-memory``: the peak resident memory of streaming the ``large`` array
(256 chunks of 1 MiB) against reading it all, each case in a fresh
interpreter.

``cluster``: the same array (256 float32 chunks of 256 KiB) read on a
2-worker ``distributed.LocalCluster`` (processes, 1 thread each) and on local
threads: ``parallel_chunk_map`` and ``reduce_chunks`` of a per-chunk sum
against ``to_dask().sum().compute()``, and ``chunk_stream(parallel=4)`` to the
client against ``to_dask().compute()`` of the same bytes, as ratios; with the
peak live allocations (tracemalloc) on the busiest worker and in the client,
each measured in one more run. ``--only cluster`` runs this table alone.

``--baseline SRC`` adds a before/after table: the seed and latency walks run
in fresh interpreters that import zarrflow from ``SRC`` (another checkout's
``src``, e.g. ``git worktree add /tmp/before HEAD~1``) and from this one,
alternating, in the same run on the same data.

Run: ``python benchmarks/bench_stream.py [--quick] [--repeat N] [--baseline SRC] [--only cluster]``
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask
import numpy as np

import zarrflow as zf
from common import (
    CORES,
    LARGE_ZSTD,
    MB,
    QUICK_LARGE_SHAPE,
    SEED,
    Case,
    PeakRSS,
    Table,
    TracedPeak,
    Workload,
    chunk_slices,
    markdown_table,
    measure_all,
    optional,
    parse_args,
    print_header,
    run_isolated,
    run_table,
    scratch_dir,
    ts_array,
    zarr_array,
)
from zarrflow.storage import Store

SEQUENTIAL = "`chunk_stream()` (sequential)"
SEED_REPEAT_FACTOR = 3  # the seed walk takes milliseconds: more repetitions cost little
MEMORY_RUNS = 3  # fresh interpreters per memory case
LATENCY = 0.005  # seconds before every read of the latency walk
ON_TASKS = {"zarrflow.stream_inline_seconds": 0}  # no stream stays in the caller's thread


def process(chunk: np.ndarray) -> float:
    """The per-chunk step: a numpy reduction (root mean square)."""
    return float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))


def consume(chunks: Iterable[tuple[object, np.ndarray]]) -> float:
    """Run ``process`` over a stream of ``(index, chunk)`` pairs in the consumer."""
    return sum(process(chunk) for _, chunk in chunks)


def map_process(idx: tuple[int, ...], chunk: np.ndarray) -> float:
    return process(chunk)


def process_regions(data: np.ndarray, regions: Iterable[tuple[slice, ...]]) -> float:
    """The same reduction over the chunk regions of an array already in memory."""
    return sum(process(data[r]) for r in regions)


def on_tasks(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` with every stream forced onto Dask tasks, however short."""

    def run() -> object:
        with dask.config.set(ON_TASKS):
            return fn()

    return run


class NoHandOff:
    """The ceiling: ``CORES`` threads of our own, each reading and reducing its share of chunks.

    The same read as the streams (``ReadChunks``, one chunk per call), on
    threads started once, with one hand-off per thread per walk instead of one
    per batch.
    """

    def __init__(self, a: zf.Array) -> None:
        # here, not at import: a --baseline child may import an older zarrflow
        from zarrflow.parallel.stream import ReadChunks

        work, grid = ReadChunks(a.engine), list(np.ndindex(*a.chunk_grid_shape))
        self.parts = [[(work, i) for i in grid[k::CORES]] for k in range(CORES)]
        self.pool = ThreadPoolExecutor(CORES)

    @staticmethod
    def _part(items: list) -> float:
        return sum(process(work([i])[0][1]) for work, i in items)

    def __call__(self) -> float:
        return sum(self.pool.map(self._part, self.parts))


def stream_cases(a: zf.Array, peers: dict, path: str) -> dict[str, Case]:
    """The seed walk: zarrflow's streams, one full read, and the peers chunk by chunk."""
    regions = chunk_slices(a.shape, a.chunks)
    cases = walk_cases(a)
    for parallel in (2, 8):
        label = f"`chunk_stream(parallel={parallel})` forced onto tasks"
        cases[label] = Case(
            on_tasks(lambda p=parallel: consume(a.chunk_stream(parallel=p))),
            parallel,
            note="`zarrflow.stream_inline_seconds=0`",
        )
    for parallel in (2, 8):
        label = f"`parallel_chunk_map(process, max_concurrency={parallel}, ordered=False)`"
        cases[label] = Case(
            lambda p=parallel: sum(
                r for _, r in a.parallel_chunk_map(map_process, max_concurrency=p, ordered=False)
            ),
            parallel,
            note="reduction inside the tasks",
        )
    cases[f"ceiling: {CORES} threads of our own, no hand-off"] = Case(
        NoHandOff(a), CORES, note="what threads can gain here at best"
    )
    cases["`a[:]`, then the reduction per chunk region"] = Case(
        lambda: process_regions(a[:], regions), "Dask threads"
    )
    if peers["zarr"]:
        z = zarr_array(path)
        cases["zarr-python `arr[region]`, chunk by chunk"] = Case(
            lambda: sum(process(z[r]) for r in regions), "asyncio"
        )
    if peers["tensorstore"]:
        t = ts_array(path)
        cases["tensorstore `t[region].read()`, chunk by chunk"] = Case(
            lambda: sum(process(t[r].read().result()) for r in regions), "own pools"
        )
        cases["tensorstore, every chunk's read issued at once"] = Case(
            lambda: sum(process(f.result()) for f in [t[r].read() for r in regions]),
            "own pools",
            note="unbounded memory",
        )
    return cases


def walk_cases(a: zf.Array, levels: tuple[int, ...] = (2, 4, 8)) -> dict[str, Case]:
    """Sequential and parallel ``chunk_stream`` walks of ``a``, ordered and unordered."""
    cases = {SEQUENTIAL: Case(lambda: consume(a.chunk_stream()), 1)}
    for parallel in levels:
        for ordered in (True, False):
            label = f"`chunk_stream(parallel={parallel}, ordered={ordered})`"
            cases[label] = Case(
                lambda p=parallel, o=ordered: consume(a.chunk_stream(parallel=p, ordered=o)),
                parallel,
            )
    return cases


def bench_seed(root: str, peers: dict, repeat: int) -> Table:
    path = os.path.join(root, "seed.zarr")
    a = SEED.create(path)
    a[:] = data = SEED.data()
    expected = consume(a.chunk_stream())
    if not np.isclose(expected, process_regions(data, chunk_slices(a.shape, a.chunks))):
        raise RuntimeError("chunk_stream disagrees with the source data")
    cases = stream_cases(a, peers, path)
    title = f"chunk streaming with a per-chunk reduction — {SEED.title}"
    return run_table(title, SEED.nbytes, SEED.nchunks, cases, repeat * SEED_REPEAT_FACTOR)


# -- latency and large streams ----------------------------------------------------------------


class LatencyStore(Store):
    """A store that waits ``latency`` seconds before every read, like a request over a network."""

    def __init__(self, inner: Store, latency: float) -> None:
        self.inner, self.latency = inner, latency
        self.url, self.read_only = inner.url, inner.read_only

    def get(self, key):
        time.sleep(self.latency)
        return self.inner.get(key)

    def get_range(self, key, request):
        time.sleep(self.latency)
        return self.inner.get_range(key, request)

    def set(self, key, value):
        self.inner.set(key, value)

    def delete(self, key):
        self.inner.delete(key)

    def list_prefix(self, prefix):
        return self.inner.list_prefix(prefix)


def slow_array(path: str) -> zf.Array:
    return zf.open_array(LatencyStore(zf.open(path).store, LATENCY), mode="r")


def bench_latency(root: str, repeat: int) -> Table:
    """The seed walk behind 5 ms per read: a store where waiting, not decoding, is the work."""
    a = slow_array(os.path.join(root, "seed.zarr"))
    cases = walk_cases(a)
    cases["`parallel_chunk_map(process, max_concurrency=8, ordered=False)`"] = Case(
        lambda: sum(
            r for _, r in a.parallel_chunk_map(map_process, max_concurrency=8, ordered=False)
        ),
        8,
        note="reduction inside the tasks",
    )
    title = f"latency — the seed walk, {LATENCY * 1e3:.0f} ms before every read — {SEED.title}"
    return run_table(title, SEED.nbytes, SEED.nchunks, cases, repeat)


def bench_large_stream(path: str, wl, repeat: int) -> Table:
    """The walk over 1 MiB chunks: milliseconds of decoding each, so streams go parallel."""
    a = zf.open(path, mode="r")
    cases = walk_cases(a, levels=(2, 8))
    cases[f"ceiling: {CORES} threads of our own, no hand-off"] = Case(
        NoHandOff(a), CORES, note="what threads can gain here at best"
    )
    cases["`a[:]`, then the reduction per chunk region"] = Case(
        lambda: process_regions(a[:], chunk_slices(a.shape, a.chunks)), "Dask threads"
    )
    title = f"large stream — chunk streaming with a per-chunk reduction — {wl.title}"
    return run_table(title, wl.nbytes, a.nchunks, cases, repeat)


# -- stream-memory ----------------------------------------------------------------------------


def _stream(parallel: int, ordered: bool = True) -> Callable[[zf.Array], object]:
    return lambda a: consume(a.chunk_stream(parallel=parallel, ordered=ordered))


def _zarr_read_all(a: zf.Array) -> object:
    return zarr_array(a.store.root)[:]


MEMORY_CASES: dict[str, tuple[Callable[[zf.Array], object], int | None]] = {
    # label: (what runs, chunks the documented bound allows: 2 × parallel, or 1 sequentially)
    "`chunk_stream()` (sequential)": (_stream(1), 1),
    "`chunk_stream(parallel=8)`": (_stream(8), 16),
    "`chunk_stream(parallel=8, ordered=False)`": (_stream(8, ordered=False), 16),
    "`parallel_chunk_map(process, max_concurrency=8)`": (
        lambda a: sum(r for _, r in a.parallel_chunk_map(map_process, max_concurrency=8)),
        16,
    ),
    "`a.to_dask().map_blocks(np.square).sum().compute()`": (
        lambda a: a.to_dask().map_blocks(np.square).sum().compute(),
        None,
    ),
    "`a[:]` (read it all)": (lambda a: a[:], None),
    "zarr-python `arr[:]` (read it all)": (_zarr_read_all, None),
}


def _memory_run(path: str, label: str, traced: bool) -> tuple[int, float]:
    """In a fresh interpreter: the peak memory ``label`` adds (bytes), and its time.

    ``traced=False`` samples the resident set size (what the OS sees, allocator
    caches included); ``traced=True`` asks tracemalloc for the peak of live
    allocations (numpy's buffers included): the figure the documented bound is about.
    """
    a = zf.open(path)
    a[0:1, 0:1]  # codec contexts and imports belong to the baseline, not to the case
    run, _ = MEMORY_CASES[label]
    probe = TracedPeak() if traced else PeakRSS()
    with probe:
        t0 = time.perf_counter()
        run(a)
        seconds = time.perf_counter() - t0
    return probe.peak - probe.baseline, seconds


def large_array(root: str, quick: bool):
    """The ``large`` array (zstd-3) written once for the large-stream and memory tables."""
    wl = LARGE_ZSTD.scaled(QUICK_LARGE_SHAPE) if quick else LARGE_ZSTD
    path = os.path.join(root, "stream-memory.zarr")
    wl.create(path)[:] = wl.data()
    return path, wl


def bench_memory(path: str, wl, peers: dict) -> str:
    a = zf.open(path, mode="r")
    chunk_mb = a.nbytes / a.nchunks / MB
    rows = []
    for label, (_, in_flight) in MEMORY_CASES.items():
        if label.startswith("zarr-python") and not peers["zarr"]:
            continue
        runs = [run_isolated(_memory_run, path, label, False) for _ in range(MEMORY_RUNS)]
        traced, _ = run_isolated(_memory_run, path, label, True)
        peaks = [p / MB for p, _ in runs]
        rows.append(
            (
                label,
                f"{statistics.median(peaks):.1f}",
                f"{min(peaks):.1f} – {max(peaks):.1f}",
                f"{traced / MB:.1f}",
                f"{in_flight * chunk_mb:.1f}" if in_flight else "—",
                f"{statistics.median(s for _, s in runs) * 1e3:.0f}",
            )
        )
    header = (
        "case",
        "peak RSS above baseline, median MB",
        "min – max MB",
        "peak live allocations (tracemalloc) MB",
        "documented bound (decoded chunks held) MB",
        "median ms",
    )
    title = (
        f"stream-memory — {wl.title}; RSS sampled every 1 ms in {MEMORY_RUNS} fresh "
        "interpreters per case, tracemalloc in one more"
    )
    return markdown_table(title, header, rows)


# -- cluster ----------------------------------------------------------------------------------
CLUSTER = Workload("cluster", (4096, 4096), (256, 256), "float32", "zstd", "zstd")


def chunk_sum(idx: tuple[int, ...], chunk: np.ndarray) -> float:
    return float(chunk.sum(dtype=np.float64))


def stream_bytes(chunks: Iterable[tuple[object, np.ndarray]]) -> int:
    """Take every chunk to the client and only count it: the wire is the work."""
    return sum(chunk.nbytes for _, chunk in chunks)


def cluster_cases(a: zf.Array, scheduler: Any) -> dict[str, tuple[Callable[[], object], str]]:
    """label -> (what runs, the label of the ``to_dask`` case it is compared with)."""
    dask_sum, dask_all = "`a.to_dask().sum().compute()`", "`a.to_dask().compute()`"
    return {
        dask_sum: (lambda: float(a.to_dask().sum().compute(scheduler=scheduler)), dask_sum),
        "`parallel_chunk_map(chunk_sum)`, summed in the client": (
            lambda: sum(r for _, r in a.parallel_chunk_map(chunk_sum, scheduler=scheduler)),
            dask_sum,
        ),
        "`reduce_chunks(chunk_sum, operator.add)`": (
            lambda: a.reduce_chunks(chunk_sum, operator.add, scheduler=scheduler),
            dask_sum,
        ),
        dask_all: (lambda: a.to_dask().compute(scheduler=scheduler).nbytes, dask_all),
        "`chunk_stream(parallel=4)` to the client": (
            lambda: stream_bytes(a.chunk_stream(parallel=4, scheduler=scheduler)),
            dask_all,
        ),
    }


def _start_tracing() -> None:
    tracemalloc.start()


def _traced_peak() -> int:
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def _peaks(run: Callable[[], object], client: Any) -> tuple[float, float]:
    """Peak live allocations (MB) of one run: the busiest worker's (or nan), the client's."""
    if client is not None:
        client.run(_start_tracing)
    with TracedPeak() as traced:
        run()
    worker = max(client.run(_traced_peak).values()) / MB if client is not None else math.nan
    return worker, (traced.peak - traced.baseline) / MB


def _cluster_rows(cases: dict, repeat: int, client: Any, where: str) -> list[tuple]:
    timings = measure_all({label: fn for label, (fn, _) in cases.items()}, repeat)
    rows = []
    for label, (fn, ref) in cases.items():
        t, r = timings[label], timings[ref]
        worker, client_mb = _peaks(fn, client)
        rows.append(
            (
                where,
                label,
                f"{t.median * 1e3:.0f}",
                f"{t.min * 1e3:.0f} – {t.max * 1e3:.0f}",
                "—" if ref == label else f"{t.median / r.median:.2f}",
                "—" if math.isnan(worker) else f"{worker:.1f}",
                f"{client_mb:.1f}",
            )
        )
    return rows


def bench_cluster(root: str, repeat: int) -> str:
    """Streams, maps and reductions on a 2-worker LocalCluster and on threads, against to_dask."""
    from distributed import Client, LocalCluster

    path = os.path.join(root, "cluster.zarr")
    CLUSTER.create(path)[:] = CLUSTER.data()
    a = zf.open(path, mode="r")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        rows = _cluster_rows(cluster_cases(a, client), repeat, client, "cluster")
    rows += _cluster_rows(cluster_cases(a, "threads"), repeat, None, f"{CORES} threads")
    header = (
        "where",
        "case",
        "median ms",
        "min – max ms",
        "ratio t / t(to_dask)",
        "peak worker MB (tracemalloc)",
        "peak client MB (tracemalloc)",
    )
    chunk_mb = math.prod(CLUSTER.chunks) * np.dtype(CLUSTER.dtype).itemsize / MB
    batch = dask.config.get("zarrflow.task_target_bytes") // int(chunk_mb * MB)
    title = (
        f"cluster — {CLUSTER.title}; 2-worker LocalCluster (processes, 1 thread each) and "
        f"local threads; goals: ratios ≤ 1.5 on the cluster, ≤ 1.2 on threads; on the "
        f"cluster a task reads {batch} chunks, so `chunk_stream(parallel=4)` holds at most "
        f"2 × 4 × {batch} chunks ({2 * 4 * batch * chunk_mb:.1f} MB)"
    )
    return markdown_table(title, header, rows)


# -- before / after ---------------------------------------------------------------------------


def walk_timings(path: str, walk: str, repeat: int) -> dict:
    """The seed or latency walk's cases, timed round-robin: wall seconds per repetition."""
    a = zf.open(path, mode="r") if walk == "seed" else slow_array(path)
    timings = measure_all({label: c.fn for label, c in walk_cases(a).items()}, repeat)
    return {"zarrflow": zf.__file__, "times": {k: list(t.times) for k, t in timings.items()}}


def _child(src: str, path: str, walk: str, repeat: int) -> dict:
    """``walk_timings`` in a fresh interpreter importing zarrflow from ``src``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, __file__, "--child", path, walk, str(repeat)]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_against(baseline: str, root: str, repeat: int, rounds: int = 2) -> str:
    """The seed and latency walks under ``baseline``'s zarrflow and this one, alternating."""
    trees = {"before": baseline, "after": str(Path(zf.__file__).resolve().parents[1])}
    path = os.path.join(root, "seed.zarr")
    rows, sources = [], {}
    for walk, reps in (("seed", repeat * SEED_REPEAT_FACTOR), ("latency", repeat)):
        times: dict[str, dict[str, list[float]]] = {side: {} for side in trees}
        for r in range(rounds):
            for side in list(trees)[:: 1 if r % 2 == 0 else -1]:
                result = _child(trees[side], path, walk, reps)
                sources[side] = result["zarrflow"]
                for label, t in result["times"].items():
                    times[side].setdefault(label, []).extend(t)
        med = {side: {k: statistics.median(v) for k, v in t.items()} for side, t in times.items()}
        for label, after in med["after"].items():
            before = med["before"][label]
            rows.append(
                (
                    walk,
                    label,
                    f"{before * 1e3:.1f}",
                    f"{med['before'][SEQUENTIAL] / before:.2f}",
                    f"{after * 1e3:.1f}",
                    f"{med['after'][SEQUENTIAL] / after:.2f}",
                    f"{before / after:.2f}",
                )
            )
    header = (
        "walk",
        "stream",
        "before: median ms",
        "before: speed vs sequential",
        "after: median ms",
        "after: speed vs sequential",
        "before / after",
    )
    title = (
        f"before / after — {SEED.title}; {rounds} fresh interpreters per side and walk, "
        f"alternating; before = {sources['before']}, after = {sources['after']}"
    )
    return markdown_table(title, header, rows)


def own_args() -> argparse.Namespace:
    """``--baseline`` and the internal ``--child``, taken out before the common options."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--baseline", metavar="SRC")
    p.add_argument("--child", nargs=3, metavar=("PATH", "WALK", "REPEAT"))
    p.add_argument("--only", choices=["cluster"])
    own, rest = p.parse_known_args()
    sys.argv[1:] = rest
    return own


def main() -> None:
    own = own_args()
    if own.child:
        path, walk, repeat = own.child
        print(json.dumps(walk_timings(path, walk, int(repeat))), flush=True)
        return
    args = parse_args(__doc__)
    print_header("bench_stream.py", args)
    peers = {"zarr": optional("zarr"), "tensorstore": optional("tensorstore")}
    with scratch_dir() as root:
        if own.only == "cluster":
            print(bench_cluster(root, args.repeat), flush=True)
            return
        bench_seed(root, peers, args.repeat).print()
        bench_latency(root, args.repeat).print()
        if own.baseline:
            print(bench_against(own.baseline, root, args.repeat), flush=True)
        path, wl = large_array(root, args.quick)
        bench_large_stream(path, wl, args.repeat).print()
        print(bench_memory(path, wl, peers), flush=True)
        print(bench_cluster(root, args.repeat), flush=True)


if __name__ == "__main__":
    main()
