"""Run one function over many chunk indices, streaming results back with bounded memory.

This is the scheduler under ``chunk_stream``, ``parallel_chunk_map`` and
``reduce_chunks``. Work runs as Dask tasks over *batches* of consecutive
chunks: either ``work(chunk_index)`` once per chunk, or — what the streams
use — ``work(batch)`` once per batch (:class:`Body`), so that a task reads its
chunks with one batched request and one batched decode:

* ``sync`` — inline in the caller's thread, in grid order;
* ``threads`` — Dask graph executions on the local threaded scheduler (so
  ``dask.diagnostics.ProgressBar`` and other local callbacks see them), run by
  a driver thread and ``parallel`` worker threads that are kept between
  streams; a short stream stays in the caller's thread (below);
* ``distributed`` / ``processes`` — futures on a ``Client`` (tasks named
  ``<prefix>-<token>-<n>`` on the dashboard) or a process pool, submitted as a
  sliding window (:mod:`zarrflow.parallel.futures`);
* ``threads`` with a ``timeout`` — the same sliding window over a thread pool.
  No scheduler can stop a running Python function, so a chunk past its
  timeout is abandoned (its thread finishes in the background, its result is
  dropped) while the others go on; a Dask graph would wait for it.

**Short streams stay inline.** On the threaded scheduler the first chunks are
read in the caller's thread and timed. While the stream's projected total (the
time so far plus the typical time per chunk times the chunks known to remain)
stays under ``zarrflow.stream_inline_seconds`` (25 ms), the stream goes on
there; once the projection passes it, the rest runs as Dask tasks, batched so
that a task does about 2 ms of work. Starting a stream on threads and handing
chunks between them costs about a millisecond, and two threads cannot beat one
on a few milliseconds of decoding; a store with 5 ms of latency per read, or a
``fn`` that computes for long, goes parallel after its first chunk. Streams
with a ``timeout``, and streams run while Dask's local diagnostics are active,
never stay inline.

**Hand-off.** On threads a graph has one task per thread. Each task claims
the graph's batches one after another, in index order, reads each and hands
it to the consumer whole: one lock round trip per batch, and no round trip
through Dask's scheduler between two batches.

Bounds: at most ``parallel`` tasks run at once (on threads, no more than the
cores can keep busy: :func:`_workers`), and at most ``window``
(``2 × parallel × batch``) chunks are claimed and not yet released: those being
read, those finished and waiting for the consumer, and the batch the consumer
is yielding from. A consumer that stops early cancels the rest: no task starts
reading a chunk after that.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from functools import partial
from typing import Any

import dask
from dask.callbacks import Callback

from zarrflow.errors import ChunkFailure, ChunkTimeoutError, ParallelChunkError
from zarrflow.parallel.scheduling import Backend, default_parallelism

__all__ = ["Body", "deliver", "numbered_batches", "run_chunk_tasks", "run_one"]

Index = tuple[int, ...]
Work = Callable[[Index], Any]
Batch = list[tuple[int, Index]]
Boundary = Callable[[Index], Any] | None

_INLINE_SECONDS = 0.025  # default of zarrflow.stream_inline_seconds
_TASK_SECONDS = 0.002  # work per task the batch size aims at, once measured
_PEEK = 1024  # indices enumerated ahead while a stream is inline
_BATCHES_PER_GRAPH = 256  # a graph's batches; its tasks are one per worker thread
_SAMPLE = 8  # chunks per judgement of an inline stream (or one of limit / 8 seconds)


def run_one(work: Work, idx: Index, retries: int) -> Any:
    """``work(idx)``, retried ``retries`` times; a final failure becomes a ChunkFailure.

    Examples
    --------
    >>> run_one(lambda i: i[0] + 1, (1,), 0)
    2
    >>> type(run_one(lambda i: 1 / 0, (1,), 2)).__name__
    'ChunkFailure'
    """
    for attempt in itertools.count():
        try:
            return work(idx)
        except Exception as e:  # reported per chunk, never swallowed
            if attempt >= retries:
                return ChunkFailure(idx, e)
    raise AssertionError("unreachable")  # pragma: no cover


class Body:
    """A task's body: ``(index, result)`` for each index of a batch, in order (picklable).

    ``batched=False``: ``work(index)`` per chunk, each retried ``retries``
    times. ``batched=True``: ``work(batch)`` returns the whole list itself
    (one batched read for all of them) and handles its own retries; if it
    raises, every chunk of the batch fails with that error.

    Examples
    --------
    >>> Body(lambda i: i[0] * 2, 0, False)([(1,), (2,)])
    [((1,), 2), ((2,), 4)]
    """

    __slots__ = ("batched", "retries", "work")

    def __init__(self, work: Callable, retries: int = 0, batched: bool = False) -> None:
        self.work = work
        self.retries = retries
        self.batched = batched

    def __reduce__(self):
        return (type(self), (self.work, self.retries, self.batched))

    def __call__(
        self, batch: list[Index], stop: Callable[[], bool] | None = None
    ) -> list[tuple[Index, Any]]:
        if self.batched:
            try:
                return self.work(batch)
            except Exception as e:  # the batch failed as a whole: so did each of its chunks
                return [(idx, ChunkFailure(idx, e)) for idx in batch]
        results = []
        for idx in batch:
            if stop is not None and stop():
                break
            results.append((idx, run_one(self.work, idx, self.retries)))
        return results


# -- threads: the channel between task threads and the consumer ---------------------------------
class _Channel:
    """Batches of results travelling from task threads to the consumer, with the memory bound.

    ``held`` counts the chunks claimed by tasks and not yet released by the
    consumer; a task claims the next batch only while ``held`` stays within
    ``window``. Claims follow index order, so the batch an ordered consumer
    waits for is always claimed already or first in line: no deadlock, whatever
    order Dask starts tasks in.
    """

    def __init__(self, window: int, ordered: bool) -> None:
        lock = threading.Lock()
        self.room = threading.Condition(lock)  # tasks wait here for window room
        self.arrived = threading.Condition(lock)  # the consumer waits here for batches
        self.window = window
        self.ordered = ordered
        self.queued: deque[Batch] = deque()  # enumerated, not yet claimed
        self.ready: dict[int, list] = {}  # ordered: finished batches by first sequence number
        self.arrivals: deque[list] = deque()  # unordered: finished batches, as they came
        self.next_seq = 0  # ordered: the first sequence number of the next batch to yield
        self.held = 0
        self.cancelled = False
        self.enumerated = False  # every batch has been queued
        self.error: BaseException | None = None

    def queue(self, batches: list[Batch], last: bool) -> None:
        """The batches of the next graph (``last``: no more will follow)."""
        with self.room:
            self.queued.extend(batches)
            self.enumerated = last

    def claim(self) -> Batch | None:
        """The next batch, once it fits the window; None when cancelled or none is left."""
        with self.room:
            while not self.cancelled and self.queued:
                n = len(self.queued[0])
                if self.held + n <= self.window or self.held == 0:
                    self.held += n
                    return self.queued.popleft()
                self.room.wait()
            return None

    def put(self, first: int, results: list[tuple[Index, Any]]) -> None:
        with self.arrived:
            if self.ordered:
                self.ready[first] = results
            else:
                self.arrivals.append(results)
            self.arrived.notify()

    def take(self, release: int) -> list[tuple[Index, Any]] | None:
        """Release the consumer's last batch, then the next batch (None: all done)."""
        with self.arrived:
            if release:
                self.held -= release
                self.room.notify_all()
            while True:
                if self.ordered:
                    batch = self.ready.pop(self.next_seq, None)
                    if batch is not None:
                        self.next_seq += len(batch)
                        return batch
                elif self.arrivals:
                    return self.arrivals.popleft()
                if self.error is not None:
                    raise self.error
                if self.enumerated and not self.queued and self.held == 0:
                    return None
                self.arrived.wait()

    def cancel(self) -> None:
        with self.room:
            self.cancelled = True
            self.room.notify_all()
            self.arrived.notify_all()

    def finish(self, error: BaseException | None) -> None:
        """The producer is done: everything was queued, or enumerating failed."""
        with self.room:
            self.enumerated = True
            self.error = self.error or error
            self.room.notify_all()
            self.arrived.notify_all()


