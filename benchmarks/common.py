"""Shared pieces of the benchmark scripts: workloads, timing, peers, ceilings, tables.

Every script follows the rules in BENCHMARKS.md: the same data and codec for
every contender, one warm-up, then the median of at least five repetitions
(min and max shown), throughput in MB/s (10**6 bytes) of *uncompressed*
data, per-chunk cost in µs/chunk, and every comparison as a ratio
``t(contender) / t(zarrflow)``: above 1 means zarrflow is faster.

Repetitions are taken round-robin (``measure_all``): one run of each
contender, then the next round, so a burst of load from a neighbour on this
shared machine hits every contender alike instead of one of them.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import math
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import dask
import numcodecs
import numpy as np

import zarrflow as zf

MB = 1e6
MiB = 2**20
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# -- workloads --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One of the named workloads of BENCHMARKS.md: shape, chunking, dtype and codec."""

    name: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    compressor: Any  # in zarrflow's ``create(compressor=...)`` form
    codec_label: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def nchunks(self) -> int:
        return math.prod(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))

    @property
    def title(self) -> str:
        dims = "×".join(map(str, self.shape))
        chunks = "×".join(map(str, self.chunks))
        return (
            f"{self.name} ({self.codec_label}): {dims} {self.dtype}, {chunks} chunks "
            f"({self.nchunks} chunks, {self.nbytes / MB:.1f} MB)"
        )

    def scaled(self, shape: tuple[int, ...]) -> Workload:
        """The same workload over a different shape (for ``--quick``)."""
        return replace(self, shape=shape)

    def data(self, seed: int = 0) -> np.ndarray:
        """A smooth field plus noise, in the workload's dtype."""
        return smooth_field(self.shape, self.dtype, seed=seed)

    def numcodec(self) -> numcodecs.abc.Codec:
        """The numcodecs codec the workload's compressor names (for the codec ceiling)."""
        name, options = (
            (self.compressor, {}) if isinstance(self.compressor, str) else self.compressor
        )
        config = {"id": name, **options}
        if name == "zstd":
            config.setdefault("level", 3)  # zarrflow's default level, as its metadata says
        return numcodecs.get_codec(config)

    def create(self, path: str, **kwargs: Any) -> zf.Array:
        """A new zarrflow array of this workload at ``path`` (Zarr v3)."""
        return zf.create(
            path,
            shape=self.shape,
            chunks=self.chunks,
            dtype=self.dtype,
            compressor=self.compressor,
            overwrite=True,
            **kwargs,
        )


ZSTD3 = ("zstd", {"level": 3})
BLOSC_LZ4 = ("blosc", {"cname": "lz4", "clevel": 5, "shuffle": 1})

SEED = Workload("seed", (1000, 1000), (100, 100), "int32", "zstd", "zstd")
LARGE_ZSTD = Workload("large", (8192, 8192), (512, 512), "float32", ZSTD3, "zstd-3")
LARGE_BLOSC = Workload("large", (8192, 8192), (512, 512), "float32", BLOSC_LZ4, "blosc-lz4+shuffle")
SMALL_CHUNKS = Workload("small-chunks", (4096, 4096), (64, 64), "uint8", "zstd", "zstd")
QUICK_LARGE_SHAPE = (4096, 4096)


def large_workloads(quick: bool) -> list[Workload]:
    """``large`` with both codecs (a quarter of the size with ``--quick``)."""
    workloads = [LARGE_ZSTD, LARGE_BLOSC]
    return [w.scaled(QUICK_LARGE_SHAPE) for w in workloads] if quick else workloads


