"""Streaming: ``chunk_stream`` and ``parallel_chunk_map`` on the seed array, and their memory.

``seed``: sequential against parallel ``chunk_stream`` at concurrency 2, 4 and
8, ordered and unordered, each chunk going through a numpy reduction in the
consumer; ``parallel_chunk_map`` running the same reduction inside the tasks;
and the same walk with the peers (zarr-python and tensorstore, chunk by
chunk) and with one full read. ``stream-memory``: the peak resident memory of
streaming the ``large`` array (256 chunks of 1 MiB) against reading it all,
each case in a fresh interpreter.

Run: ``python benchmarks/bench_stream.py [--quick] [--repeat N]``
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable

import numpy as np

import zarrflow as zf
from common import (
    LARGE_ZSTD,
    MB,
    QUICK_LARGE_SHAPE,
    SEED,
    Case,
    PeakRSS,
    Table,
    TracedPeak,
    chunk_slices,
    markdown_table,
    optional,
    parse_args,
    print_header,
    run_isolated,
    run_table,
    scratch_dir,
    ts_array,
    zarr_array,
)

SEQUENTIAL = "`chunk_stream()` (sequential)"
SEED_REPEAT_FACTOR = 3  # the seed walk takes milliseconds: more repetitions cost little
MEMORY_RUNS = 3  # fresh interpreters per memory case


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


def stream_cases(a: zf.Array, peers: dict, path: str) -> dict[str, Case]:
    """The seed walk: zarrflow's streams, one full read, and the peers chunk by chunk."""
    regions = chunk_slices(a.shape, a.chunks)
    cases = {SEQUENTIAL: Case(lambda: consume(a.chunk_stream()), 1)}
    for parallel in (2, 4, 8):
        for ordered in (True, False):
            label = f"`chunk_stream(parallel={parallel}, ordered={ordered})`"
            cases[label] = Case(
                lambda p=parallel, o=ordered: consume(a.chunk_stream(parallel=p, ordered=o)),
                parallel,
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


def bench_memory(root: str, quick: bool, peers: dict) -> str:
    wl = LARGE_ZSTD.scaled(QUICK_LARGE_SHAPE) if quick else LARGE_ZSTD
    path = os.path.join(root, "stream-memory.zarr")
    a = wl.create(path)
    a[:] = wl.data()
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


def main() -> None:
    args = parse_args(__doc__)
    print_header("bench_stream.py", args)
    peers = {"zarr": optional("zarr"), "tensorstore": optional("tensorstore")}
    with scratch_dir() as root:
        bench_seed(root, peers, args.repeat).print()
        print(bench_memory(root, args.quick, peers), flush=True)


if __name__ == "__main__":
    main()