def _lane(channel: _Channel, body: Body) -> None:
    """One Dask task: claim a batch, read it, hand it over whole; again, until none is left."""
    stop = lambda: channel.cancelled  # noqa: E731
    while (items := channel.claim()) is not None:
        channel.put(items[0][0], body([idx for _, idx in items], stop))
    return None  # results travel through the channel, never through Dask's cache


def _produce(
    channel: _Channel,
    batches: Iterator[Batch],
    body: Body,
    crew: _Crew,
    name: str,
    batches_per_graph: int,
) -> None:
    """Run the batches as successive Dask graphs on the threaded scheduler.

    A graph has one task per worker thread, each claiming the graph's batches
    one after another until none is left, so a thread goes from one batch to
    the next without a round trip through the scheduler. The next graph's
    batches are enumerated before the current graph runs, so the consumer
    learns that the stream is complete as soon as the last graph starts.
    """
    error = None
    try:
        window = list(itertools.islice(batches, batches_per_graph))
        for n in itertools.count():
            if not window or channel.cancelled:
                break
            following = list(itertools.islice(batches, batches_per_graph))
            channel.queue(window, last=not following)
            lane = (partial(_lane, channel, body),)
            dsk = {(f"{name}-{n}", i): lane for i in range(min(len(window), crew.workers))}
            dask.threaded.get(dsk, list(dsk), pool=crew.pool)
            window = following
    except BaseException as e:  # e.g. a user's filter raised while we enumerated
        error = e
    finally:
        channel.finish(error)