def smooth_field(shape: Sequence[int], dtype: Any, *, noise: float = 0.02, seed: int = 0):
    """Sines and cosines over the grid plus Gaussian noise.

    Floats keep the field as it is (noise makes the low mantissa bits random,
    as in measured data); integers scale it (``x1000`` for signed types, onto
    0..255 for unsigned ones).
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    axes = np.ix_(
        *(np.linspace(0, 3 * np.pi * (i + 1), n, dtype="f4") for i, n in enumerate(shape))
    )
    field = np.ones(tuple(shape), dtype="f4")
    for i, ax in enumerate(axes):
        field *= np.sin(ax) if i % 2 == 0 else np.cos(ax)
    field += rng.standard_normal(tuple(shape), dtype="f4") * noise
    if dtype.kind == "f":
        return field.astype(dtype, copy=False)
    if dtype.kind == "u":
        return np.clip((field + 1.1) * (255 / 2.2), 0, 255).astype(dtype)
    return np.round(field * 1000).astype(dtype)


# -- timing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Seconds of the repetitions of one measurement: wall clock, and CPU of the process.

    CPU time (all threads of this process, user + system) is the steadier
    figure on a shared machine: a neighbour's load stretches the wall clock
    but not the work we did.
    """

    times: tuple[float, ...]
    cpu_times: tuple[float, ...] = ()

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_times) if self.cpu_times else math.nan

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    def mb_per_s(self, nbytes: int) -> float:
        return nbytes / self.median / MB

    def us_per(self, n: int) -> float:
        return self.median / n * 1e6


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def measure_all(cases: dict[str, Callable[[], Any]], repeat: int = 5) -> dict[str, Timing]:
    """Warm each case up once, then time ``repeat`` rounds of all cases, round-robin.

    Each round starts one case further along, so no case always runs first (after
    a pause, fresh memory costs more to touch on a VM) or always right after
    the same neighbour.
    """
    for fn in cases.values():
        fn()
    names = list(cases)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for r in range(repeat):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            runs[name].append(_timed(cases[name]))
    return {name: Timing(*map(tuple, zip(*r, strict=True))) for name, r in runs.items()}


def measure(fn: Callable[[], Any], repeat: int = 5) -> Timing:
    """Warm up once, then time ``repeat`` runs of ``fn``."""
    return measure_all({"": fn}, repeat)[""]


# -- tables -----------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    timing: Timing
    threads: str
    ref: str
    note: str


@dataclass
class Table:
    """One comparison: rows over the same data, each compared with a reference row.

    ``ratio`` is ``t(row) / t(ref)``; the reference of a row is the table's first
    row unless ``add(..., ref=label)`` names another (single-thread rows are
    compared with zarrflow's single-thread row).
    """

    title: str
    nbytes: int
    nchunks: int
    rows: list[Row] = field(default_factory=list)

    def add(
        self, label: str, timing: Timing, threads: Any = "", ref: str | None = None, note: str = ""
    ) -> Timing:
        ref = ref or (self.rows[0].label if self.rows else label)
        self.rows.append(Row(label, timing, str(threads), ref, note))
        return timing

    def timing(self, label: str) -> Timing:
        return next(r.timing for r in self.rows if r.label == label)

    def relative(self, label: str, to: str, cpu: bool = False) -> float:
        """``t(label) / t(to)``: median wall clock, or median CPU time with ``cpu=True``."""
        a, b = self.timing(label), self.timing(to)
        return a.cpu / b.cpu if cpu else a.median / b.median

    def ratio(self, label: str, cpu: bool = False) -> float:
        """``t(label) / t(its ref)``."""
        row = next(r for r in self.rows if r.label == label)
        return self.relative(label, row.ref, cpu)

    def render(self) -> str:
        head = (
            "| contender | threads | median ms | min ms | max ms | MB/s | µs/chunk "
            "| ratio t/t(ref) | CPU ms | CPU µs/chunk | CPU ratio | ref | note |"
        )
        lines = [f"### {self.title}", "", head, "|" + "---|" * 13]
        for r in self.rows:
            t = r.timing
            ref = "—" if r.ref == r.label else r.ref
            lines.append(
                f"| {r.label} | {r.threads} | {t.median * 1e3:.1f} | {t.min * 1e3:.1f} "
                f"| {t.max * 1e3:.1f} | {t.mb_per_s(self.nbytes):,.0f} "
                f"| {t.us_per(self.nchunks):,.1f} | {self.ratio(r.label):.2f} "
                f"| {t.cpu * 1e3:.1f} | {t.cpu / self.nchunks * 1e6:,.1f} "
                f"| {self.ratio(r.label, cpu=True):.2f} | {ref} | {r.note} |"
            )
        return "\n".join(lines) + "\n"

    def print(self) -> None:
        print(self.render(), flush=True)


@dataclass(frozen=True)
class Case:
    """One contender of a comparison: what to run, on how many threads, compared with what."""

    fn: Callable[[], Any]
    threads: Any = ""
    ref: str | None = None
    note: str = ""


def run_table(title: str, nbytes: int, nchunks: int, cases: dict[str, Case], repeat: int) -> Table:
    """Measure ``cases`` round-robin and gather them in a :class:`Table` (in the given order)."""
    timings = measure_all({label: case.fn for label, case in cases.items()}, repeat)
    table = Table(title, nbytes, nchunks)
    for label, case in cases.items():
        table.add(label, timings[label], case.threads, case.ref, case.note)
    return table


