"""``StoreWrapper``: a store that hands every call to another one.

The base of stores that change one aspect of an inner store and pass the
rest through: :class:`~zarrflow.storage.readonly.ReadOnlyStore` (refuses
writes), :class:`~zarrflow.storage.retrying.RetryingStore` (retries transient
failures), :class:`~zarrflow.testing.faults.FaultyStore` (injects them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from zarrflow.storage.base import (
    ByteRequest,
    Condition,
    IfGeneration,
    NotModified,
    Store,
    Versioned,
)

__all__ = ["StoreWrapper"]


class StoreWrapper(Store):
    """Every operation and capability of ``inner``, unchanged; subclasses override some.

    Reads, listing and single writes go straight to ``inner`` (its batched
    reads included); batch writes go key by key through :meth:`set` and
    :meth:`delete`.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = StoreWrapper(MemoryStore("doc-wrapper"))
    >>> store.set("k", b"v")
    >>> store.inner.get("k"), store.url
    (b'v', 'memory://doc-wrapper')
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.read_only = inner.read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.inner,))

    # capabilities ---------------------------------------------------------------------
    @property
    def supports_writes(self) -> bool:
        return not self.read_only and self.inner.supports_writes

    @property
    def supports_deletes(self) -> bool:
        return not self.read_only and self.inner.supports_deletes

    @property
    def supports_listing(self) -> bool:
        return self.inner.supports_listing

    @property
    def supports_partial_reads(self) -> bool:
        return self.inner.supports_partial_reads

    @property
    def is_remote(self) -> bool:
        return self.inner.is_remote

    @property
    def retries_requests(self) -> bool:
        return self.inner.retries_requests

    @property
    def supports_generations(self) -> bool:
        return self.inner.supports_generations

    # reads -----------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        return self.inner.get_range(key, request)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.inner.get_many(keys)

    def get_ranges(self, requests: Sequence[tuple[str, ByteRequest]]) -> list[bytes | None]:
        return self.inner.get_ranges(requests)

    def get_versioned(self, key: str) -> Versioned | None:
        return self.inner.get_versioned(key)

    def get_range_versioned(
        self, key: str, request: ByteRequest, generation: str | None = None
    ) -> Versioned | None:
        return self.inner.get_range_versioned(key, request, generation)

    def get_ranges_versioned(
        self, key: str, requests: Sequence[ByteRequest], generation: str | None = None
    ) -> list[bytes] | None:
        return self.inner.get_ranges_versioned(key, requests, generation)

    def get_if_changed(self, key: str, generation: str) -> Versioned | NotModified | None:
        return self.inner.get_if_changed(key, generation)

    def get_many_if_changed(
        self, requests: Sequence[tuple[str, str | None]]
    ) -> list[Versioned | NotModified | None]:
        return self.inner.get_many_if_changed(requests)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        return self.inner.list_prefix(prefix)

    def list_dir(self, prefix: str) -> list[str]:
        return self.inner.list_dir(prefix)

    # writes ----------------------------------------------------------------------------
    # Batch writes (set_many, delete_many, try_set_many, try_delete_many,
    # delete_prefix) keep the Store defaults, which go key by key through
    # set and delete: a subclass that intercepts those two sees every write.
    def set(self, key: str, value: bytes) -> None:
        self.inner.set(key, value)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def set_if(self, key: str, value: bytes, condition: Condition) -> str:
        return self.inner.set_if(key, value, condition)

    def delete_if(self, key: str, condition: IfGeneration) -> None:
        self.inner.delete_if(key, condition)

    def close(self) -> None:
        self.inner.close()
