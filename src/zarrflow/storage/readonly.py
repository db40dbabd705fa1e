"""A read-only view of any store: what ``mode="r"`` makes of a Store object."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from zarrflow.errors import ReadOnlyError
from zarrflow.storage.base import ByteRequest, Store

__all__ = ["ReadOnlyStore"]


class ReadOnlyStore(Store):
    """Reads pass through to ``inner``; every write raises :class:`ReadOnlyError`.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> view = ReadOnlyStore(MemoryStore())
    >>> view.read_only
    True
    """

    read_only = True

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url

    @property
    def is_remote(self) -> bool:
        return self.inner.is_remote

    @property
    def retries_requests(self) -> bool:
        return self.inner.retries_requests

    @property
    def supports_partial_reads(self) -> bool:
        return self.inner.supports_partial_reads

    @property
    def supports_listing(self) -> bool:
        return self.inner.supports_listing

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        return self.inner.get_range(key, request)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.inner.get_many(keys)

    def get_ranges(self, requests: Sequence[tuple[str, ByteRequest]]) -> list[bytes | None]:
        return self.inner.get_ranges(requests)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        return self.inner.list_prefix(prefix)

    def list_dir(self, prefix: str) -> list[str]:
        return self.inner.list_dir(prefix)

    def _refuse(self, key: str) -> ReadOnlyError:
        return ReadOnlyError(f"store {self.url!r} is opened read-only: cannot write {key!r}")

    def set(self, key: str, value: bytes) -> None:
        raise self._refuse(key)

    def set_many(self, items: Mapping[str, bytes]) -> None:
        raise self._refuse(next(iter(items), ""))

    def try_set_many(self, items: Mapping[str, bytes]) -> dict[str, Exception]:
        raise self._refuse(next(iter(items), ""))

    def delete(self, key: str) -> None:
        raise self._refuse(key)

    def try_delete_many(self, keys: Iterable[str]) -> dict[str, Exception]:
        raise self._refuse(next(iter(keys), ""))

    def delete_many(self, keys: Iterable[str]) -> None:
        raise self._refuse(next(iter(keys), ""))

    def delete_prefix(self, prefix: str) -> None:
        raise self._refuse(prefix)

    def __reduce__(self):
        return (ReadOnlyStore, (self.inner,))
