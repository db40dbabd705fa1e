"""The chunk engine of a regular array read through a :class:`~zarrflow.chunks.cache.ChunkCache`.

:class:`CachedChunkIO` is a :class:`~zarrflow.chunks.regular.ChunkIO` whose
reads look in the cache first and ask the store only what it must: for each
cached chunk, whether it still has the cached generation (``Store.
get_many_if_changed``, one overlapped batch on a remote store); for the
others, the chunk and its generation. Chunks the store says changed, and
chunks not cached, are decoded and cached. Writes go through ``ChunkIO``
unchanged and then drop the cache entries of the chunks they wrote; a
read-modify-write reads its chunk from the store, never from the cache.
:func:`~zarrflow.chunks.engine.open_engine` builds one when a cache is given
and can be kept safe on the store (see :mod:`.cache`); sharded arrays are not
cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from time import perf_counter

import numpy as np

from zarrflow.chunks.cache import ChunkCache
from zarrflow.chunks.regular import ChunkIO
from zarrflow.errors import ChunkFailure
from zarrflow.indexing import ChunkProjection
from zarrflow.storage import NOT_MODIFIED, Store
from zarrflow.telemetry.events import HOOKS, emit

__all__ = ["CachedChunkIO", "can_cache"]

Index = tuple[int, ...]


def can_cache(store: Store, cache: ChunkCache) -> bool:
    """True when ``cache`` can serve ``store``'s chunks safely (generations or a max_age).

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> can_cache(MemoryStore(), ChunkCache(2**20))
    True
    """
    return store.supports_generations or cache.max_age is not None


class CachedChunkIO(ChunkIO):
    """:class:`~zarrflow.chunks.regular.ChunkIO` with reads through ``cache``.

    Parameters
    ----------
    store, path, metadata, write_empty_chunks
        As for ChunkIO.
    cache
        The decoded-chunk cache (shared with other arrays and threads).

    Examples
    --------
    >>> import numpy as np, zarrflow as zf
    >>> a = zf.create("memory://doc-cached", shape=(4,), chunks=(2,), dtype="u1",
    ...               chunk_cache=2**20)
    >>> a[:] = np.array([1, 2, 3, 4], dtype="u1")
    >>> _ = a[:]; a[:].tolist()
    [1, 2, 3, 4]
    >>> a.engine.cache.hits, a.engine.cache.misses
    (2, 2)
    """

    __slots__ = ("cache",)

    def __init__(
        self,
        store: Store,
        path: str,
        metadata,
        write_empty_chunks: bool = False,
        cache: ChunkCache | None = None,
    ) -> None:
        super().__init__(store, path, metadata, write_empty_chunks)
        if cache is None:
            raise ValueError(f"array {self.name!r}: a CachedChunkIO needs a ChunkCache")
        self.cache = cache

    def __reduce__(self):
        # the cache travels as its settings: each process uses its own (see .cache)
        args = (self.store, self.path, self.metadata, self.write_empty_chunks, self.cache)
        return (type(self), args)

    # reading --------------------------------------------------------------------------
    def cached_chunks(self, coords: Sequence[Index]) -> list[np.ndarray | BaseException | None]:
        """Each chunk, read-only (None: never written; an exception: its read failed)."""
        cache, url = self.cache, self.store.url
        keys = [self.key(c) for c in coords]
        out: list = [None] * len(keys)
        entries = [cache.get(url, k) for k in keys]
        ask = []
        for i, entry in enumerate(entries):
            if entry is not None and cache.is_fresh(entry):
                out[i] = entry.chunk
            else:
                ask.append(i)
        hits = len(keys) - len(ask)
        if ask:
            t0 = perf_counter() if HOOKS else 0.0
            answers = self._ask([(keys[i], entries[i]) for i in ask])
            if t0:
                got = [a.data for a in answers if hasattr(a, "data")]
                t0 = self._fetched(t0, got + [None] * (len(answers) - len(got)))
            changed = []
            for i, answer in zip(ask, answers, strict=True):
                if answer is NOT_MODIFIED:
                    out[i] = entries[i].chunk
                    hits += 1
                elif answer is None:
                    cache.drop(url, keys[i])
                elif isinstance(answer, BaseException):
                    out[i] = answer
                else:
                    changed.append((i, answer))
            decoded = self._decode_each(
                [tuple(coords[i]) for i, _ in changed], [a.data for _, a in changed]
            )
            for (i, answer), chunk in zip(changed, decoded, strict=True):
                if not isinstance(chunk, BaseException):  # held as is (read-only) when it fits
                    cache.put(url, keys[i], answer.generation, chunk, owned=chunk.base is None)
                out[i] = chunk
            if t0 and changed:
                self._decoded(t0, len(changed))
        cache.count(hits, len(keys) - hits)
        if HOOKS:
            emit("read", "cache_hit", 0.0, 0, hits)
            emit("read", "cache_miss", 0.0, 0, len(keys) - hits)
        return out

    def _ask(self, requests: list[tuple[str, object]]) -> list:
        """The store's answers: NOT_MODIFIED, a Versioned (generation None: unknown), None.

        A batch that fails is asked again key by key, each key's failure its own.
        """
        store = self.store
        if not store.supports_generations:  # cached under max_age only
            values = self._fetch_each([k for k, _ in requests])
            return [
                v if v is None or isinstance(v, BaseException) else _Unversioned(v) for v in values
            ]
        asked = [(k, None if e is None else e.generation) for k, e in requests]
        try:
            return store.get_many_if_changed(asked)
        except Exception:  # reported per chunk below, never swallowed
            pass
        answers: list = []
        for k, g in asked:
            try:
                answers.append(store.get_versioned(k) if g is None else store.get_if_changed(k, g))
            except Exception as e:  # each key's fate is its own
                answers.append(e)
        return answers

    def _chunk_or_fill(self, chunk: np.ndarray | BaseException | None) -> np.ndarray:
        if isinstance(chunk, BaseException):
            raise chunk
        return self.new_chunk() if chunk is None else chunk

    def read_into(
        self, out: np.ndarray, projections: Iterable[ChunkProjection], flat: bool = False
    ) -> None:
        """Fill ``out`` from the projections' chunks, the cached ones revalidated."""
        target = out.reshape(-1) if flat else out
        projections = list(projections)
        step = len(projections) if self.store.is_remote else max(1, self._read_batch)
        for start in range(0, len(projections), max(step, 1)):
            batch = projections[start : start + step]
            chunks = self.cached_chunks([p.chunk_coords for p in batch])
            for p, chunk in zip(batch, chunks, strict=True):
                if chunk is None:
                    target[p.out_selection] = self.fill
                elif isinstance(chunk, BaseException):
                    raise chunk
                else:
                    target[p.out_selection] = chunk[p.chunk_selection]

    def read_chunks(
        self, indices: Sequence[Sequence[int]], index_cache: dict | None = None
    ) -> list[tuple[Index, np.ndarray | BaseException]]:
        """``(index, chunk or exception)`` as :meth:`ChunkIO.read_chunks`, through the cache."""
        indices = [tuple(i) for i in indices]
        shape, cshape = self.shape, self.chunk_shape
        results: list[tuple[Index, np.ndarray | BaseException]] = []
        for idx, chunk in zip(indices, self.cached_chunks(indices), strict=True):
            if chunk is None:
                chunk = self.new_chunk()
            elif not isinstance(chunk, BaseException):
                chunk = chunk.copy()  # the caller's own, writeable
            if not isinstance(chunk, BaseException) and any(
                (i + 1) * c > s for i, c, s in zip(idx, cshape, shape, strict=True)
            ):
                chunk = chunk[
                    tuple(slice(0, s - i * c) for i, c, s in zip(idx, cshape, shape, strict=True))
                ]
            results.append((idx, chunk))
        return results

    # writing: through ChunkIO, then the entries of the written chunks go --------------------
    def write_chunk(self, coords: Sequence[int], chunk: np.ndarray) -> None:
        """Encode and store one whole chunk, then drop its cache entry."""
        try:
            super().write_chunk(coords, chunk)
        finally:
            self.cache.drop(self.store.url, self.key(coords))

    def write_from(
        self,
        value: np.ndarray,
        projections: Iterable[ChunkProjection],
        flat: bool = False,
        lock: str | None = None,
    ) -> list[ChunkFailure]:
        """:meth:`ChunkIO.write_from`, then drop the entries of every chunk it touched."""
        touched: list[Index] = []

        def seen() -> Iterator[ChunkProjection]:
            for p in projections:
                touched.append(p.chunk_coords)
                yield p

        try:
            return super().write_from(value, seen(), flat, lock)
        finally:
            url = self.store.url
            for c in touched:
                self.cache.drop(url, self.key(c))


class _Unversioned:
    """Bytes read from a store without generations (cached under ``max_age`` only)."""

    __slots__ = ("data",)
    generation = None

    def __init__(self, data: bytes) -> None:
        self.data = data