# -- threads: the threads themselves, kept between streams ---------------------------------------
class _Crew:
    """A driver thread and ``workers`` task threads, used by one stream at a time.

    Starting a thread costs about 0.2 ms on a busy 2-core machine, a
    noticeable part of a stream of a few milliseconds, so idle crews are kept
    for the next stream. A crew is never shared by two running streams: each
    blocks its tasks on its own consumer, and that consumer may be waiting
    for the other stream.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="zarrflow-task")
        self.driver = ThreadPoolExecutor(1, thread_name_prefix="zarrflow-driver")

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False)
        self.driver.shutdown(wait=False)


_IDLE_CREWS = 2  # idle crews kept per size
_idle: dict[int, list[_Crew]] = {}
_idle_lock = threading.Lock()


def _lease(workers: int) -> _Crew:
    with _idle_lock:
        crews = _idle.get(workers)
        if crews:
            return crews.pop()
    return _Crew(workers)


def _give_back(crew: _Crew) -> None:
    with _idle_lock:
        crews = _idle.setdefault(crew.workers, [])
        if len(crews) < _IDLE_CREWS:
            crews.append(crew)
            return
    crew.shutdown()


_live: weakref.WeakSet[_Channel] = weakref.WeakSet()  # channels of streams being consumed


def _forget_crews() -> None:
    """In a forked child: the parent's threads do not exist here."""
    global _idle_lock
    _idle_lock = threading.Lock()
    _idle.clear()


def _cancel_live() -> None:
    """At interpreter exit: cancel streams never closed, so that their threads can end."""
    for channel in list(_live):
        channel.cancel()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_crews)
_at_exit = getattr(threading, "_register_atexit", None)  # runs before threads are joined
if _at_exit is not None:
    _at_exit(_cancel_live)


def _threads(body, indices, parallel, ordered, batch, name, boundary=None):
    """Batches of ``indices`` as Dask tasks on a leased crew; yield per chunk."""
    channel = _Channel(2 * parallel * batch, ordered)
    _live.add(channel)
    batches = numbered_batches(indices, batch, boundary)
    crew = _lease(parallel)
    producing: Future = crew.driver.submit(
        _produce, channel, batches, body, crew, name, _BATCHES_PER_GRAPH
    )
    release = 0
    try:
        while (results := channel.take(release)) is not None:
            release = len(results)
            results.reverse()  # pop from the end: a yielded chunk is no longer held here
            while results:
                yield results.pop()
    finally:
        channel.cancel()
        wait_futures([producing])  # the graph ends once its running tasks have
        _live.discard(channel)
        _give_back(crew)


