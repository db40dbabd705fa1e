"""``chunk_stream``, ``parallel_chunk_map`` and ``reduce_chunks`` over an array's chunks.

The per-chunk work objects here are small picklable callables holding the array
(which pickles as its store URL and metadata), so the same work runs in a
thread, a process or on a cluster worker — and on a cluster a chunk's data
never travels to the client, only what ``fn`` returns.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dask
import numpy as np

from zarrflow.parallel.driver import run_chunk_tasks
from zarrflow.parallel.scheduling import Backend, default_parallelism, resolve_backend

__all__ = ["chunk_stream", "parallel_chunk_map", "reduce_chunks"]

Index = tuple[int, ...]


class ReadChunk:
    """Work: the in-bounds part of one chunk."""

    __slots__ = ("array",)

    def __init__(self, array) -> None:
        self.array = array

    def __call__(self, idx: Index) -> np.ndarray:
        return self.array._io.read_chunk_region(idx, self.array.shape)


class MapChunk:
    """Work: ``fn(idx, chunk)`` in the task that reads the chunk."""

    __slots__ = ("array", "fn")

    def __init__(self, array, fn: Callable[[Index, np.ndarray], Any]) -> None:
        self.array = array
        self.fn = fn

    def __call__(self, idx: Index) -> Any:
        return self.fn(idx, self.array._io.read_chunk_region(idx, self.array.shape))


def _grid_indices(array) -> Iterator[Index]:
    return itertools.product(*(range(n) for n in array.chunk_grid_shape))


def _stored_indices(array) -> list[Index]:
    prefix_len = len(array._io.prefix)
    parse = array.metadata.parse_chunk_key
    return sorted(parse(k[prefix_len:]) for k in array.stored_chunk_keys())


def chunk_indices(
    array, filter: Callable[[Index], bool] | None = None, skip_missing: bool = False
) -> tuple[Iterable[Index], Callable[[], int]]:
    """Grid-order chunk indices after ``filter`` (lazily), and a function counting them."""
    source: Callable[[], Iterable[Index]]
    if skip_missing:
        stored = _stored_indices(array)
        source = functools.partial(iter, stored)
    else:
        source = functools.partial(_grid_indices, array)

    def selected() -> Iterator[Index]:
        return (i for i in source() if filter(i)) if filter is not None else iter(source())

    def count() -> int:
        if filter is None:
            return len(stored) if skip_missing else array.nchunks
        return sum(1 for _ in selected())

    return selected(), count


def _auto_batch(array, target: int = 256 * 1024, most: int = 64) -> int:
    """Chunks per task so tiny chunks do not drown in per-task overhead."""
    chunk_bytes = max(1, math.prod(array.chunks) * array.dtype.itemsize)
    return max(1, min(most, target // chunk_bytes))


def _cluster_threads(backend: Backend) -> int:
    if backend.kind == "distributed":
        return max(1, sum(backend.client.nthreads().values()))
    return default_parallelism()


def chunk_stream(
    array,
    parallel: int = 1,
    ordered: bool = True,
    filter: Callable[[Index], bool] | None = None,
    progress_callback: Callable[[int, int], None] | None = None,
    scheduler: Any = None,
    skip_missing: bool = False,
) -> Iterator[tuple[Index, np.ndarray]]:
    """Yield ``(chunk_index, chunk)`` for the chunks of ``array`` (see ``Array.chunk_stream``)."""
    indices, count = chunk_indices(array, filter, skip_missing)
    total = count() if progress_callback is not None else None
    backend = resolve_backend(scheduler) if parallel > 1 else Backend("sync")
    yield from run_chunk_tasks(
        ReadChunk(array),
        indices,
        backend=backend,
        parallel=parallel,
        ordered=ordered,
        batch=_auto_batch(array),
        total=total,
        progress_callback=progress_callback,
        name=f"zarrflow-read-{dask.base.tokenize(array.name, 'stream')[:8]}",
        what=f"chunk_stream over array {array.name!r}",
    )


def parallel_chunk_map(
    array,
    fn: Callable[[Index, np.ndarray], Any],
    max_concurrency: int | None = None,
    timeout: float | None = None,
    ordered: bool = True,
    retries: int | None = None,
    on_error: str = "raise",
    scheduler: Any = None,
    filter: Callable[[Index], bool] | None = None,
    progress_callback: Callable[[int, int], None] | None = None,
    skip_missing: bool = False,
) -> Iterator[tuple[Index, Any]]:
    """Yield ``(chunk_index, fn(chunk_index, chunk))`` (see ``Array.parallel_chunk_map``)."""
    backend = resolve_backend(scheduler)
    parallel = max_concurrency or _cluster_threads(backend)
    indices, count = chunk_indices(array, filter, skip_missing)
    total = count() if progress_callback is not None else None
    yield from run_chunk_tasks(
        MapChunk(array, fn),
        indices,
        backend=backend,
        parallel=parallel,
        ordered=ordered,
        timeout=timeout,
        retries=0 if retries is None else retries,
        on_error=on_error,
        batch=_auto_batch(array),
        total=total,
        progress_callback=progress_callback,
        name=f"zarrflow-map-{dask.base.tokenize(array.name, fn)[:8]}",
        what=f"parallel_chunk_map over array {array.name!r}",
    )


def reduce_chunks(
    array,
    fn: Callable[[Index, np.ndarray], Any],
    combine: Callable[[Any, Any], Any],
    initial: Any = None,
    **map_kwargs: Any,
) -> Any:
    """Fold ``fn``'s per-chunk results with ``combine`` as they arrive (unordered)."""
    results = (r for _, r in parallel_chunk_map(array, fn, ordered=False, **map_kwargs))
    if initial is None:
        return functools.reduce(combine, results)
    return functools.reduce(combine, results, initial)
