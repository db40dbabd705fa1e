"""``chunk_stream``, ``parallel_chunk_map`` and ``reduce_chunks`` over an array's chunks.

Everything here drives a :class:`~zarrflow.chunks.ChunkEngine` (which pickles
as its store, path and metadata), so the same work runs in a thread, a
process or on a cluster worker — and on a cluster a chunk's data never
travels to the client, only what ``fn`` returns.

**One read path.** A task reads its batch of chunks with one
``engine.read_chunks(batch)``: the batched fetch and batched decode that
``a[...]`` and ``to_dask`` use (:meth:`~zarrflow.chunks.ChunkEngine.read_into`).
A chunk that cannot be read is retried alone (``retries``) and otherwise
reported in place of its data.

**Sharded arrays** stream their *inner* chunks (``chunk_index`` is the inner
chunk grid index), shard by shard: inner chunks in C order within a shard,
shards in grid order (that is the order ``ordered=True`` keeps). A batch stays
within one shard — up to ``zarrflow.shard_group_bytes`` (16 MiB) of its inner
chunks, one inner chunk when a ``timeout`` is set — and is read with one
request for the whole shard, or one index request and coalesced ranges.
Decoded indices are kept for the operation, so in-process every shard's
index is fetched once. ``skip_missing`` lists the stored shards, then reads
each one's index to stream only its stored inner chunks.

**On a cluster** a task reads about ``zarrflow.task_target_bytes`` of chunks
(:func:`batch_size`), and ``reduce_chunks`` combines results on the workers
(:mod:`zarrflow.parallel.reduction`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dask
import numpy as np

from zarrflow.chunks import ChunkEngine
from zarrflow.errors import ChunkFailure
from zarrflow.parallel.driver import run_chunk_tasks
from zarrflow.parallel.scheduling import Backend, default_parallelism, resolve_backend
from zarrflow.telemetry.events import operation

__all__ = [
    "MapChunks",
    "ReadChunks",
    "batch_size",
    "chunk_indices",
    "chunk_stream",
    "parallel_chunk_map",
    "reduce_chunks",
]

Index = tuple[int, ...]
_GROUP_BYTES = 16 * 2**20  # default of zarrflow.shard_group_bytes
_STREAM_BYTES = 256 * 1024  # a local task's batch of small chunks


class ReadChunks:
    """Work: a batch of chunks, through the engine's one batched read.

    A chunk whose read failed is read again alone, up to ``retries`` times,
    then reported as a :class:`~zarrflow.ChunkFailure` in its place. ``cache``
    (a sharded array's decoded shard indices) is shared by the tasks of one
    process and never pickled.
    """

    __slots__ = ("cache", "engine", "retries")
    #: the operation telemetry events of this work report
    operation_name = "stream"

    def __init__(self, engine: ChunkEngine, retries: int = 0) -> None:
        self.engine = engine
        self.retries = retries
        self.cache: dict = {}

    def __reduce__(self):
        return (type(self), (self.engine, self.retries))

    def read_one(self, idx: Index) -> Any:
        """One chunk read again alone: its data, or the exception its read ended in."""
        return self.engine.read_chunks([idx], self.cache)[0][1]

    def __call__(self, batch: list[Index]) -> list[tuple[Index, Any]]:
        out = []
        with operation(self.operation_name):
            for idx, chunk in self.engine.read_chunks(batch, self.cache):
                for _ in range(self.retries):
                    if not isinstance(chunk, BaseException):
                        break
                    chunk = self.read_one(idx)
                out.append(
                    (idx, ChunkFailure(idx, chunk) if isinstance(chunk, Exception) else chunk)
                )
        return out


class MapChunks(ReadChunks):
    """Work: ``fn(idx, chunk)`` for each chunk of a batch, in the task that reads it.

    ``retries`` re-runs a chunk whose read or ``fn`` raised (reading it again).
    """

    __slots__ = ("fn",)
    operation_name = "map"

    def __init__(
        self, engine: ChunkEngine, fn: Callable[[Index, np.ndarray], Any], retries: int = 0
    ) -> None:
        super().__init__(engine, retries)
        self.fn = fn

    def __reduce__(self):
        return (type(self), (self.engine, self.fn, self.retries))

    def apply(self, idx: Index, chunk: Any) -> Any:
        """``fn(idx, chunk)``, retried; a final failure becomes a ChunkFailure."""
        for attempt in itertools.count():
            if isinstance(chunk, BaseException):
                error = chunk
            else:
                try:
                    return self.fn(idx, chunk)
                except Exception as e:  # reported per chunk, never swallowed
                    error = e
            if attempt >= self.retries:
                return ChunkFailure(idx, error)
            chunk = self.read_one(idx)
        raise AssertionError("unreachable")  # pragma: no cover

    def __call__(self, batch: list[Index]) -> list[tuple[Index, Any]]:
        with operation(self.operation_name):
            return [(i, self.apply(i, c)) for i, c in self.engine.read_chunks(batch, self.cache)]


# -- which chunks, in which batches --------------------------------------------------------------
def _is_sharded(engine: ChunkEngine) -> bool:
    return engine.inner_shape != engine.chunk_shape


def _grid(shape: tuple[int, ...]) -> Iterator[Index]:
    return itertools.product(*(range(n) for n in shape))


def chunk_indices(
    engine: ChunkEngine,
    filter: Callable[[Index], bool] | None = None,
    skip_missing: bool = False,
    cache: dict | None = None,
) -> tuple[Iterable[Index], Callable[[], int]]:
    """The inner-chunk indices to stream after ``filter`` (lazily), and a function counting them.

    Regular arrays: the chunk grid in C order (only the stored chunks with
    ``skip_missing``). Sharded arrays: shard by shard, each shard's inner
    chunks in C order (with ``skip_missing``, those its index lists).

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-indices", shape=(4,), chunks=(1,), shards=(2,), dtype="u1")
    >>> a[3] = 1
    >>> indices, count = chunk_indices(a.engine, skip_missing=True)
    >>> list(indices), count()
    ([(3,)], 1)
    """
    sharded = _is_sharded(engine)
    stored = engine.stored_chunk_coords() if skip_missing else None

    def source() -> Iterable[Index]:
        objects: Iterable[Index] = stored if stored is not None else _grid(engine.chunk_grid_shape)
        if not sharded:
            return iter(objects)
        of = engine.inner_chunks_of
        return (i for shard in objects for i in of(shard, skip_missing, cache))

    def selected() -> Iterator[Index]:
        return (i for i in source() if filter(i)) if filter is not None else iter(source())

    def count() -> int:
        if filter is None and not sharded:
            return len(stored) if stored is not None else math.prod(engine.chunk_grid_shape)
        return sum(1 for _ in selected())

    return selected(), count


def batch_size(engine: ChunkEngine, backend: Backend, timeout: float | None = None) -> int:
    """The most chunks a task reads and hands over at once.

    One chunk per task with a ``timeout`` (it applies per task). Otherwise,
    small chunks are grouped so they do not drown in per-task overhead: up to
    256 KiB (at most 64 chunks) on local threads — where tasks take fewer when
    chunks are measured slow — and up to ``zarrflow.task_target_bytes`` on a
    cluster or process pool, where every task is a round trip through the
    scheduler. A sharded array's batch is up to ``zarrflow.shard_group_bytes``
    of one shard's inner chunks. The memory bound of a stream is
    ``2 × parallel`` times this.

    Examples
    --------
    >>> import zarrflow as zf
    >>> from zarrflow.parallel.scheduling import Backend
    >>> a = zf.create("memory://doc-batch", shape=(2**20,), chunks=(2**14,), dtype="f4")
    >>> batch_size(a.engine, Backend("threads")), batch_size(a.engine, Backend("threads"), 1.0)
    (4, 1)
    """
    if timeout is not None:
        return 1
    inner_bytes = max(1, math.prod(engine.inner_shape) * engine.dtype.itemsize)
    if _is_sharded(engine):
        per_shard = math.prod(
            (s // c if c else 1)
            for s, c in zip(engine.chunk_shape, engine.inner_shape, strict=True)
        )
        budget = dask.config.get("zarrflow.shard_group_bytes", _GROUP_BYTES)
        return max(1, min(per_shard, budget // inner_bytes))
    if backend.kind in ("distributed", "processes"):
        target = int(dask.config.get("zarrflow.task_target_bytes"))
        return max(1, target // inner_bytes)
    return max(1, min(64, _STREAM_BYTES // inner_bytes))


def _boundary(engine: ChunkEngine) -> Callable[[Index], Index] | None:
    """For a sharded array, the shard of an inner chunk: batches stay within one shard."""
    if not _is_sharded(engine):
        return None
    per_shard = tuple(
        (s // c if c else 1) for s, c in zip(engine.chunk_shape, engine.inner_shape, strict=True)
    )
    return functools.partial(_shard_of, per_shard)


def _shard_of(per_shard: tuple[int, ...], idx: Index) -> Index:
    return tuple(i // n for i, n in zip(idx, per_shard, strict=True))


def _cluster_threads(backend: Backend) -> int:
    if backend.kind == "distributed":
        return max(1, sum(backend.client.nthreads().values()))
    return default_parallelism()


def _run(
    engine: ChunkEngine,
    work: ReadChunks,
    backend: Backend,
    parallel: int,
    *,
    ordered: bool,
    timeout: float | None,
    on_error: str,
    filter: Callable[[Index], bool] | None,
    skip_missing: bool,
    progress_callback: Callable[[int, int], None] | None,
    name: str,
    what: str,
) -> Iterator[tuple[Index, Any]]:
    """Run batched ``work`` over the array's (inner) chunks; yield per chunk."""
    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', not {on_error!r}")
    indices, count = chunk_indices(engine, filter, skip_missing, work.cache)
    total = count() if progress_callback is not None else None
    yield from run_chunk_tasks(
        work,
        indices,
        backend=backend,
        parallel=parallel,
        ordered=ordered,
        timeout=timeout,
        on_error=on_error,
        batch=batch_size(engine, backend, timeout),
        total=total,
        progress_callback=progress_callback,
        name=name,
        what=what,
        batched=True,
        boundary=_boundary(engine),
    )


def chunk_stream(
    engine: ChunkEngine,
    parallel: int = 1,
    ordered: bool = True,
    filter: Callable[[Index], bool] | None = None,
    progress_callback: Callable[[int, int], None] | None = None,
    scheduler: Any = None,
    skip_missing: bool = False,
    on_error: str = "raise",
) -> Iterator[tuple[Index, Any]]:
    """Yield ``(chunk_index, chunk)`` for an array's chunks (see ``Array.chunk_stream``).

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-engine-stream", shape=(3,), chunks=(2,), dtype="i1")
    >>> [(i, c.tolist()) for i, c in chunk_stream(a.engine)]
    [((0,), [0, 0]), ((1,), [0])]
    """
    backend = resolve_backend(scheduler) if parallel > 1 else Backend("sync")
    return _run(
        engine,
        ReadChunks(engine),
        backend,
        parallel,
        ordered=ordered,
        timeout=None,
        on_error=on_error,
        filter=filter,
        skip_missing=skip_missing,
        progress_callback=progress_callback,
        name=f"zarrflow-read-{dask.base.tokenize(engine.name, 'stream')[:8]}",
        what=f"chunk_stream over array {engine.name!r}",
    )


def parallel_chunk_map(
    engine: ChunkEngine,
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
    """Yield ``(chunk_index, fn(chunk_index, chunk))`` (see ``Array.parallel_chunk_map``).

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-engine-map", shape=(4,), chunks=(2,), dtype="i1")
    >>> list(parallel_chunk_map(a.engine, lambda i, c: c.size, scheduler="sync"))
    [((0,), 2), ((1,), 2)]
    """
    backend = resolve_backend(scheduler)
    return _run(
        engine,
        MapChunks(engine, fn, 0 if retries is None else retries),
        backend,
        max_concurrency or _cluster_threads(backend),
        ordered=ordered,
        timeout=timeout,
        on_error=on_error,
        filter=filter,
        skip_missing=skip_missing,
        progress_callback=progress_callback,
        name=f"zarrflow-map-{dask.base.tokenize(engine.name, fn)[:8]}",
        what=f"parallel_chunk_map over array {engine.name!r}",
    )


def reduce_chunks(
    engine: ChunkEngine,
    fn: Callable[[Index, np.ndarray], Any],
    combine: Callable[[Any, Any], Any],
    initial: Any = None,
    **map_kwargs: Any,
) -> Any:
    """Fold ``fn``'s per-chunk results with ``combine`` (see ``Array.reduce_chunks``).

    On a ``distributed`` cluster (without a ``timeout``) the fold is a tree of
    tasks that combine on the workers (:mod:`zarrflow.parallel.reduction`);
    elsewhere the results are folded in the caller's thread as they arrive.
    ``map_kwargs`` are those of :func:`parallel_chunk_map`.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-engine-reduce", shape=(4,), chunks=(2,), dtype="i1")
    >>> reduce_chunks(a.engine, lambda i, c: c.size, lambda x, y: x + y, scheduler="sync")
    4
    """
    backend = resolve_backend(map_kwargs.get("scheduler"))
    if backend.kind == "distributed" and map_kwargs.get("timeout") is None:
        return _reduce_on_cluster(engine, fn, combine, initial, backend, **map_kwargs)
    results = (r for _, r in parallel_chunk_map(engine, fn, ordered=False, **map_kwargs))
    if initial is None:
        return functools.reduce(combine, results)
    return functools.reduce(combine, results, initial)


def _reduce_on_cluster(
    engine: ChunkEngine,
    fn: Callable[[Index, np.ndarray], Any],
    combine: Callable[[Any, Any], Any],
    initial: Any,
    backend: Backend,
    *,
    max_concurrency: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    on_error: str = "raise",
    scheduler: Any = None,
    filter: Callable[[Index], bool] | None = None,
    progress_callback: Callable[[int, int], None] | None = None,
    skip_missing: bool = False,
) -> Any:
    from zarrflow.parallel.reduction import tree_reduce

    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', not {on_error!r}")
    work = MapChunks(engine, fn, 0 if retries is None else retries)
    indices, count = chunk_indices(engine, filter, skip_missing, work.cache)
    return tree_reduce(
        backend.client,
        work,
        indices,
        combine,
        initial,
        batch=batch_size(engine, backend),
        parallel=max_concurrency or _cluster_threads(backend),
        on_error=on_error,
        total=count() if progress_callback is not None else None,
        progress_callback=progress_callback,
        boundary=_boundary(engine),
        name=f"zarrflow-map-{dask.base.tokenize(engine.name, fn)[:8]}",
        what=f"reduce_chunks over array {engine.name!r}",
    )
