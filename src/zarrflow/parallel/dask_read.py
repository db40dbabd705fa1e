"""Reading through Dask: ``Array.to_dask`` and parallel ``Array.__getitem__``.

``to_dask`` builds one lazy Blockwise layer (a million-chunk array gives its dask
array in about a millisecond, no million-key dict). Each block is one read task
named ``zarrflow-read-<token>``; no lock is taken on reads.

**Several chunks per task.** Dask spends roughly 70–140 µs scheduling a task, so
a task that reads one tiny chunk is mostly overhead. Blocks therefore hold
several whole chunks when chunks are small: starting from one chunk, a block
grows along the last axis, then the one before it, until it reaches
``zarrflow.task_target_bytes`` (4 MiB by default) of uncompressed data or
covers the axis. Blocks stay aligned to chunk boundaries, so no chunk is read
by two tasks. ``chunks_per_task`` overrides the rule.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from functools import partial
from typing import Any

import dask
import dask.threaded
import numpy as np

from zarrflow.chunks import ChunkEngine
from zarrflow.indexing import BasicIndexer
from zarrflow.parallel.scheduling import default_parallelism, own_thread_pool, resolve_backend

__all__ = ["TaskScope", "block_shape", "in_task", "parallel_read", "parallel_write", "to_dask"]

_local = threading.local()
_WHOLE_SHARD_BYTES = 64 * 2**20


def in_task() -> bool:
    """True inside a zarrflow task or on a cluster worker: work there stays synchronous."""
    if getattr(_local, "depth", 0):
        return True
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


class TaskScope:
    """``with TaskScope():`` marks the calling thread as inside a task: reads stay inline.

    Examples
    --------
    >>> with TaskScope():
    ...     in_task()
    True
    """

    def __enter__(self) -> None:
        _local.depth = getattr(_local, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        _local.depth -= 1


def block_shape(
    chunks: Sequence[int],
    grid_shape: Sequence[int],
    itemsize: int,
    target_bytes: int | None = None,
    chunks_per_task: int | Sequence[int] | None = None,
) -> tuple[int, ...]:
    """The shape of one read task's block: whole chunks, about ``target_bytes``.

    A block grows along the last axis, then the one before, up to
    ``target_bytes`` of uncompressed data, and never past ``1 / cores`` of the
    array, so every core has a block to read.

    Examples
    --------
    >>> block_shape((64, 64), (64, 64), 1, target_bytes=4 * 2**20)
    (1024, 4096)
    >>> block_shape((512, 512), (16, 16), 4, target_bytes=4 * 2**20)
    (512, 2048)
    """
    ndim = len(chunks)
    if chunks_per_task is not None:
        factors = (
            [int(chunks_per_task)] * ndim
            if isinstance(chunks_per_task, int) and ndim == 1
            else _factors_for_count(int(chunks_per_task), grid_shape)
            if isinstance(chunks_per_task, int)
            else [int(f) for f in chunks_per_task]
        )
    else:
        # about target_bytes of whole chunks, but never fewer blocks than cores
        target = target_bytes or dask.config.get("zarrflow.task_target_bytes")
        chunk_bytes = max(1, math.prod(chunks) * itemsize)
        per_core = -(-math.prod(grid_shape) // default_parallelism())
        factors = _factors_for_count(max(1, min(target // chunk_bytes, per_core)), grid_shape)
    return tuple(c * max(1, f) for c, f in zip(chunks, factors, strict=True))


def _factors_for_count(count: int, grid_shape: Sequence[int]) -> list[int]:
    factors = [1] * len(grid_shape)
    for ax in reversed(range(len(grid_shape))):
        f = max(1, min(grid_shape[ax], count))
        factors[ax] = f
        count = max(1, count // f)
    return factors


class _Source:
    """What each read task holds: the chunk engine (pickled as store, path and metadata)."""

    __slots__ = ("dtype", "engine", "ndim", "shape")

    def __init__(self, engine: ChunkEngine) -> None:
        self.engine = engine
        self.shape = engine.shape
        self.dtype = engine.dtype
        self.ndim = len(engine.shape)

    def __getitem__(self, key):  # pragma: no cover - dask uses _read_block
        return _read_block(self, key)


def _read_block(source: _Source, key: tuple[slice, ...], *args: Any, **kwargs: Any) -> np.ndarray:
    """One read task: the chunks of a block, decoded into one output array."""
    engine = source.engine
    indexer = BasicIndexer(key, engine.shape, engine.chunk_shape)
    out = np.empty(indexer.shape, dtype=engine.dtype)
    with TaskScope():
        engine.read_into(out, indexer)
    return out


def _read_region(engine: ChunkEngine, region: tuple[slice, ...], out: np.ndarray) -> None:
    """Fill ``out`` with the array's values in ``region`` (a shared-output read task)."""
    indexer = BasicIndexer(region, engine.shape, engine.chunk_shape)
    with TaskScope():
        engine.read_into(out, indexer)


