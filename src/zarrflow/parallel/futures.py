"""A sliding window of futures on a ``distributed.Client`` or a process pool.

At most ``parallel`` tasks are submitted at once; each finished one makes room
for the next. In ordered mode a task is submitted only when its results fit
the window behind the next result to yield, so memory stays bounded even when
one early chunk is slow.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as cf_wait
from typing import Any

from zarrflow.errors import ChunkFailure, ChunkTimeoutError
from zarrflow.parallel.scheduling import Backend

__all__ = ["FuturePool"]

Index = tuple[int, ...]


class FuturePool:
    """Submit batches of chunk work as futures and yield their results.

    Examples
    --------
    >>> from zarrflow.parallel.scheduling import Backend
    >>> with FuturePool(Backend("processes"), 1) as pool:
    ...     pass
    """

    def __init__(self, backend: Backend, parallel: int) -> None:
        self.backend = backend
        self.parallel = parallel
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> FuturePool:
        if self.backend.kind == "processes":
            from dask.multiprocessing import get_context

            self._executor = ProcessPoolExecutor(self.parallel, mp_context=get_context())
        elif self.backend.kind in ("threads", "sync"):
            # spare threads so that abandoned (timed-out) chunks do not shrink the pool
            self._executor = ThreadPoolExecutor(2 * self.parallel, thread_name_prefix="zarrflow")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._executor is not None:
            wait = self.backend.kind == "processes"  # never wait for an abandoned thread
            self._executor.shutdown(wait=wait, cancel_futures=True)

    def _submit(self, fn: Callable, *args: Any, key: str):
        if self._executor is not None:
            return self._executor.submit(fn, *args)
        return self.backend.client.submit(fn, *args, key=key, pure=False)

    def _wait(self, futures: list, timeout: float | None) -> list:
        if self._executor is not None:
            done, _ = cf_wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
            return list(done)
        from distributed import wait

        try:  # our client, not the default one: a scheduler address makes a private client
            with self.backend.client.as_current():
                done, _ = wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        return list(done)

    @staticmethod
    def _cancel(futures) -> None:
        for fut in futures:
            fut.cancel()

    def stream(
        self,
        body: Callable[[list[Index]], list[tuple[Index, Any]]],
        batches: Iterator[list[tuple[int, Index]]],
        ordered: bool,
        timeout: float | None,
        name: str,
    ) -> Iterator[tuple[Index, Any]]:
        """Yield ``(index, result)`` as the window of futures completes.

        Each future runs ``body(batch)`` (see :class:`~zarrflow.parallel.driver.Body`).
        """
        token = uuid.uuid4().hex[:12]
        inflight: dict[Any, tuple[float, list[tuple[int, Index]]]] = {}
        ready: dict[int, tuple[Index, Any]] = {}
        arrivals: list[int] = []
        next_seq = 0
        pending: list[tuple[int, Index]] | None = next(batches, None)
        window = 2 * self.parallel * (len(pending) if pending else 1)
        try:
            while True:
                while (
                    pending is not None
                    and len(inflight) < self.parallel
                    and (not ordered or pending[-1][0] < next_seq + window)
                ):
                    fut = self._submit(
                        body, [i for _, i in pending], key=f"{name}-{token}-{pending[0][0]}"
                    )
                    inflight[fut] = (time.monotonic(), pending)
                    pending = next(batches, None)
                emitted = False
                if ordered:
                    while next_seq in ready:
                        yield ready.pop(next_seq)
                        next_seq += 1
                        emitted = True
                else:
                    while arrivals:
                        yield ready.pop(arrivals.pop(0))
                        emitted = True
                if emitted:
                    continue
                if not inflight:
                    if pending is None:
                        return
                    continue
                wait_for = None
                if timeout is not None:
                    oldest = min(t0 for t0, _ in inflight.values())
                    wait_for = max(0.0, oldest + timeout - time.monotonic())
                done = self._wait(list(inflight), wait_for)
                finished = [(f, _results(f, inflight[f][1])) for f in done]
                if not finished:
                    finished = self._expire(inflight, timeout, name)
                for fut, results in finished:
                    _, items = inflight.pop(fut)
                    for (seq, _), (idx, result) in zip(items, results, strict=True):
                        ready[seq] = (idx, result)
                        arrivals.append(seq)
        finally:
            self._cancel(list(inflight))

    def _expire(self, inflight: dict, timeout: float | None, name: str) -> list:
        """Futures past their deadline: cancelled, their chunks marked timed out."""
        now = time.monotonic()
        late = []
        for fut, (t0, items) in inflight.items():
            if timeout is not None and now - t0 >= timeout:
                fut.cancel()
                failures = [
                    (idx, ChunkFailure(idx, ChunkTimeoutError(idx, timeout, name)))
                    for _, idx in items
                ]
                late.append((fut, failures))
        return late


def _results(fut: Future, items: list[tuple[int, Index]]) -> list[tuple[Index, Any]]:
    try:
        return fut.result()
    except Exception as e:  # the task itself died (worker lost, unpicklable result...)
        return [(idx, ChunkFailure(idx, e)) for _, idx in items]
