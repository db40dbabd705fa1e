"""A read-only view of any store: what ``mode="r"`` makes of a Store object."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from zarrflow.errors import ReadOnlyError
from zarrflow.storage.base import Condition, IfGeneration, Store
from zarrflow.storage.wrapper import StoreWrapper

__all__ = ["ReadOnlyStore"]


class ReadOnlyStore(StoreWrapper):
    """Reads pass through to ``inner``; every write raises :class:`ReadOnlyError`.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> view = ReadOnlyStore(MemoryStore())
    >>> view.read_only
    True
    """

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.read_only = True

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

    def delete_many(self, keys: Iterable[str]) -> None:
        raise self._refuse(next(iter(keys), ""))

    def try_delete_many(self, keys: Iterable[str]) -> dict[str, Exception]:
        raise self._refuse(next(iter(keys), ""))

    def delete_prefix(self, prefix: str) -> None:
        raise self._refuse(prefix)

    def set_if(self, key: str, value: bytes, condition: Condition) -> str:
        raise self._refuse(key)

    def delete_if(self, key: str, condition: IfGeneration) -> None:
        raise self._refuse(key)