def numbered_batches(
    indices: Iterable[Index], batch: int, boundary: Boundary = None
) -> Iterator[Batch]:
    """``(sequence number, index)`` lists of at most ``batch`` indices, lazily.

    A batch never spans two values of ``boundary(index)`` (a sharded array's
    batches stay within one shard).

    Examples
    --------
    >>> [[i for _, i in b] for b in numbered_batches([(0,), (1,), (2,)], 2)]
    [[(0,), (1,)], [(2,)]]
    >>> [len(b) for b in numbered_batches([(0,), (1,), (2,)], 2, lambda i: i[0] // 1)]
    [1, 1, 1]
    """
    numbered = enumerate(indices)
    if boundary is None:
        while chunk := list(itertools.islice(numbered, batch)):
            yield chunk
        return
    current: Batch = []
    mark = None
    for seq, idx in numbered:
        here = boundary(idx)
        if current and (len(current) >= batch or here != mark):
            yield current
            current = []
        current.append((seq, idx))
        mark = here
    if current:
        yield current


# -- threads: short streams stay inline ----------------------------------------------------------
def _inline_limit() -> float:
    """Seconds of projected work under which a stream stays in the caller's thread."""
    if Callback.active:  # local diagnostics (ProgressBar, Profiler) watch graphs: show them one
        return 0.0
    return float(dask.config.get("zarrflow.stream_inline_seconds", _INLINE_SECONDS))


def _local(body, indices, parallel, ordered, batch, name, boundary=None):
    """Stream inline while the stream is projected to be short, then as Dask tasks.

    Every ``_SAMPLE`` chunks (at once after a chunk slower than an eighth of
    the limit) the stream projects its total: the time so far plus the
    typical time per chunk times the chunks known to remain. The time per
    chunk is the stream's own: the read and the consumer's time until it asks
    for the next chunk; the typical one is the lower of the last two blocks'
    means, so a block stretched by another process taking the core does not
    count. The same measure sizes the tasks that follow: batches of about
    ``_TASK_SECONDS`` (at most ``batch`` chunks), on at most as many threads
    as the cores can keep busy (:func:`_workers`).
    """
    limit = _inline_limit()
    if limit <= 0:
        yield from _threads(body, indices, parallel, ordered, batch, name, boundary)
        return
    source = iter(indices)
    ahead = deque(itertools.islice(source, _PEEK))
    more = len(ahead) == _PEEK  # the source may hold more than ``ahead``
    slow = limit / _SAMPLE
    start = last = now = time.perf_counter()
    cpu_start = time.thread_time()
    block, previous, typical = 0, math.inf, 0.0
    step = batch if boundary is not None else 1  # a shard's batch at once; else a slow start
    while ahead:
        items = _take(ahead, step if body.batched else 1, boundary)
        step = min(batch, 2 * step)
        yield from body(items)
        block += len(items)
        now = time.perf_counter()
        if block == _SAMPLE or now - last >= slow:
            mean = (now - last) / block
            typical = min(mean, previous)
            if now - start + typical * len(ahead) > limit:
                break
            previous, last, block = mean, now, 0
            if more and len(ahead) < _PEEK // 2:
                top_up = list(itertools.islice(source, _PEEK - len(ahead)))
                more = len(top_up) == _PEEK - len(ahead)
                ahead.extend(top_up)
    if not ahead:
        return
    workers = _workers(parallel, time.thread_time() - cpu_start, now - start)
    size = max(1, min(batch, math.ceil(_TASK_SECONDS / max(typical, 1e-9))))
    if boundary is not None:
        size = batch  # a batch is (part of) one shard: read it with the fewest requests
    rest = itertools.chain(ahead, source) if more else ahead
    yield from _threads(body, rest, workers, ordered, size, name, boundary)


def _take(ahead: deque, n: int, boundary: Boundary) -> list[Index]:
    """Up to ``n`` indices from the front of ``ahead``, all of one ``boundary`` value."""
    items = [ahead.popleft()]
    mark = boundary(items[0]) if boundary is not None else None
    while ahead and len(items) < n:
        if boundary is not None and boundary(ahead[0]) != mark:
            break
        items.append(ahead.popleft())
    return items


def _workers(parallel: int, cpu: float, wall: float) -> int:
    """Threads worth running: enough to keep the cores busy, at most ``parallel``.

    A stream that spent ``cpu`` seconds of its ``wall`` seconds computing
    (rather than waiting on storage) keeps about ``cores × wall / cpu`` readers
    busy: the number of cores when it is all decoding, many more when it is
    mostly waiting. More threads than that only contend for the cores and
    the GIL.
    """
    if cpu <= 0 or wall <= 0:
        return parallel
    cores = default_parallelism()
    return max(1, min(parallel, max(cores, math.ceil(cores * wall / cpu))))