def markdown_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain markdown table (for results that are not timings: memory, goals)."""
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


@dataclass
class Goals:
    """The issue's goals, each checked against a measured figure."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def at_most(self, goal: str, value: float, limit: float = 1.0, unit: str = "") -> None:
        """A goal met when ``value <= limit`` (times, µs/chunk, ratios t/t(peer))."""
        verdict = "met" if value <= limit else "missed"
        margin = limit / value if value else math.inf
        self.rows.append(
            (
                goal,
                f"{value:,.2f} {unit}".strip(),
                f"≤ {limit:,.2f} {unit}".strip(),
                f"{verdict} ({margin:.2f}×)",
            )
        )

    def print(self) -> None:
        header = ("goal", "measured", "target", "verdict (target / measured)")
        print(markdown_table("Goals", header, self.rows), flush=True)


# -- command line and environment -------------------------------------------------------------


def parse_args(description: str | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(description or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller data: a smoke run, not a figure")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions (default 5)")
    args = p.parse_args()
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return "not installed"
    if module == "tensorstore":
        from importlib.metadata import version

        return version("tensorstore")
    return getattr(mod, "__version__", "?")


def print_header(script: str, args: argparse.Namespace) -> None:
    """What ran, where and with what: the context every table needs."""
    versions = ", ".join(
        f"{m} {_version(m)}"
        for m in ("zarrflow", "zarr", "zarrs", "tensorstore", "dask", "numcodecs", "numpy")
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mode = "--quick (smoke run: smaller data)" if args.quick else "full"
    print(f"## `python benchmarks/{script}`{' --quick' if args.quick else ''}\n")
    print(f"- {time.strftime('%Y-%m-%d %H:%M:%S')}, Python {platform.python_version()}, {versions}")
    print(f"- {CORES} usable cores, load average at start {load}; mode {mode}; {args.repeat} reps")
    print("- ratio = t(contender) / t(ref): above 1 means the reference (zarrflow) is faster\n")
    sys.stdout.flush()


@contextlib.contextmanager
def scratch_dir() -> Iterator[str]:
    """A temporary directory for the data, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="zarrflow-bench-") as path:
        yield path


def optional(module: str):
    """The module, or None when it is not installed (that peer is skipped)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        print(f"> {module} is not installed: its rows are skipped\n")
        return None


# -- zarrflow and the peers -------------------------------------------------------------------


def sync_scheduler():
    """Dask's single-threaded scheduler: zarrflow's ``a[:]`` then runs inline."""
    return dask.config.set(scheduler="sync")


def zarr_array(path: str, mode: str = "r"):
    """zarr-python 3's view of the array at ``path``."""
    import zarr

    return zarr.open_array(path, mode=mode)


def zarrs_array(path: str, mode: str = "r"):
    """zarr-python 3's view of the array at ``path`` with the Rust ``zarrs`` codec pipeline.

    The pipeline is chosen when the array is opened, so only this view uses it
    (zarr-python's own rows keep its default pipeline).
    """
    import zarr

    with zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"}):
        return zarr.open_array(path, mode=mode)


def ts_array(path: str, threads: int | None = None):
    """tensorstore's zarr3 view of the array at ``path`` (``threads`` caps its pools)."""
    import tensorstore as ts

    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}
    context = None
    if threads is not None:
        limit = {"limit": threads}
        context = ts.Context({"data_copy_concurrency": limit, "file_io_concurrency": limit})
    return ts.open(spec, context=context).result()


def check_equal(what: str, got: np.ndarray, expected: np.ndarray) -> None:
    """A benchmark of wrong results is worthless: stop when a contender disagrees."""
    if not np.array_equal(got, expected):
        raise RuntimeError(f"{what}: the result differs from the source data")


# -- ceilings: what the hardware and the codec allow ------------------------------------------


def chunk_slices(shape: Sequence[int], chunks: Sequence[int]) -> list[tuple[slice, ...]]:
    """The region of every chunk, in grid order."""
    grids = [range(0, s, c) for s, c in zip(shape, chunks, strict=True)]
    regions = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, len(shape))
    return [
        tuple(slice(int(o), min(int(o) + c, s)) for o, c, s in zip(r, chunks, shape, strict=True))
        for r in regions
    ]


def chunk_paths(array: zf.Array, root: str) -> list[str]:
    """The file of every chunk of a local array stored at ``root``, in grid order."""
    grid = np.ndindex(*array.chunk_grid_shape)
    return [os.path.join(root, array.metadata.chunk_key(idx)) for idx in grid]


