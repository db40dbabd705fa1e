"""A cache of decoded chunks, bounded in bytes, least recently used out first.

Off by default. On for one array with ``zf.open(url, chunk_cache=<bytes or a
ChunkCache>)`` (also ``create``, ``open_array``, ``open_group``), or for every
array of a process with ``zarrflow.chunk_cache_bytes`` in Dask's config.

**Safety.** An entry is keyed by (store URL, chunk key) and remembers the
*generation* of the stored chunk it was decoded from (see
:mod:`zarrflow.storage.base`). Before an entry is served the store is asked
whether the chunk still has that generation (``get_if_changed``: a ``stat``
on a local file, a compare in memory, an ``If-None-Match`` GET on S3 that
moves no bytes when nothing changed), so a write by another process or
machine is never served stale; what a hit saves is the transfer and the
decode, not the round trip. A store without generations (zip, plain HTTP)
cannot be revalidated: its chunks are cached only when the user accepts a
staleness bound, ``max_age`` seconds (``zarrflow.chunk_cache_max_age``), and
an entry younger than that is then served without asking the store (on any
store: the way to skip the round trip when data is known not to change
under you). A write through zarrflow replaces the entry of each chunk it
writes with what it wrote (or drops it).

**Sharing.** One cache is thread-safe and shared by the threads of a
process. On a ``distributed`` cluster each worker process has its own: a
cache travels to a worker as its settings, and every task on that worker
uses the worker's copy (so the bound holds per worker). Read-modify-writes
never take their chunk from the cache.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CacheEntry",
    "ChunkCache",
    "default_chunk_cache",
    "process_chunk_cache",
    "resolve_chunk_cache",
]

_PROCESS_CACHES: dict[str, ChunkCache] = {}  # copies unpickled here: kept for later tasks
_ORIGINALS: weakref.WeakValueDictionary[str, ChunkCache] = weakref.WeakValueDictionary()
_PROCESS_LOCK = threading.Lock()
_DEFAULT: dict[tuple[int, float | None], ChunkCache] = {}  # zarrflow.chunk_cache_*'s caches


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One decoded chunk (read-only), the generation it was decoded from and when."""

    chunk: np.ndarray
    generation: str | None
    stored_at: float


class ChunkCache:
    """Decoded chunks, at most ``max_bytes`` of them, least recently used evicted first.

    Parameters
    ----------
    max_bytes
        The bound on the decoded chunks held (a chunk larger than it is never cached).
    max_age
        Seconds an entry may be served without asking the store (None: always
        revalidate by generation; stores without generations are then not cached).

    Examples
    --------
    >>> import numpy as np
    >>> cache = ChunkCache(100)
    >>> cache.put("memory://a", "c/0", "g1", np.zeros(10, "f8"))  # 80 bytes
    >>> cache.put("memory://a", "c/1", "g1", np.zeros(5, "f8"))   # 40: c/0 goes
    >>> cache.get("memory://a", "c/0"), cache.get("memory://a", "c/1").generation
    (None, 'g1')
    >>> cache.nbytes, cache.evictions
    (40, 1)
    """

    def __init__(self, max_bytes: int, max_age: float | None = None) -> None:
        if int(max_bytes) < 0 or (max_age is not None and max_age < 0):
            raise ValueError(
                f"invalid chunk cache: max_bytes={max_bytes!r}, max_age={max_age!r} "
                "(expected max_bytes >= 0 and max_age None or >= 0)"
            )
        self.max_bytes = int(max_bytes)
        self.max_age = None if max_age is None else float(max_age)
        self.token = uuid.uuid4().hex
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._entries: OrderedDict[tuple[str, str], CacheEntry] = OrderedDict()
        self._lock = threading.Lock()
        _ORIGINALS[self.token] = self  # unpickled in this process, it is itself

    def __reduce__(self):
        # a worker process gets its own cache of the same settings (one per token)
        return (process_chunk_cache, (self.token, self.max_bytes, self.max_age))

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:  # a cache is a cache even when empty
        return True

    def __repr__(self) -> str:
        return (
            f"ChunkCache(max_bytes={self.max_bytes}, max_age={self.max_age}, "
            f"entries={len(self)}, nbytes={self.nbytes})"
        )

    def get(self, store_url: str, key: str) -> CacheEntry | None:
        """The entry of ``key`` (now the most recently used), or None.

        Examples
        --------
        >>> ChunkCache(10).get("memory://a", "c/0") is None
        True
        """
        with self._lock:
            entry = self._entries.get((store_url, key))
            if entry is not None:
                self._entries.move_to_end((store_url, key))
            return entry

    def is_fresh(self, entry: CacheEntry) -> bool:
        """True when ``entry`` may be served without asking the store (within ``max_age``).

        Examples
        --------
        >>> import numpy as np
        >>> ChunkCache(10, max_age=60).is_fresh(CacheEntry(np.zeros(1), None, time.monotonic()))
        True
        """
        return self.max_age is not None and time.monotonic() - entry.stored_at < self.max_age

    def put(
        self,
        store_url: str,
        key: str,
        generation: str | None,
        chunk: np.ndarray,
        owned: bool = False,
    ) -> None:
        """Hold ``chunk`` (decoded from ``generation``) for ``key``, evicting the oldest.

        The cache keeps its own read-only copy, unless ``owned`` (the caller
        hands the array over and never writes to it again).

        Examples
        --------
        >>> import numpy as np
        >>> cache = ChunkCache(8)
        >>> cache.put("memory://a", "c/0", "g", np.zeros(2, "f8"))  # 16 bytes: too large
        >>> len(cache)
        0
        """
        nbytes = chunk.nbytes
        if nbytes > self.max_bytes:
            self.drop(store_url, key)
            return
        if not owned:
            chunk = chunk.copy()
        chunk.flags.writeable = False
        entry = CacheEntry(chunk, generation, time.monotonic())
        with self._lock:
            old = self._entries.pop((store_url, key), None)
            if old is not None:
                self.nbytes -= old.chunk.nbytes
            while self.nbytes + nbytes > self.max_bytes:  # room first: never over the bound
                _, evicted = self._entries.popitem(last=False)
                self.nbytes -= evicted.chunk.nbytes
                self.evictions += 1
            self._entries[(store_url, key)] = entry
            self.nbytes += nbytes

    def drop(self, store_url: str, key: str) -> None:
        """Forget ``key`` (no error when it is not held).

        Examples
        --------
        >>> ChunkCache(10).drop("memory://a", "c/0")
        """
        with self._lock:
            old = self._entries.pop((store_url, key), None)
            if old is not None:
                self.nbytes -= old.chunk.nbytes

    def count(self, hits: int, misses: int) -> None:
        """Add to the hit and miss counters."""
        with self._lock:
            self.hits += hits
            self.misses += misses

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups so far (0.0 before any)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def clear(self) -> None:
        """Forget every entry (the counters stay).

        Examples
        --------
        >>> import numpy as np
        >>> cache = ChunkCache(100); cache.put("m://", "k", "g", np.zeros(1)); cache.clear()
        >>> len(cache), cache.nbytes
        (0, 0)
        """
        with self._lock:
            self._entries.clear()
            self.nbytes = 0


