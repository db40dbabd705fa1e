"""The write path of a regular array's chunk engine: :class:`ChunkWrites`.

Whole chunks are encoded and stored unconditionally (last writer wins); a
chunk covered in part is a read-modify-write that loses nothing
(:func:`~zarrflow.chunks.conditional.read_modify_write`: conditional on the
generation it read, where the store has generations, under the chunk's lock
to avoid contention). On a remote store whole chunks go in concurrent
batches. Every chunk is tried, and each one the store fails to write is
reported once as a :class:`~zarrflow.errors.ChunkFailure`.

:class:`~zarrflow.chunks.regular.ChunkIO` mixes this in; the attributes it
uses (``store``, ``name``, ``pipeline``, ``chunk_shape``, ``fill``, ...) are
the engine's (see :mod:`zarrflow.chunks.engine`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from time import perf_counter

import dask
import numpy as np

from zarrflow.chunks.conditional import read_modify_write
from zarrflow.chunks.locks import chunk_lock
from zarrflow.errors import (
    ChunkFailure,
    CodecError,
    ParallelChunkError,
    ReadOnlyError,
    StoreError,
)
from zarrflow.indexing import ChunkProjection
from zarrflow.telemetry.events import HOOKS, emit_since, operation

__all__ = ["ChunkWrites"]

_BATCH_BYTES = 64 * 2**20


class ChunkWrites:
    """Encode, store and read-modify-write the chunks of one array (a mixin of ChunkIO)."""

    __slots__ = ()

    def check_writable(self) -> None:
        """Raise :class:`~zarrflow.ReadOnlyError` when the store refuses writes."""
        if self.store.read_only:
            raise ReadOnlyError(f"array {self.name!r} is read-only: cannot write chunks")

    def is_fill(self, chunk: np.ndarray) -> bool:
        """True when every element equals the fill value (NaN equals NaN, NaT equals NaT;
        an object chunk of strings or bytes compares element by element)."""
        if self._fill_is_nan:
            return bool((np.isnat(chunk) if self.dtype.kind in "mM" else np.isnan(chunk)).all())
        return bool(np.asarray(chunk == self.fill).all())

    def encode_chunk(self, coords: Sequence[int], chunk: np.ndarray) -> bytes | None:
        """The stored bytes of one whole chunk, or None for an all-fill chunk not to store."""
        if not self.write_empty_chunks and self.is_fill(chunk):
            return None
        t0 = perf_counter() if HOOKS else 0.0
        try:
            data = self.pipeline.encode(chunk)
            if t0:
                emit_since(t0, "write", "encode", chunk.nbytes, 1, self._codecs)
            return data
        except CodecError as e:
            raise CodecError(f"array {self.name!r}: chunk key {self.key(coords)!r}: {e}") from e

    def write_chunk(self, coords: Sequence[int], chunk: np.ndarray) -> None:
        """Encode and store one whole chunk; an all-fill chunk is deleted instead."""
        key = self.key(coords)
        data = self.encode_chunk(coords, chunk)
        t0 = perf_counter() if HOOKS else 0.0
        try:
            if data is None:
                self.store.delete(key)
            else:
                self.store.set(key, data)
            if t0:
                self._fetched(t0, [data], "write")
        except StoreError:
            raise
        except OSError as e:
            raise self._write_error(key, e) from e

    def _write_error(self, key: str, error: BaseException) -> StoreError:
        return StoreError(f"array {self.name!r}: writing chunk key {key!r} failed: {error}")

    def write_projection(
        self, p: ChunkProjection, value: np.ndarray, flat: bool = False, lock: str | None = None
    ) -> None:
        """Write the part of ``value`` that one projection maps into its chunk.

        A projection covering the whole chunk is written without reading or
        locking (last writer wins); any other is a read-modify-write
        (:func:`~zarrflow.chunks.conditional.read_modify_write`): conditional on
        the generation it read, and retried against fresh bytes on conflict, on
        every store with generations. The chunk's lock is held around it only
        to avoid contention; on a store without generations it is the only guard.
        """
        src = value.reshape(-1) if flat else value
        part = src[p.out_selection]
        if p.is_complete_chunk:
            chunk = self._complete_chunk(p, part)
            self.write_chunk(p.chunk_coords, chunk)
            return
        key = self.key(p.chunk_coords)

        def merge(old: bytes | None) -> bytes | None:
            if old is None:
                chunk = self.new_chunk()
            else:
                t0 = perf_counter() if HOOKS else 0.0
                chunk = self.decode(p.chunk_coords, old)
                if t0:
                    self._decoded(t0, 1, "write")
            if not chunk.flags.writeable:
                chunk = chunk.copy()
            chunk[p.chunk_selection] = part
            return self.encode_chunk(p.chunk_coords, chunk)

        with chunk_lock(self.store.url, key, lock):
            try:
                read_modify_write(self.store, key, merge, self.name)
            except StoreError:
                raise
            except OSError as e:
                raise self._write_error(key, e) from e

    def _complete_chunk(self, p: ChunkProjection, part: np.ndarray) -> np.ndarray:
        if np.shape(part) == self.chunk_shape:
            return np.asarray(part)
        chunk = self.new_chunk()  # edge chunk: out-of-bounds part holds the fill value
        chunk[p.chunk_selection] = part
        return chunk

    def write_from(
        self,
        value: np.ndarray,
        projections: Iterable[ChunkProjection],
        flat: bool = False,
        lock: str | None = None,
    ) -> list[ChunkFailure]:
        """Write ``value`` (already broadcast to the selection) chunk by chunk.

        Every chunk is tried: one the store fails to write (an ``OSError``,
        :class:`~zarrflow.errors.StoreError` included, after any retries) does
        not stop the others. Returns a :class:`~zarrflow.errors.ChunkFailure`
        for each such chunk (an empty list when all were written); chunks not
        listed hold their new content. Any other error (a codec refusing the
        data, a value that cannot be cast) concerns every chunk alike and is
        raised at once. On a remote store whole chunks go in concurrent batches
        (one ``try_set_many`` per batch). ``lock`` is the lock kind for partial
        chunks (see :func:`zarrflow.chunks.locks.chunk_lock`); None reads
        ``zarrflow.lock``.
        """
        self.check_writable()
        failures: list[ChunkFailure] = []
        with operation("write"):  # reads of a read-modify-write report as the write's
            if self.store.is_remote and self.batches_remote_writes:
                projections = self._write_batched(value, projections, flat, failures)
            for p in projections:
                try:
                    self.write_projection(p, value, flat, lock)
                except ReadOnlyError:
                    raise
                except OSError as e:
                    failures.append(ChunkFailure(p.chunk_coords, e))
        return failures

    def raise_failures(self, failures: list[ChunkFailure]) -> None:
        """Raise one :class:`~zarrflow.errors.ParallelChunkError` listing ``failures``, if any.

        Each chunk is listed once: when several tasks each wrote a part of one
        chunk (``to_zarr(strategy="lock")``) and more than one failed, the
        first failure of the chunk is kept.
        """
        if failures:
            first: dict[tuple[int, ...], ChunkFailure] = {}
            for f in failures:
                first.setdefault(tuple(f.chunk_index), f)
            failures = sorted(first.values(), key=lambda f: f.chunk_index)
            error = ParallelChunkError(f"array {self.name!r}: writing chunks", failures)
            raise error from failures[0].exception

    def _write_batched(
        self,
        value: np.ndarray,
        projections: Iterable[ChunkProjection],
        flat: bool,
        failures: list[ChunkFailure],
    ) -> list[ChunkProjection]:
        """Store the whole chunks among ``projections`` in concurrent batches.

        Chunks the store fails to write are added to ``failures``. Returns the
        projections left to write one by one: partial chunks, each a
        read-modify-write under its chunk's lock (one lock held at a time).
        """
        src = value.reshape(-1) if flat else value
        limit = 4 * max(1, int(dask.config.get("zarrflow.io_concurrency", 64)))
        left: list[ChunkProjection] = []
        batch: dict[str, tuple[ChunkProjection, bytes | None]] = {}
        size = 0
        for p in projections:
            if not p.is_complete_chunk:
                left.append(p)
                continue
            chunk = self._complete_chunk(p, src[p.out_selection])
            data = self.encode_chunk(p.chunk_coords, chunk)
            batch[self.key(p.chunk_coords)] = (p, data)
            size += len(data or b"")
            if len(batch) >= limit or size >= _BATCH_BYTES:
                self._store_batch(batch, failures)
                batch, size = {}, 0
        self._store_batch(batch, failures)
        return left

    def _store_batch(
        self, batch: dict[str, tuple[ChunkProjection, bytes | None]], failures: list[ChunkFailure]
    ) -> None:
        """One concurrent round of PUTs and DELETEs; each failed chunk joins ``failures``."""
        t0 = perf_counter() if HOOKS else 0.0
        puts = {k: d for k, (_, d) in batch.items() if d is not None}
        failed = self.store.try_set_many(puts) if puts else {}
        deletes = [k for k, (_, d) in batch.items() if d is None]
        if deletes:
            failed.update(self.store.try_delete_many(deletes))
        if t0:
            self._fetched(t0, list(puts.values()) + [None] * len(deletes), "write")
        for key, e in failed.items():
            error = self._write_error(key, e)
            error.__cause__ = e
            failures.append(ChunkFailure(batch[key][0].chunk_coords, error))
