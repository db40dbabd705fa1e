"""Retries for stores that do not retry their own requests.

:class:`~zarrflow.storage.FsspecStore` retries every request it makes
(``zarrflow.retries``). Local, memory and zip stores, and wrappers such as
:class:`~zarrflow.testing.faults.FaultyStore`, do not: a
:class:`~zarrflow.errors.TransientStoreError` (or an ``OSError`` with a
transient errno such as ``EAGAIN``) escapes from them at once. The chunk layer
reads and writes through a :class:`RetryingStore` over such a store, so every
chunk operation — streams, maps, ``to_dask``, ``[]`` and ``to_zarr`` — retries
transient failures with the same bounded, jittered backoff as remote requests.

A store whose ``retries_requests`` is True is never wrapped, so no request is
retried by two layers. Versioned reads and conditional writes are retried
like the others; a :class:`~zarrflow.errors.GenerationConflictError` is an
answer, not a fault, and passes through at once (as does a conflict that a
retried ``set_if`` meets because its first, failed-looking try had landed:
the caller's read-modify-write loop re-reads and merges again). The first
try is a plain call: the wrapper costs one Python call on the hot path and
nothing else until a try fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

from zarrflow.storage.base import (
    ByteRequest,
    Condition,
    IfGeneration,
    NotModified,
    Store,
    Versioned,
)
from zarrflow.storage.failures import failure_kind
from zarrflow.storage.retry import Failure, call_sync
from zarrflow.storage.wrapper import StoreWrapper

__all__ = ["RetryingStore", "batch_or_each", "with_retries"]

T = TypeVar("T")


def with_retries(store: Store) -> Store:
    """``store`` itself if it retries its own requests, else a :class:`RetryingStore` over it.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> type(with_retries(MemoryStore())).__name__
    'RetryingStore'
    >>> store = with_retries(MemoryStore())
    >>> with_retries(store) is store
    True
    """
    if store.retries_requests:
        return store
    return RetryingStore(store)


def _retry(call: Callable[..., T], args: tuple[Any, ...], first: BaseException) -> T:
    """Try ``call(*args)`` again after its first try raised the transient ``first``.

    The retries are :func:`~zarrflow.storage.retry.call_sync`'s, under the
    :class:`~zarrflow.storage.retry.RetryPolicy` read from ``zarrflow.retries``
    now: one retry loop for every store. A failure that outlasts the attempts
    is raised with a note saying how many tries were made.
    """
    outcome = call_sync(partial(call, *args), failed=first)
    if not isinstance(outcome, Failure):
        return outcome
    error = outcome.exception
    if outcome.kind == "transient":
        error.add_note(f"zarrflow gave up after {outcome.attempts} attempt(s) (zarrflow.retries)")
    raise error


def batch_or_each(call: Callable[[], T], one_by_one: Callable[[], T]) -> T:
    """``call()``; after a transient failure, ``one_by_one()`` (each item retried alone).

    Retrying a whole batch would fail again as soon as any one of its items
    does; item by item, each gets its own attempts.

    Examples
    --------
    >>> def batch():
    ...     raise ConnectionResetError("one key failed")
    >>> batch_or_each(batch, lambda: ["each", "alone"])
    ['each', 'alone']
    """
    try:
        return call()
    except Exception as exc:
        if failure_kind(exc) != "transient":
            raise
        return one_by_one()


class RetryingStore(StoreWrapper):
    """``inner`` with each transient failure retried per ``zarrflow.retries``.

    Missing keys and permanent errors pass through at once. A batched read
    that fails transiently is redone key by key, each key with its own
    attempts (every store operation is idempotent): a key that failed in the
    batch is tried at most ``attempts + 1`` times in all. Batch writes go key
    by key (see :class:`~zarrflow.storage.wrapper.StoreWrapper`), each retried.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = RetryingStore(MemoryStore())
    >>> store.set("k", b"v")
    >>> store.get("k"), store.retries_requests
    (b'v', True)
    """

    def _do(self, call: Callable[..., T], *args: Any) -> T:
        try:
            return call(*args)
        except Exception as exc:
            if failure_kind(exc) != "transient":
                raise
            return _retry(call, args, exc)

    @property
    def retries_requests(self) -> bool:
        return True

    def get(self, key: str) -> bytes | None:
        return self._do(self.inner.get, key)

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        return self._do(self.inner.get_range, key, request)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return batch_or_each(lambda: self.inner.get_many(keys), lambda: [self.get(k) for k in keys])

    def get_ranges(self, requests: Sequence[tuple[str, ByteRequest]]) -> list[bytes | None]:
        return batch_or_each(
            lambda: self.inner.get_ranges(requests),
            lambda: [self.get_range(k, r) for k, r in requests],
        )

    def get_versioned(self, key: str) -> Versioned | None:
        return self._do(self.inner.get_versioned, key)

    def get_range_versioned(
        self, key: str, request: ByteRequest, generation: str | None = None
    ) -> Versioned | None:
        return self._do(self.inner.get_range_versioned, key, request, generation)

    def get_ranges_versioned(
        self, key: str, requests: Sequence[ByteRequest], generation: str | None = None
    ) -> list[bytes] | None:
        return self._do(self.inner.get_ranges_versioned, key, requests, generation)

    def get_if_changed(self, key: str, generation: str) -> Versioned | NotModified | None:
        return self._do(self.inner.get_if_changed, key, generation)

    def get_many_if_changed(
        self, requests: Sequence[tuple[str, str | None]]
    ) -> list[Versioned | NotModified | None]:
        return batch_or_each(
            lambda: self.inner.get_many_if_changed(requests),
            lambda: [
                self.get_versioned(k) if g is None else self.get_if_changed(k, g)
                for k, g in requests
            ],
        )

    def exists(self, key: str) -> bool:
        return self._do(self.inner.exists, key)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        return iter(self._do(lambda p: list(self.inner.list_prefix(p)), prefix))

    def list_dir(self, prefix: str) -> list[str]:
        return self._do(self.inner.list_dir, prefix)

    def set(self, key: str, value: bytes) -> None:
        self._do(self.inner.set, key, value)

    def delete(self, key: str) -> None:
        self._do(self.inner.delete, key)

    def set_if(self, key: str, value: bytes, condition: Condition) -> str:
        return self._do(self.inner.set_if, key, value, condition)

    def delete_if(self, key: str, condition: IfGeneration) -> None:
        self._do(self.inner.delete_if, key, condition)
