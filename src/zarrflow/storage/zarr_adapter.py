"""``ZarrPythonStore``: a zarr-python 3 ``Store`` (and so icechunk's) as a zarrflow Store.

zarr-python's stores are asynchronous; this adapter calls them through
zarr-python's own sync helper (``zarr.core.sync.sync``, which runs the
coroutine on zarr's event loop thread), so inside a Dask task the call is
synchronous, as every zarrflow store call is. Batches (``get_many``,
``get_ranges``, ``set_many``) are one ``asyncio.gather`` of the store's
coroutines, so a remote zarr-python store overlaps its requests.

zarr is imported only when such a store is adapted: zarrflow has no runtime
dependency on it. zarr-python's store API has no generations or conditional
writes, so ``supports_generations`` is False here: a partial chunk write is
safe against writers of the same process (locks) or cluster (distributed
locks) only, not against independent processes. An icechunk session adds its
own guard: concurrent sessions conflict at ``commit``.

Pickling pickles the wrapped store (icechunk sessions and zarr's own local
and object stores pickle; a zarr ``MemoryStore`` pickles a copy, as
zarr-python's does).

Examples
--------
>>> import zarr.storage
>>> store = ZarrPythonStore(zarr.storage.MemoryStore())
>>> store.set("a/zarr.json", b"{}")
>>> store.get("a/zarr.json"), store.get("missing"), sorted(store.list_prefix("a/"))
(b'{}', None, ['a/zarr.json'])
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from zarrflow.errors import ReadOnlyError, StoreError
from zarrflow.storage.base import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    check_byte_request,
)
from zarrflow.storage.keys import validate_key

__all__ = ["ZarrPythonStore", "is_zarr_python_store"]


def is_zarr_python_store(obj: object) -> bool:
    """True for an instance of ``zarr.abc.store.Store`` (checked without importing zarr).

    Examples
    --------
    >>> is_zarr_python_store("memory://x")
    False
    """
    return any(
        c.__name__ == "Store" and c.__module__ == "zarr.abc.store" for c in type(obj).__mro__
    )


def _sync(coroutine: Any) -> Any:
    from zarr.core.sync import sync

    return sync(coroutine)


async def _gather(coroutines: list) -> list:
    return list(await asyncio.gather(*coroutines))


async def _listed(iterator: Any) -> list[str]:
    return [key async for key in iterator]


class ZarrPythonStore(Store):
    """A zarrflow :class:`Store` over a zarr-python 3 store object.

    Parameters
    ----------
    store : zarr.abc.store.Store
        The zarr-python store: ``LocalStore``, ``MemoryStore``, ``FsspecStore``,
        ``ObjectStore``, an icechunk session's ``store`` ...

    Examples
    --------
    >>> import zarr.storage, zarrflow as zf
    >>> zs = zarr.storage.MemoryStore()
    >>> a = zf.create(zs, shape=(4,), chunks=(2,), dtype="i2")
    >>> a[:] = [1, 2, 3, 4]
    >>> zarr.open_array(zs, mode="r")[:].tolist()
    [1, 2, 3, 4]
    """

    def __init__(self, store: Any) -> None:
        if not is_zarr_python_store(store):
            raise StoreError(f"{store!r} is not a zarr-python store (zarr.abc.store.Store)")
        self.store = store
        self.read_only = bool(store.read_only)
        self.url = f"zarr-python:{store}"
        from zarr.core.buffer import default_buffer_prototype

        self._prototype = default_buffer_prototype()

    def __reduce__(self) -> tuple[type[ZarrPythonStore], tuple[Any]]:
        return (ZarrPythonStore, (self.store,))

    # capabilities -------------------------------------------------------------
    @property
    def supports_listing(self) -> bool:
        return bool(self.store.supports_listing)

    @property
    def is_remote(self) -> bool:
        """True unless the wrapped store is zarr-python's local or memory store."""
        return type(self.store).__name__ not in ("LocalStore", "MemoryStore", "ZipStore")

    # conversions --------------------------------------------------------------
    def _request(self, request: ByteRequest | None) -> Any:
        from zarr.abc import store as zstore

        if request is None:
            return None
        if isinstance(request, RangeByteRequest):
            return zstore.RangeByteRequest(request.start, request.end)
        if isinstance(request, OffsetByteRequest):
            return zstore.OffsetByteRequest(request.offset)
        return zstore.SuffixByteRequest(request.suffix)

    async def _get(self, key: str, request: ByteRequest | None = None) -> bytes | None:
        buffer = await self.store.get(
            validate_key(key), prototype=self._prototype, byte_range=self._request(request)
        )
        return None if buffer is None else buffer.to_bytes()

    def _buffer(self, value: bytes) -> Any:
        return self._prototype.buffer.from_bytes(bytes(value))

    def _check_writable(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"store {self.url!r} is read-only: cannot write key {key!r}")

    # the contract -------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        return _sync(self._get(key))

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        check_byte_request(key, request)
        return _sync(self._get(key, request))

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return _sync(_gather([self._get(k) for k in keys]))

    def get_ranges(self, requests: Sequence[tuple[str, ByteRequest]]) -> list[bytes | None]:
        for key, request in requests:
            check_byte_request(key, request)
        return _sync(_gather([self._get(k, r) for k, r in requests]))

    def set(self, key: str, value: bytes) -> None:
        self._check_writable(key)
        _sync(self.store.set(validate_key(key), self._buffer(value)))

    def set_many(self, items: Mapping[str, bytes]) -> None:
        for key in items:
            validate_key(key)
            self._check_writable(key)
        _sync(_gather([self.store.set(k, self._buffer(v)) for k, v in items.items()]))

    def delete(self, key: str) -> None:
        self._check_writable(key)
        _sync(self.store.delete(validate_key(key)))

    def list_prefix(self, prefix: str) -> Iterator[str]:
        return iter(sorted(_sync(_listed(self.store.list_prefix(prefix)))))

    def close(self) -> None:
        """Leave the wrapped store open: its owner (a session, a repository) closes it."""
