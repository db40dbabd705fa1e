"""``chunk_stream``, ``parallel_chunk_map`` and ``reduce_chunks`` over an array's chunks.

The per-chunk work objects here are small picklable callables holding the array
(which pickles as its store URL and metadata), so the same work runs in a
thread, a process or on a cluster worker — and on a cluster a chunk's data
never travels to the client, only what ``fn`` returns.

**Sharded arrays** stream their *inner* chunks (``chunk_index`` is the inner
chunk grid index), shard by shard: inner chunks in C order within a shard,
shards in grid order (that is the order ``ordered=True`` keeps). Each task
reads a group of inner chunks of one shard — the whole shard's, up to
``zarrflow.shard_group_bytes`` (16 MiB) of them, one inner chunk when a
``timeout`` is set — with one index request and coalesced ranged reads.
Decoded indices are kept for the operation, so in-process every shard's
index is fetched once. ``parallel`` bounds groups in flight (at most
``2 × parallel`` groups are held); ``timeout`` applies per task.
``skip_missing`` lists the stored shards, then reads each one's index to
stream only its stored inner chunks.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dask
import numpy as np

from zarrflow.errors import ChunkFailure, ChunkTimeoutError
from zarrflow.parallel.driver import _run_one, deliver, run_chunk_tasks
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
    return itertools.product(*(range(n) for n in array.shard_grid_shape))


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
    """The most chunks a task reads and hands over at once (up to ``target`` bytes).

    Small chunks are grouped so that they do not drown in per-task and
    per-hand-off overhead; the memory bound of a stream is ``2 × parallel``
    times this. On local threads tasks take fewer when chunks are measured
    slow (see :mod:`zarrflow.parallel.driver`).
    """
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
    on_error: str = "raise",
) -> Iterator[tuple[Index, Any]]:
    """Yield ``(chunk_index, chunk)`` for the chunks of ``array`` (see ``Array.chunk_stream``)."""
    if _is_sharded(array):
        backend = resolve_backend(scheduler) if parallel > 1 else Backend("sync")
        work = ReadInnerGroup(array)
        yield from _sharded_stream(
            array,
            work,
            backend,
            parallel,
            ordered,
            None,
            filter,
            skip_missing,
            progress_callback,
            on_error=on_error,
            name=f"zarrflow-read-{dask.base.tokenize(array.name, 'stream')[:8]}",
            what=f"chunk_stream over array {array.name!r}",
        )
        return
    indices, count = chunk_indices(array, filter, skip_missing)
    total = count() if progress_callback is not None else None
    backend = resolve_backend(scheduler) if parallel > 1 else Backend("sync")
    yield from run_chunk_tasks(
        ReadChunk(array),
        indices,
        backend=backend,
        parallel=parallel,
        ordered=ordered,
        on_error=on_error,
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
    retries = 0 if retries is None else retries
    name = f"zarrflow-map-{dask.base.tokenize(array.name, fn)[:8]}"
    what = f"parallel_chunk_map over array {array.name!r}"
    if _is_sharded(array):
        work = MapInnerGroup(array, fn, retries)
        yield from _sharded_stream(
            array,
            work,
            backend,
            parallel,
            ordered,
            timeout,
            filter,
            skip_missing,
            progress_callback,
            on_error=on_error,
            name=name,
            what=what,
        )
        return
    indices, count = chunk_indices(array, filter, skip_missing)
    total = count() if progress_callback is not None else None
    yield from run_chunk_tasks(
        MapChunk(array, fn),
        indices,
        backend=backend,
        parallel=parallel,
        ordered=ordered,
        timeout=timeout,
        retries=retries,
        on_error=on_error,
        batch=_auto_batch(array),
        total=total,
        progress_callback=progress_callback,
        name=name,
        what=what,
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


# -- sharded arrays: inner chunks, grouped by shard ----------------------------------------------
_GROUP_BYTES = 16 * 2**20


def _is_sharded(array) -> bool:
    return getattr(array.metadata, "inner_chunks", None) is not None


def _read_group(array, group: tuple[Index, ...], retries: int, cache: dict) -> list:
    """``(index, chunk or ChunkFailure)`` for one group; a shard-level read is retried."""
    for attempt in itertools.count():
        try:
            results = array._io.read_inner_chunks(group, index_cache=cache)
            break
        except Exception as e:  # the shard (index, store) failed: every chunk of it did
            if attempt >= retries:
                return [(idx, ChunkFailure(idx, e)) for idx in group]
    return [(i, ChunkFailure(i, c) if isinstance(c, BaseException) else c) for i, c in results]


class ReadInnerGroup:
    """Work: the inner chunks of a group (one shard's), one index request for them all.

    ``cache`` holds the shard indices read so far; it is shared by the tasks of
    one process and never pickled.
    """

    __slots__ = ("array", "cache", "retries")

    def __init__(self, array, retries: int = 0) -> None:
        self.array = array
        self.retries = retries
        self.cache: dict = {}

    def __call__(self, group: tuple[Index, ...]) -> list:
        return _read_group(self.array, group, self.retries, self.cache)

    def __reduce__(self):
        return (type(self), (self.array, self.retries))


class MapInnerGroup(ReadInnerGroup):
    """Work: ``fn(idx, chunk)`` for each inner chunk of a group, in the task that reads it."""

    __slots__ = ("fn",)

    def __init__(self, array, fn: Callable[[Index, np.ndarray], Any], retries: int = 0) -> None:
        super().__init__(array, retries)
        self.fn = fn

    def __call__(self, group: tuple[Index, ...]) -> list:
        out = []
        for idx, chunk in _read_group(self.array, group, self.retries, self.cache):
            if not isinstance(chunk, ChunkFailure):
                chunk = _run_one(functools.partial(_apply, self.fn, chunk), idx, self.retries)
            out.append((idx, chunk))
        return out

    def __reduce__(self):
        return (type(self), (self.array, self.fn, self.retries))


def _apply(fn: Callable[[Index, np.ndarray], Any], chunk: np.ndarray, idx: Index) -> Any:
    return fn(idx, chunk)


def _shard_members(array, shard: Index, filter, stored: bool, cache: dict) -> list[Index]:
    """The inner chunks of one shard to stream, in C order."""
    io = array._io
    if stored:
        members: Iterable[Index] = io.stored_inner_chunks(shard, index_cache=cache)
    else:
        cps, grid = io.codec.chunks_per_shard, io.inner_grid_shape
        members = itertools.product(
            *(range(s * n, min((s + 1) * n, g)) for s, n, g in zip(shard, cps, grid, strict=True))
        )
    return [i for i in members if filter(i)] if filter is not None else list(members)


def shard_groups(
    array, filter=None, skip_missing: bool = False, group_size: int = 1, cache: dict | None = None
) -> Iterator[tuple[Index, ...]]:
    """Groups of at most ``group_size`` inner-chunk indices, each within one shard, lazily."""
    cache = {} if cache is None else cache
    shards: Iterable[Index] = _stored_indices(array) if skip_missing else _grid_indices(array)
    for shard in shards:
        members = _shard_members(array, shard, filter, skip_missing, cache)
        for i in range(0, len(members), group_size):
            yield tuple(members[i : i + group_size])


def _group_size(array, timeout: float | None) -> int:
    if timeout is not None:
        return 1
    io = array._io
    inner_bytes = max(1, math.prod(io.inner_shape) * array.dtype.itemsize)
    budget = dask.config.get("zarrflow.shard_group_bytes", _GROUP_BYTES)
    return max(1, min(io.codec.n_inner, budget // inner_bytes))


def _expand(group: tuple[Index, ...], result: Any, name: str) -> list[tuple[Index, Any]]:
    """A group's task result as per-chunk results (a lost or late task fails each chunk)."""
    if not isinstance(result, ChunkFailure):
        return result
    e = result.exception
    if isinstance(e, ChunkTimeoutError):
        return [(i, ChunkFailure(i, ChunkTimeoutError(i, e.timeout, name))) for i in group]
    return [(i, ChunkFailure(i, e)) for i in group]


def _sharded_stream(
    array,
    work,
    backend,
    parallel,
    ordered,
    timeout,
    filter,
    skip_missing,
    progress_callback,
    *,
    on_error: str = "raise",
    name: str,
    what: str,
) -> Iterator[tuple[Index, Any]]:
    """Run group work over a sharded array; yield per inner chunk, as ``run_chunk_tasks`` does."""
    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', not {on_error!r}")
    size = _group_size(array, timeout)
    total = None
    if progress_callback is not None:
        total = sum(map(len, shard_groups(array, filter, skip_missing, size, work.cache)))
    groups = shard_groups(array, filter, skip_missing, size, work.cache)
    results = run_chunk_tasks(
        work,
        groups,
        backend=backend,
        parallel=parallel,
        ordered=ordered,
        timeout=timeout,
        on_error="return",
        name=name,
        what=what,
    )
    per_chunk = (pair for group, result in results for pair in _expand(group, result, name))
    try:
        yield from deliver(per_chunk, on_error, what, total, progress_callback)
    finally:
        results.close()