def read_file(path: str) -> bytes:
    """One file's bytes the way a minimal reader gets them: open, fstat, read, close."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


class Threads:
    """A fixed pool mapping a function over items in ``n`` contiguous batches."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pool = ThreadPoolExecutor(n) if n > 1 else None

    def run(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> None:
        if self.pool is None:
            for item in items:
                fn(item)
            return
        size = -(-len(items) // self.n)

        def batch(i: int) -> None:
            for item in items[i : i + size]:
                fn(item)

        list(self.pool.map(batch, range(0, len(items), size)))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


@contextlib.contextmanager
def thread_pools(*counts: int) -> Iterator[dict[int, Threads]]:
    pools = {n: Threads(n) for n in counts}
    try:
        yield pools
    finally:
        for p in pools.values():
            p.close()


def _per_pool(
    label: str,
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    pools: dict[int, Threads],
    single_ref: str | None,
) -> dict[str, Case]:
    """One ceiling case per pool size; the 1-thread case is compared with ``single_ref``."""
    return {
        f"ceiling: {label} ({n} thr)": Case(
            lambda p=pool: p.run(fn, items), n, single_ref if n == 1 else None
        )
        for n, pool in pools.items()
    }


def read_ceilings(
    workload: Workload, array: zf.Array, root: str, pools: dict[int, Threads], single_ref: str
) -> dict[str, Case]:
    """Codec-only decode, raw page-cache file reads and numpy memcpy of the same data.

    Decode writes into chunk-shaped buffers (the scatter into the full array
    is what the memcpy row costs).
    """
    codec = workload.numcodec()
    paths = chunk_paths(array, root)
    encoded = [read_file(p) for p in paths]
    outs = np.empty((len(encoded), *workload.chunks), dtype=workload.dtype)
    jobs = list(zip(encoded, outs, strict=True))
    src = np.ones(workload.shape, workload.dtype)
    dst = np.empty_like(src)

    def decode(job: tuple[bytes, np.ndarray]) -> None:
        codec.decode(job[0], out=job[1])

    return {
        **_per_pool("codec decode", decode, jobs, pools, single_ref),
        **_per_pool("raw file reads", read_file, paths, pools, single_ref),
        "ceiling: numpy memcpy": Case(lambda: np.copyto(dst, src), 1),
    }


def write_ceilings(
    workload: Workload, data: np.ndarray, root: str, pools: dict[int, Threads], single_ref: str
) -> dict[str, Case]:
    """Codec-only encode, raw file writes of the encoded bytes, and numpy memcpy."""
    codec = workload.numcodec()
    chunks = [np.ascontiguousarray(data[s]) for s in chunk_slices(workload.shape, workload.chunks)]
    raw_dir = os.path.join(root, "raw-writes")
    os.makedirs(raw_dir, exist_ok=True)
    files = [(os.path.join(raw_dir, str(i)), bytes(codec.encode(c))) for i, c in enumerate(chunks)]
    dst = np.empty_like(data)

    def write(item: tuple[str, bytes]) -> None:
        write_file(*item)

    return {
        **_per_pool("codec encode", codec.encode, chunks, pools, single_ref),
        **_per_pool("raw file writes", write, files, pools, single_ref),
        "ceiling: numpy memcpy": Case(lambda: np.copyto(dst, data), 1),
    }


def stored_bytes(root: str) -> int:
    """Total size of the files below ``root``."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files)


# -- memory -----------------------------------------------------------------------------------


class PeakRSS:
    """Sample this process's resident set size in a thread; ``peak`` and ``baseline`` in bytes.

    >>> with PeakRSS() as rss:
    ...     block = np.ones(50 * MiB // 8)
    >>> rss.peak - rss.baseline >= 0
    True
    """

    def __init__(self, interval: float = 0.001) -> None:
        import psutil

        self._process = psutil.Process()
        self.interval = interval
        self.baseline = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.baseline = self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = max(self.peak, self._process.memory_info().rss)
        self._stop.set()
        self._thread.join()


class TracedPeak:
    """The peak of live allocations (tracemalloc, numpy's buffers included), in bytes."""

    def __enter__(self) -> TracedPeak:
        gc.collect()
        tracemalloc.start()
        self.baseline, _ = tracemalloc.get_traced_memory()
        self.peak = self.baseline
        return self

    def __exit__(self, *exc: object) -> None:
        _, self.peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()


def run_isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh interpreter, so one case's memory never counts for another."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)
