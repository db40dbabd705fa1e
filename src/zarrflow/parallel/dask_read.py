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
from typing import Any

import dask
import dask.array as da
import numpy as np

from zarrflow.indexing import BasicIndexer
from zarrflow.parallel.scheduling import default_parallelism, resolve_backend

__all__ = ["block_shape", "in_task", "parallel_read", "parallel_write", "to_dask"]

_local = threading.local()


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


class _TaskScope:
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
        target = target_bytes or dask.config.get("zarrflow.task_target_bytes")
        factors = [1] * ndim
        nbytes = math.prod(chunks) * itemsize
        for ax in reversed(range(ndim)):
            f = int(min(grid_shape[ax], max(1, target // max(1, nbytes))))
            factors[ax] = f
            nbytes *= f
            if f < grid_shape[ax]:
                break
    return tuple(c * max(1, f) for c, f in zip(chunks, factors, strict=True))


def _factors_for_count(count: int, grid_shape: Sequence[int]) -> list[int]:
    factors = [1] * len(grid_shape)
    for ax in reversed(range(len(grid_shape))):
        f = max(1, min(grid_shape[ax], count))
        factors[ax] = f
        count = max(1, count // f)
    return factors


class _Source:
    """What each read task holds: the array (pickled as URL + metadata)."""

    __slots__ = ("array", "dtype", "ndim", "shape")

    def __init__(self, array) -> None:
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.ndim = array.ndim

    def __getitem__(self, key):  # pragma: no cover - dask uses _read_block
        return _read_block(self, key)


def _read_block(source: _Source, key: tuple[slice, ...], *args: Any, **kwargs: Any) -> np.ndarray:
    """One read task: the chunks of a block, decoded into one output array."""
    array = source.array
    indexer = BasicIndexer(key, array.shape, array.chunks)
    out = np.empty(indexer.shape, dtype=array.dtype)
    with _TaskScope():
        array._io.read_into(out, indexer)
    return out


def to_dask(array, chunks_per_task: int | Sequence[int] | None = None, name: str | None = None):
    """A dask array over ``array``; see :meth:`zarrflow.Array.to_dask`."""
    blocks = block_shape(
        array.chunks, array.chunk_grid_shape, array.dtype.itemsize, chunks_per_task=chunks_per_task
    )
    token = dask.base.tokenize(array.name, array.metadata, blocks)
    return da.from_array(
        _Source(array),
        chunks=blocks,
        name=name or f"zarrflow-read-{token}",
        getitem=_read_block,
        asarray=False,
        fancy=False,
        lock=False,
        inline_array=True,
        meta=np.empty((0,) * array.ndim, dtype=array.dtype),
    )


def _batches(projections: list, n: int) -> list[list]:
    size = max(1, math.ceil(len(projections) / n))
    return [projections[i : i + size] for i in range(0, len(projections), size)]


def _run_batch(fn, batch):
    with _TaskScope():
        fn(batch)


def _run_local(fn, projections: list, name: str) -> None:
    """``fn(batch)`` over batches of projections as one threaded Dask graph."""
    workers = default_parallelism()
    batches = _batches(projections, workers * 4)
    token = dask.base.tokenize(name, len(projections), id(fn))
    dsk = {(f"{name}-{token}", i): (_run_batch, fn, b) for i, b in enumerate(batches)}
    dask.threaded.get(dsk, list(dsk), num_workers=workers)


def _use_graph(nprojections: int) -> bool:
    return nprojections >= dask.config.get("zarrflow.inline_chunks") and not in_task()


def parallel_read(array, indexer, out: np.ndarray, flat: bool, selection: Any = None) -> None:
    """Read a selection's chunks into ``out``: inline when few, else as a parallel graph.

    On the threaded scheduler the tasks fill ``out`` in place; with an active
    distributed client a basic selection is computed on the cluster instead.
    """
    projections = list(indexer)
    if not _use_graph(len(projections)) or array.store.is_remote:
        # remote stores overlap requests inside read_into (one batched fetch)
        array._io.read_into(out, projections, flat=flat)
        return
    backend = resolve_backend()
    if backend.kind == "distributed" and selection is not None and not flat:
        out[...] = to_dask(array)[selection].compute()
        return
    if backend.kind == "sync":
        array._io.read_into(out, projections, flat=flat)
        return
    _run_local(lambda b: array._io.read_into(out, b, flat=flat), projections, "zarrflow-read")


def parallel_write(array, indexer, value: np.ndarray, flat: bool) -> None:
    """Encode and store a selection's chunks in parallel (threads; one lock per partial chunk)."""
    projections = list(indexer)
    if not _use_graph(len(projections)) or resolve_backend().kind == "sync":
        array._io.write_from(value, projections, flat=flat)
        return
    array._io._check_writable()
    _run_local(lambda b: array._io.write_from(value, b, flat=flat), projections, "zarrflow-write")
