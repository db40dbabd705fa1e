"""Run one function over many chunk indices, streaming results back with bounded memory.

This is the engine under ``chunk_stream``, ``parallel_chunk_map`` and
``reduce_chunks``. Each chunk's work is one call of ``work(chunk_index)``, and
the calls run as Dask tasks:

* ``sync`` — inline in the caller's thread, in grid order;
* ``threads`` — Dask graph executions on the local threaded scheduler (so
  ``dask.diagnostics.ProgressBar`` and other local callbacks see them), fed in
  windows from a producer thread;
* ``distributed`` / ``processes`` — futures on a ``Client`` (tasks named
  ``<prefix>-<token>-<n>`` on the dashboard) or a process pool, submitted as a
  sliding window;
* ``threads`` with a ``timeout`` — the same sliding window over a thread pool.
  No scheduler can stop a running Python function, so a chunk past its
  timeout is abandoned (its thread finishes in the background, its result is
  dropped) while the others go on; a Dask graph would wait for it.

Bounds: at most ``parallel`` tasks run at once, and at most ``window`` results
(``2 × parallel × batch`` chunks: the ones in flight plus as many finished and
waiting for the consumer) exist at any time. A consumer that stops early
cancels the rest: no task starts reading after that.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import dask

from zarrflow.errors import ChunkFailure, ChunkTimeoutError, ParallelChunkError
from zarrflow.parallel.scheduling import Backend

__all__ = ["run_chunk_tasks"]

Index = tuple[int, ...]
Work = Callable[[Index], Any]
_DONE = object()


def _run_one(work: Work, idx: Index, retries: int) -> Any:
    """``work(idx)``, retried ``retries`` times; a final failure becomes a ChunkFailure."""
    for attempt in itertools.count():
        try:
            return work(idx)
        except Exception as e:  # reported per chunk, never swallowed
            if attempt >= retries:
                return ChunkFailure(idx, e)
    raise AssertionError("unreachable")  # pragma: no cover


def run_batch(work: Work, batch: list[Index], retries: int) -> list[tuple[Index, Any]]:
    """A task's body on a cluster or process pool: results of a batch of chunks."""
    return [(idx, _run_one(work, idx, retries)) for idx in batch]


class _Channel:
    """Results travelling from task threads to the consumer, with the memory bound."""

    def __init__(self, window: int, ordered: bool) -> None:
        self.cond = threading.Condition()
        self.window = window
        self.ordered = ordered
        self.next_seq = 0  # ordered: the next sequence number to hand out
        self.reserved = 0  # unordered: results reserved but not yet consumed
        self.ready: dict[int, tuple[Index, Any]] = {}
        self.arrivals: deque[int] = deque()
        self.started: dict[int, tuple[float, Index]] = {}
        self.abandoned: set[int] = set()
        self.cancelled = False
        self.expected = 0  # results the producer has promised so far
        self.consumed = 0
        self.all_enumerated = False
        self.error: BaseException | None = None

    def acquire(self, first: int, last: int) -> bool:
        """Block a task until its results fit the window; False once cancelled."""
        with self.cond:
            if self.ordered:
                self.cond.wait_for(lambda: self.cancelled or last < self.next_seq + self.window)
            else:
                n = last - first + 1
                self.cond.wait_for(lambda: self.cancelled or self.reserved + n <= self.window)
                self.reserved += n
            return not self.cancelled

    def start(self, seq: int, idx: Index) -> bool:
        with self.cond:
            if self.cancelled:
                return False
            self.started[seq] = (time.monotonic(), idx)
            return True

    def put(self, seq: int, idx: Index, result: Any) -> None:
        with self.cond:
            self.started.pop(seq, None)
            if seq in self.abandoned:  # timed out already: the late result is dropped
                self.abandoned.discard(seq)
                return
            self.ready[seq] = (idx, result)
            self.arrivals.append(seq)
            self.cond.notify_all()

    def cancel(self) -> None:
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()

    def expect(self, n: int) -> None:
        with self.cond:
            self.expected += n

    def close(self, error: BaseException | None = None) -> None:
        """The producer has enumerated everything (or failed doing so)."""
        with self.cond:
            self.all_enumerated = True
            self.error = self.error or error
            self.cond.notify_all()


def _task(channel: _Channel, items: list[tuple[int, Index]], work: Work, retries: int) -> None:
    if not channel.acquire(items[0][0], items[-1][0]):
        return None
    for seq, idx in items:
        if not channel.start(seq, idx):
            return None
        channel.put(seq, idx, _run_one(work, idx, retries))
    return None  # results travel through the channel, never through Dask's cache


def _produce_threads(
    channel: _Channel,
    batches: Iterator[list[tuple[int, Index]]],
    work: Work,
    retries: int,
    parallel: int,
    name: str,
    tasks_per_graph: int,
) -> None:
    """Run the batches as successive Dask graphs on the threaded scheduler.

    The next window is enumerated before the current graph runs, so the
    consumer learns the total as soon as the last graph starts.
    """
    error = None
    try:
        window = list(itertools.islice(batches, tasks_per_graph))
        for n in itertools.count():
            if not window or channel.cancelled:
                break
            channel.expect(sum(len(items) for items in window))
            following = list(itertools.islice(batches, tasks_per_graph))
            if not following:
                channel.close()
            dsk = {
                (f"{name}-{n}", i): (partial(_task, channel, items, work, retries),)
                for i, items in enumerate(window)
            }
            dask.threaded.get(dsk, list(dsk), num_workers=parallel)
            window = following
    except BaseException as e:  # e.g. a user's filter raised while we enumerated
        error = e
    finally:
        channel.close(error)


