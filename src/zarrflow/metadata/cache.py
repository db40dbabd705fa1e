"""A cache of parsed ``zarr.json`` documents, for opening many nodes of one hierarchy.

Off by default; on with ``zarrflow.metadata_cache_entries`` (how many
documents a process keeps, least recently used out first) in Dask's config.
Opening a Zarr v3 node (``zf.open``, ``zf.open_array``, ``group[name]``)
then reads its ``zarr.json`` through the cache: the entry remembers the
document's **generation**, and the store is asked whether it still has it
(``Store.get_if_changed``: a ``stat`` locally, an ``If-None-Match`` GET on
S3) — an unchanged document is neither transferred nor parsed again, and a
document changed by anyone is read afresh, never served stale.
``zarrflow.metadata_cache_max_age`` (seconds) lets an entry that young be
used without asking the store (the opt-in staleness bound; the only way a
store without generations is cached). Metadata *changes* (attributes,
resize, append) never start from a cached copy: they read the stored
document. Zarr v2 documents are not cached.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dask

from zarrflow.storage.base import NOT_MODIFIED

if TYPE_CHECKING:
    from zarrflow.storage import Store

__all__ = ["MetadataCache", "default_metadata_cache", "read_through"]

_DEFAULT: dict[tuple[int, float | None], MetadataCache] = {}  # one per setting
_DEFAULT_LOCK = threading.Lock()


class MetadataCache:
    """Parsed metadata documents by (store URL, key, form), validated by generation.

    Parameters
    ----------
    max_entries
        Documents kept at most (least recently used out first).
    max_age
        Seconds an entry is used without asking the store (None: always ask).

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store, cache = MemoryStore(), MetadataCache(8)
    >>> store.set("a/zarr.json", b'{"x": 1}')
    >>> cache.read(store, "a/zarr.json", len), cache.read(store, "a/zarr.json", len)
    (8, 8)
    >>> cache.hits, cache.misses
    (1, 1)
    """

    def __init__(self, max_entries: int = 1024, max_age: float | None = None) -> None:
        if int(max_entries) < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries!r}")
        self.max_entries = int(max_entries)
        self.max_age = None if max_age is None else float(max_age)
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, str, str], tuple[str | None, float, Any]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return True

    def _lookup(self, k: tuple[str, str, str]) -> tuple[str | None, float, Any] | None:
        with self._lock:
            entry = self._entries.get(k)
            if entry is not None:
                self._entries.move_to_end(k)
            return entry

    def _put(self, k: tuple[str, str, str], generation: str | None, value: Any) -> None:
        with self._lock:
            self._entries[k] = (generation, time.monotonic(), value)
            self._entries.move_to_end(k)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def _count(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def read(self, store: Store, key: str, parse: Callable[[bytes], Any], form: str = "") -> Any:
        """``parse(document)`` of ``key``, from the cache while the document is unchanged.

        Returns None when nothing is stored at ``key``. ``form`` tells apart
        parses of one document that differ (with or without consolidated
        metadata).

        Parameters
        ----------
        store, key
            Where the document is.
        parse
            Turns the document's bytes into what is cached (and returned).
        form
            Part of the cache key, next to the store URL and the key.
        """
        k = (store.url, key, form)
        entry = self._lookup(k)
        age = None if entry is None else time.monotonic() - entry[1]
        if age is not None and self.max_age is not None and age < self.max_age:
            self._count(True)
            return entry[2]
        if store.supports_generations:
            found = (
                store.get_versioned(key) if entry is None else store.get_if_changed(key, entry[0])
            )
            if found is NOT_MODIFIED:
                self._put(k, entry[0], entry[2])  # fresh again
                self._count(True)
                return entry[2]
            self._count(False)
            if found is None:
                return None
            value = parse(found.data)
            self._put(k, found.generation, value)
            return value
        self._count(False)
        raw = store.get(key)
        if raw is None:
            return None
        value = parse(raw)
        if self.max_age is not None:
            self._put(k, None, value)
        return value


def default_metadata_cache() -> MetadataCache | None:
    """The process's cache when ``zarrflow.metadata_cache_entries`` is set (None when 0).

    One cache per setting of the two options: code run under different
    settings does not share entries.

    Examples
    --------
    >>> default_metadata_cache() is None
    True
    >>> with dask.config.set({"zarrflow.metadata_cache_entries": 100}):
    ...     default_metadata_cache().max_entries
    100
    """
    entries = int(dask.config.get("zarrflow.metadata_cache_entries", 0) or 0)
    if entries <= 0:
        return None
    max_age = dask.config.get("zarrflow.metadata_cache_max_age", None)
    max_age = None if max_age is None else float(max_age)
    with _DEFAULT_LOCK:
        cache = _DEFAULT.get((entries, max_age))
        if cache is None:
            cache = _DEFAULT[(entries, max_age)] = MetadataCache(entries, max_age)
        return cache


def read_through(store: Store, key: str, parse: Callable[[bytes], Any], form: str = "") -> Any:
    """``parse`` of the document at ``key`` (None if missing), through the process's cache if on.

    Parameters
    ----------
    store, key, parse, form
        As for :meth:`MetadataCache.read`.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = MemoryStore()
    >>> store.set("zarr.json", b"{}")
    >>> read_through(store, "zarr.json", bytes.decode), read_through(store, "no", len)
    ('{}', None)
    """
    cache = default_metadata_cache()
    if cache is None:
        raw = store.get(key)
        return None if raw is None else parse(raw)
    return cache.read(store, key, parse, form)