def _sync(body: Body, indices, batch: int, boundary: Boundary = None):
    """In the caller's thread, in order: a batched body reads ``batch`` chunks at a time."""
    for items in numbered_batches(indices, batch if body.batched else 1, boundary):
        yield from body([idx for _, idx in items])


def _futures(backend: Backend, body, indices, parallel, ordered, timeout, batch, name, boundary):
    """Sliding window of futures on a distributed Client or a process pool."""
    from zarrflow.parallel.futures import FuturePool

    with FuturePool(backend, parallel) as pool:
        yield from pool.stream(
            body, numbered_batches(indices, batch, boundary), ordered, timeout, name
        )


def run_chunk_tasks(
    work: Work,
    indices: Iterable[Index],
    *,
    backend: Backend,
    parallel: int,
    ordered: bool = True,
    timeout: float | None = None,
    retries: int = 0,
    on_error: str = "raise",
    batch: int = 1,
    total: int | None = None,
    progress_callback: Callable[[int, int], None] | None = None,
    name: str = "zarrflow-map",
    what: str = "parallel operation",
    batched: bool = False,
    boundary: Boundary = None,
) -> Iterator[tuple[Index, Any]]:
    """Yield ``(chunk_index, work(chunk_index))`` for every index, in parallel.

    Parameters
    ----------
    work
        The per-chunk function (picklable for clusters and process pools);
        with ``batched``, a function of a batch of indices returning
        ``(index, result)`` for each (see :class:`Body`).
    indices
        Chunk indices in grid order, already filtered; consumed lazily.
    backend, parallel
        Where tasks run and how many at once (on threads, a short stream runs
        inline, and a decode-bound one on no more threads than cores).
    ordered
        Yield in the order of ``indices`` (else as tasks complete).
    timeout
        Seconds one chunk may take; a late chunk fails with ChunkTimeoutError.
    retries
        Extra attempts for a chunk whose work raised.
    on_error
        ``"raise"``: the first failure cancels the rest and raises
        :class:`ParallelChunkError` (a timeout raises ChunkTimeoutError);
        ``"return"``: a :class:`ChunkFailure` is yielded in place of the result.
    batch
        The most chunks per task (for small chunks, where per-task overhead
        dominates); on threads a task takes fewer when chunks are measured slow.
    total, progress_callback
        ``progress_callback(done, total)`` runs in the caller's thread after each
        yielded chunk.
    name
        Task key prefix shown by Dask's diagnostics and dashboard.
    what
        What to call the operation in error messages.
    batched, boundary
        ``work`` takes a batch (:class:`Body`); batches never span two values
        of ``boundary(index)``.
    """
    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', not {on_error!r}")
    parallel = max(1, int(parallel))
    if timeout is not None:
        batch = 1
    body = Body(work, retries, batched)
    if backend.kind == "sync" or (parallel == 1 and backend.kind == "threads" and not timeout):
        results = _sync(body, indices, batch, boundary)
    elif backend.kind == "threads" and timeout is None:
        results = _local(body, indices, parallel, ordered, batch, name, boundary)
    else:
        results = _futures(
            backend, body, indices, parallel, ordered, timeout, batch, name, boundary
        )
    try:
        yield from deliver(results, on_error, what, total, progress_callback)
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def deliver(
    results: Iterable[tuple[Index, Any]],
    on_error: str,
    what: str,
    total: int | None = None,
    progress_callback: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[Index, Any]]:
    """Hand ``(index, result)`` pairs to the consumer, reporting progress in its thread.

    A :class:`ChunkFailure` raises with ``on_error="raise"`` (a timeout as
    itself, anything else as a :class:`ParallelChunkError` naming ``what``
    and the chunk) and is yielded in place of the result with ``"return"``.
    """
    for done, (idx, result) in enumerate(results, 1):
        if isinstance(result, ChunkFailure) and on_error == "raise":
            if isinstance(result.exception, ChunkTimeoutError):
                raise result.exception
            raise ParallelChunkError(what, [result]) from result.exception
        if progress_callback is not None:
            progress_callback(done, total if total is not None else done)
        yield idx, result
