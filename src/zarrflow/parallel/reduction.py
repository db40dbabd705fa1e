"""``reduce_chunks`` on a ``distributed`` cluster: a tree of tasks that combine on the workers.

A **leaf** task (``zarrflow-map-<token>-<n>``) reads a batch of chunks with
one batched read, applies ``fn`` to each chunk and folds the results with
``combine``; a **merge** task (``zarrflow-reduce-<token>-<n>``) folds up to
``FAN_IN`` finished leaves or merges. Only the final value travels to the
client; per chunk, nothing does.

Leaves are submitted as a sliding window (at most ``2 × parallel`` in
flight), so on the cluster at most the running leaves' batches of chunks are
held, and the client learns of each finished leaf (status only, not its
value) to report progress in the caller's thread and to submit the next.
With ``on_error="raise"`` a leaf whose chunk failed (after ``retries``) fails
with :class:`~zarrflow.ParallelChunkError` naming the chunk, and the rest is
cancelled; with ``"return"`` the :class:`~zarrflow.ChunkFailure` is folded
with ``combine`` like any result, as the streaming fold does.

``combine`` must be associative and commutative (results arrive in no fixed
order, as with the streaming fold); ``initial`` is combined once, at the end.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from zarrflow.errors import ChunkFailure, ParallelChunkError
from zarrflow.parallel.driver import numbered_batches

__all__ = ["FAN_IN", "Folded", "tree_reduce"]

#: results one merge task folds
FAN_IN = 8
Index = tuple[int, ...]


class Folded:
    """A partial reduction: the value folded so far, or nothing yet.

    Examples
    --------
    >>> f = Folded()
    >>> f.add(2, max); f.add(5, max); f.value
    5
    """

    __slots__ = ("empty", "value")

    def __init__(self) -> None:
        self.empty = True
        self.value: Any = None

    def add(self, value: Any, combine: Callable[[Any, Any], Any]) -> None:
        """Fold ``value`` in."""
        self.value = value if self.empty else combine(self.value, value)
        self.empty = False

    def __reduce__(self):
        return (_rebuild_folded, (self.empty, self.value))


def _rebuild_folded(empty: bool, value: Any) -> Folded:
    folded = Folded()
    folded.empty, folded.value = empty, value
    return folded


def fold_batch(
    work: Callable[[list[Index]], list[tuple[Index, Any]]],
    batch: list[Index],
    combine: Callable[[Any, Any], Any],
    raise_failures: bool,
    what: str,
) -> Folded:
    """A leaf task: ``work(batch)`` folded with ``combine`` (failures raised or folded).

    Examples
    --------
    >>> fold_batch(lambda b: [(i, i[0]) for i in b], [(1,), (2,)], max, True, "x").value
    2
    """
    folded = Folded()
    for _, result in work(batch):
        if raise_failures and isinstance(result, ChunkFailure):
            raise ParallelChunkError(what, [result]) from result.exception
        folded.add(result, combine)
    return folded


def merge(combine: Callable[[Any, Any], Any], *parts: Folded) -> Folded:
    """A merge task: the partial reductions ``parts`` folded into one.

    Examples
    --------
    >>> a, b = Folded(), Folded()
    >>> a.add(3, max)
    >>> merge(max, a, b).value
    3
    """
    folded = Folded()
    for part in parts:
        if not part.empty:
            folded.add(part.value, combine)
    return folded


def tree_reduce(
    client: Any,
    work: Callable[[list[Index]], list[tuple[Index, Any]]],
    indices: Iterable[Index],
    combine: Callable[[Any, Any], Any],
    initial: Any = None,
    *,
    batch: int,
    parallel: int,
    on_error: str = "raise",
    total: int | None = None,
    progress_callback: Callable[[int, int], None] | None = None,
    boundary: Callable[[Index], Any] | None = None,
    name: str = "zarrflow-map",
    what: str = "reduce_chunks",
) -> Any:
    """Reduce ``work``'s per-chunk results over ``indices`` as a tree of tasks on ``client``.

    See the module notes. ``work`` takes a batch of indices and returns
    ``(index, result or ChunkFailure)`` for each (a
    :class:`~zarrflow.parallel.stream.MapChunks`).
    """
    from distributed import as_completed

    token = uuid.uuid4().hex[:12]
    batches = numbered_batches(indices, batch, boundary)
    sizes: dict[str, int] = {}
    merges = itertools.count()
    outstanding: set = set()

    def submit_leaf(items: list[tuple[int, Index]]) -> Any:
        future = client.submit(
            fold_batch,
            work,
            [i for _, i in items],
            combine,
            on_error == "raise",
            what,
            key=f"{name}-{token}-{items[0][0]}",
            pure=False,
        )
        sizes[future.key] = len(items)
        outstanding.add(future)
        return future

    def submit_merge(parts: list) -> Any:
        key = f"zarrflow-reduce-{token}-{next(merges)}"
        future = client.submit(merge, combine, *parts, key=key, pure=False)
        outstanding.add(future)
        return future

    first = [submit_leaf(b) for b in itertools.islice(batches, 2 * parallel)]
    finished = as_completed(first, loop=client.loop)
    ready: list = []
    done = 0
    try:
        for future in finished:
            outstanding.discard(future)
            if future.status == "error":
                future.result()  # raises the task's exception here, in the caller
            size = sizes.pop(future.key, 0)
            if size:  # a leaf: report its chunks, start the next
                if progress_callback is not None:
                    for d in range(done + 1, done + size + 1):
                        progress_callback(d, total if total is not None else d)
                done += size
                following = next(batches, None)
                if following is not None:
                    finished.add(submit_leaf(following))
            ready.append(future)
            if len(ready) >= FAN_IN:
                finished.add(submit_merge(ready))
                ready = []
        if not ready:
            folded = Folded()
        else:
            final = ready[0] if len(ready) == 1 else submit_merge(ready)
            folded = final.result()
    finally:
        for future in outstanding:
            future.cancel()
    if folded.empty:
        if initial is None:
            raise TypeError("reduce_chunks() of no chunks with no initial value")
        return initial
    return folded.value if initial is None else combine(initial, folded.value)