def _read_all(engine: ChunkEngine, out: np.ndarray) -> None:
    """Fill a whole-shape ``out`` as ``a[...]`` does (what ``to_dask(...).compute()`` runs)."""
    selection = tuple(slice(0, n) for n in engine.shape)
    indexer = BasicIndexer(selection, engine.shape, engine.chunk_shape)
    parallel_read(engine, indexer, out, False, selection)


def _largest_divisor(n: int, most: int) -> int:
    return max(d for d in range(1, max(1, min(n, most)) + 1) if n % d == 0)


def sharded_block_shape(
    engine: ChunkEngine,
    chunks_per_task: int | Sequence[int] | None = None,
    whole_shard_bytes: int | None = None,
) -> tuple[int, ...]:
    """The read block of a sharded array: whole shards, or inner chunks tiling a shard.

    A task reading a whole shard makes one request and no index request, so
    blocks are whole shards (grouped when small) unless a shard is larger than
    ``whole_shard_bytes`` (``zarrflow.shard_task_bytes``, 64 MiB): then a block is
    inner chunks (about ``zarrflow.task_target_bytes``) that tile the shard, so
    no inner chunk is read twice. ``chunks_per_task`` counts inner chunks.
    """
    itemsize, shard = engine.dtype.itemsize, engine.chunk_shape
    limit = whole_shard_bytes or dask.config.get("zarrflow.shard_task_bytes", _WHOLE_SHARD_BYTES)
    if chunks_per_task is None and math.prod(shard) * itemsize <= limit:
        return block_shape(shard, engine.chunk_grid_shape, itemsize)
    inner = engine.inner_shape
    cps = tuple((s // c if c else 1) for s, c in zip(shard, inner, strict=True))
    blocks = block_shape(inner, engine.inner_grid_shape, itemsize, chunks_per_task=chunks_per_task)
    if chunks_per_task is not None:
        return blocks
    factors = (_largest_divisor(n, b // c) for b, c, n in zip(blocks, inner, cps, strict=True))
    return tuple(c * f for c, f in zip(inner, factors, strict=True))


def to_dask(
    engine: ChunkEngine,
    chunks_per_task: int | Sequence[int] | None = None,
    name: str | None = None,
):
    """A dask array over an array's chunk engine; see :meth:`zarrflow.Array.to_dask`.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-engine-to-dask", shape=(6,), chunks=(2,), dtype="i2")
    >>> a[:] = 3
    >>> int(to_dask(a.engine, chunks_per_task=1).sum().compute())
    18
    """
    if engine.inner_shape != engine.chunk_shape:
        blocks = sharded_block_shape(engine, chunks_per_task)
    else:
        blocks = block_shape(
            engine.chunk_shape,
            engine.chunk_grid_shape,
            engine.dtype.itemsize,
            chunks_per_task=chunks_per_task,
        )
    import dask.array as da  # here, not at import: dask.array costs ~1 s of CPU to import

    from zarrflow.parallel.dask_output import share_output

    token = dask.base.tokenize(engine.name, engine.metadata, blocks)
    array = da.from_array(
        _Source(engine),
        chunks=blocks,
        name=name or f"zarrflow-read-{token}",
        getitem=_read_block,
        asarray=False,
        fancy=False,
        lock=False,
        inline_array=True,
        meta=np.empty((0,) * len(engine.shape), dtype=engine.dtype),
    )
    return share_output(array, partial(_read_region, engine), partial(_read_all, engine))


def _batches(projections: list, n: int) -> list[list]:
    size = max(1, math.ceil(len(projections) / n))
    return [projections[i : i + size] for i in range(0, len(projections), size)]


def _run_batch(fn, batch):
    with TaskScope():
        fn(batch)


def _run_local(
    fn, projections: list, name: str, settle: bool = False, nbytes: int | None = None
) -> None:
    """``fn(batch)`` over batches of projections as one threaded Dask graph.

    Up to four batches per worker balance the load, but each is a task handed
    between threads: a read of ``nbytes`` makes no more batches than it has
    ``zarrflow.task_target_bytes`` (at least one per worker). On the seed
    workload (4 MB, 100 chunks, 2 cores) 2 batches instead of 8 took the read
    from 7.2–7.6 to 6.0–6.5 ms of CPU; small-chunks (16.8 MB) keeps 4.

    ``settle``: run on a pool of this call's own, so that when it returns
    (error or not) no task of it is still running — for writes.
    """
    workers = default_parallelism()
    count = workers * 4
    if nbytes is not None:
        target = max(1, int(dask.config.get("zarrflow.task_target_bytes")))
        count = max(workers, min(count, nbytes // target))
    batches = _batches(projections, count)
    token = dask.base.tokenize(name, len(projections), id(fn))
    # partial: Dask would otherwise walk every projection in the task's arguments
    dsk = {(f"{name}-{token}", i): (partial(_run_batch, fn, b),) for i, b in enumerate(batches)}
    if not settle:
        dask.threaded.get(dsk, list(dsk), num_workers=workers)
        return
    with own_thread_pool(workers) as pool:
        dask.threaded.get(dsk, list(dsk), pool=pool)


def _use_graph(nprojections: int) -> bool:
    return nprojections >= dask.config.get("zarrflow.inline_chunks") and not in_task()


def parallel_read(
    engine: ChunkEngine, indexer, out: np.ndarray, flat: bool, selection: Any = None
) -> None:
    """Read a selection's chunks into ``out``: inline when few, else as a parallel graph.

    On the threaded scheduler the tasks fill ``out`` in place; with an active
    distributed client a basic selection is computed on the cluster instead.
    """
    if selection is not None and not flat and _read_sharded_by_inner_chunk(engine, selection, out):
        return
    projections = list(indexer)
    if not _use_graph(len(projections)) or engine.store.is_remote:
        # remote stores overlap requests inside read_into (one batched fetch)
        engine.read_into(out, projections, flat=flat)
        return
    backend = resolve_backend()
    if backend.kind == "distributed" and selection is not None and not flat:
        out[...] = to_dask(engine)[selection].compute()
        return
    if backend.kind == "sync":
        engine.read_into(out, projections, flat=flat)
        return
    read = lambda b: engine.read_into(out, b, flat=flat)  # noqa: E731
    _run_local(read, projections, "zarrflow-read", nbytes=out.nbytes)


def _read_sharded_by_inner_chunk(engine: ChunkEngine, selection: Any, out: np.ndarray) -> bool:
    """A basic selection of a sharded array, read on threads by inner chunk; False if not.

    Reads of less than ``zarrflow.task_target_bytes`` stay inline. Otherwise a
    task reads whole shards (one request each, or an index request and
    coalesced ranges), and only when there are fewer shards than threads is a
    shard's run of inner chunks split between tasks, so it decodes on every core.
    """
    if engine.inner_shape == engine.chunk_shape or engine.store.is_remote:
        return False
    if out.nbytes < dask.config.get("zarrflow.task_target_bytes") or in_task():
        return False
    if resolve_backend().kind != "threads":
        return False
    by_shard: dict[tuple[int, ...], list] = {}
    shard, inner = engine.chunk_shape, engine.inner_shape
    cps = tuple((s // c if c else 1) for s, c in zip(shard, inner, strict=True))
    for p in BasicIndexer(selection, engine.shape, inner):
        key = tuple(i // n for i, n in zip(p.chunk_coords, cps, strict=True))
        by_shard.setdefault(key, []).append(p)
    workers = default_parallelism()
    runs = list(by_shard.values())
    if 0 < len(runs) < workers:
        pieces = -(-workers // len(runs))
        runs = [part for run in runs for part in _split(run, pieces)]
    batches = [[p for run in b for p in run] for b in _batches(runs, workers * 4)]
    token = dask.base.tokenize("zarrflow-read", id(out), len(batches))
    read = partial(_read_inner, engine, out)
    dsk = {
        (f"zarrflow-read-{token}", i): (partial(_run_batch, read, b),)
        for i, b in enumerate(batches)
    }
    dask.threaded.get(dsk, list(dsk), num_workers=workers)
    return True


def _read_inner(engine: ChunkEngine, out: np.ndarray, batch: list) -> None:
    engine.read_inner_into(out, batch)


def _split(items: list, n: int) -> list[list]:
    """``items`` in at most ``n`` contiguous runs of about the same length."""
    size = max(1, math.ceil(len(items) / n))
    return [items[i : i + size] for i in range(0, len(items), size)]


def parallel_write(engine: ChunkEngine, indexer, value: np.ndarray, flat: bool) -> None:
    """Encode and store a selection's chunks in parallel (threads; one lock per partial chunk).

    Every chunk is tried; if the store failed any, one ParallelChunkError
    lists them all. Errors are raised only once every write task of the call
    has finished, so nothing lands afterwards.
    """
    projections = list(indexer)
    if not _use_graph(len(projections)) or resolve_backend().kind == "sync":
        engine.raise_failures(engine.write_from(value, projections, flat=flat))
        return
    engine.check_writable()
    failures: list = []
    write = lambda b: failures.extend(engine.write_from(value, b, flat=flat))  # noqa: E731
    _run_local(write, projections, "zarrflow-write", settle=True)
    engine.raise_failures(failures)