def _next_deadline(channel: _Channel, timeout: float | None) -> tuple[float | None, int | None]:
    if timeout is None or not channel.started:
        return None, None
    seq, (t0, _) = min(channel.started.items(), key=lambda kv: kv[1][0])
    return t0 + timeout, seq


def _take(channel: _Channel, timeout: float | None, name: str) -> tuple[int, Index, Any] | Any:
    """The next result for the consumer (ordered or as completed), or _DONE."""
    with channel.cond:
        while True:
            if channel.ordered:
                if channel.next_seq in channel.ready:
                    seq = channel.next_seq
                    idx, result = channel.ready.pop(seq)
                    channel.next_seq += 1
                    channel.consumed += 1
                    channel.cond.notify_all()
                    return seq, idx, result
            else:
                while channel.arrivals:
                    seq = channel.arrivals.popleft()
                    if seq in channel.ready:
                        idx, result = channel.ready.pop(seq)
                        channel.reserved -= 1
                        channel.consumed += 1
                        channel.cond.notify_all()
                        return seq, idx, result
            if channel.error is not None:
                raise channel.error
            if channel.all_enumerated and channel.consumed >= channel.expected:
                return _DONE
            deadline, late = _next_deadline(channel, timeout)
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not channel.cond.wait(wait) and late is not None and late in channel.started:
                _, idx = channel.started.pop(late)
                channel.abandoned.add(late)
                failure = ChunkFailure(idx, ChunkTimeoutError(idx, timeout, name))
                channel.ready[late] = (idx, failure)
                channel.arrivals.append(late)


def _numbered_batches(indices: Iterable[Index], batch: int) -> Iterator[list[tuple[int, Index]]]:
    numbered = enumerate(indices)
    while chunk := list(itertools.islice(numbered, batch)):
        yield chunk


def _threads(work, indices, parallel, ordered, timeout, retries, batch, name):
    window = 2 * parallel * batch
    channel = _Channel(window, ordered)
    batches = _numbered_batches(indices, batch)
    # Dask starts independent tasks in no promised order. Ordered mode gates each
    # task on its position, so a graph never holds more tasks than one window:
    # whatever order Dask picks, the consumer can drain the (complete) previous
    # graph and release every task of the running one — no deadlock.
    # Unordered mode gates on a count any result frees, so graphs can be large.
    tasks_per_graph = 2 * parallel if ordered else max(64, 16 * parallel)
    producer = threading.Thread(
        target=_produce_threads,
        args=(channel, batches, work, retries, parallel, name, tasks_per_graph),
        name=f"{name}-producer",
        daemon=True,
    )
    producer.start()
    try:
        while (item := _take(channel, timeout, name)) is not _DONE:
            _, idx, result = item
            yield idx, result
    finally:
        channel.cancel()
        producer.join(timeout)


def _sync(work, indices, retries):
    for idx in indices:
        yield idx, _run_one(work, idx, retries)


def _futures(backend: Backend, work, indices, parallel, ordered, timeout, retries, batch, name):
    """Sliding window of futures on a distributed Client or a process pool."""
    from zarrflow.parallel.futures import FuturePool

    with FuturePool(backend, parallel) as pool:
        yield from pool.stream(
            run_batch, work, _numbered_batches(indices, batch), ordered, timeout, retries, name
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
) -> Iterator[tuple[Index, Any]]:
    """Yield ``(chunk_index, work(chunk_index))`` for every index, in parallel.

    Parameters
    ----------
    work
        The per-chunk function (picklable for clusters and process pools).
    indices
        Chunk indices in grid order, already filtered; consumed lazily.
    backend, parallel
        Where tasks run and how many at once.
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
        Chunks per task (for tiny chunks, where per-task overhead dominates).
    total, progress_callback
        ``progress_callback(done, total)`` runs in the caller's thread after each
        yielded chunk.
    name
        Task key prefix shown by Dask's diagnostics and dashboard.
    what
        What to call the operation in error messages.
    """
    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', not {on_error!r}")
    parallel = max(1, int(parallel))
    if timeout is not None:
        batch = 1
    if backend.kind == "sync" or (parallel == 1 and backend.kind == "threads" and not timeout):
        results = _sync(work, indices, retries)
    elif backend.kind == "threads" and timeout is None:
        results = _threads(work, indices, parallel, ordered, timeout, retries, batch, name)
    else:
        results = _futures(backend, work, indices, parallel, ordered, timeout, retries, batch, name)
    done = 0
    try:
        for idx, result in results:
            if isinstance(result, ChunkFailure) and on_error == "raise":
                if isinstance(result.exception, ChunkTimeoutError):
                    raise result.exception
                raise ParallelChunkError(what, [result]) from result.exception
            done += 1
            if progress_callback is not None:
                progress_callback(done, total if total is not None else done)
            yield idx, result
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