def process_chunk_cache(token: str, max_bytes: int, max_age: float | None = None) -> ChunkCache:
    """This process's copy of the cache ``token`` names (made on first use, then shared).

    A :class:`ChunkCache` unpickles as this: every task a worker process runs
    with one cache uses that worker's single copy.

    Parameters
    ----------
    token
        :attr:`ChunkCache.token` of the cache.
    max_bytes, max_age
        Its settings, for the copy made on first use.

    Examples
    --------
    >>> import pickle
    >>> cache = ChunkCache(1000)
    >>> pickle.loads(pickle.dumps(cache)) is cache
    True
    >>> process_chunk_cache("made-elsewhere", 1000) is process_chunk_cache("made-elsewhere", 1)
    True
    """
    with _PROCESS_LOCK:
        cache = _ORIGINALS.get(token) or _PROCESS_CACHES.get(token)
        if cache is None:
            cache = ChunkCache(max_bytes, max_age)
            del _ORIGINALS[cache.token]
            cache.token = token
            _PROCESS_CACHES[token] = cache
        return cache


def default_chunk_cache() -> ChunkCache | None:
    """The process-wide cache ``zarrflow.chunk_cache_bytes`` asks for (None when 0 or unset).

    One cache per setting (size and ``zarrflow.chunk_cache_max_age``).

    Examples
    --------
    >>> import dask
    >>> default_chunk_cache() is None
    True
    >>> with dask.config.set({"zarrflow.chunk_cache_bytes": 2**20}):
    ...     default_chunk_cache().max_bytes
    1048576
    """
    import dask

    nbytes = int(dask.config.get("zarrflow.chunk_cache_bytes", 0) or 0)
    if nbytes <= 0:
        return None
    max_age = dask.config.get("zarrflow.chunk_cache_max_age", None)
    max_age = None if max_age is None else float(max_age)
    with _PROCESS_LOCK:
        cache = _DEFAULT.get((nbytes, max_age))
        if cache is None:
            cache = _DEFAULT[(nbytes, max_age)] = ChunkCache(nbytes, max_age)
        return cache


def resolve_chunk_cache(chunk_cache: ChunkCache | int | None) -> ChunkCache | None:
    """A ``chunk_cache=`` argument as a cache: a ChunkCache, bytes (a new cache), or None.

    None (the default) means ``zarrflow.chunk_cache_bytes``'s process-wide
    cache, if set; ``0`` means no cache.

    Examples
    --------
    >>> resolve_chunk_cache(1000).max_bytes, resolve_chunk_cache(0)
    (1000, None)
    """
    if chunk_cache is None:
        return default_chunk_cache()
    if isinstance(chunk_cache, ChunkCache):
        return chunk_cache
    if isinstance(chunk_cache, bool) or not isinstance(chunk_cache, int):
        raise TypeError(
            f"chunk_cache must be a number of bytes or a ChunkCache, not {chunk_cache!r}"
        )
    return ChunkCache(chunk_cache) if chunk_cache > 0 else None
