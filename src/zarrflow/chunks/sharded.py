"""The per-shard read and write path of a sharded (``sharding_indexed``) Zarr v3 array.

:class:`ShardIO` is the :class:`~zarrflow.chunks.regular.ChunkIO` of a sharded
array: its "chunks" are shards (``metadata.chunks``), read and written by
inner chunk. It turns projections into :class:`~zarrflow.chunks.shard_reader.ShardJob`
values, which :class:`~zarrflow.chunks.shard_reader.ShardReader` fetches with ranged,
coalesced requests (see :mod:`zarrflow.chunks.shard_reader` for the request pattern).

Writing: a write covering a whole shard encodes it in memory and stores it
once, lock-free (last writer wins). A write covering part of a shard is a
read-modify-write, conditional on the shard's generation and retried on
conflict (:func:`~zarrflow.chunks.conditional.read_modify_write`), under that
shard's lock (:func:`~zarrflow.chunks.locks.chunk_lock`), which only avoids
contention where generations exist and is the only guard where they do not:
untouched inner chunks keep their encoded bytes, inner chunks the write
covers completely are encoded without being read, and only partly covered
ones are decoded first. Inner chunks equal to the fill value are left out,
and an all-empty shard is deleted (unless ``write_empty_chunks``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from time import perf_counter
from typing import Any

import numpy as np

from zarrflow.chunks.conditional import read_modify_write
from zarrflow.chunks.locks import chunk_lock
from zarrflow.chunks.regular import ChunkIO
from zarrflow.chunks.shard_reader import ShardJob, ShardReader
from zarrflow.codecs import CodecPipeline, ShardingCodec
from zarrflow.codecs.sharding import MISSING
from zarrflow.errors import CodecError, StoreError
from zarrflow.indexing import BasicIndexer, ChunkProjection
from zarrflow.metadata import chunk_grid_shape
from zarrflow.storage import Store
from zarrflow.telemetry.events import HOOKS, emit_since

__all__ = ["ShardIO"]

Index = tuple[int, ...]
_SCRATCH_BATCH_BYTES = 64 * 2**20  # scratch shards one remote batch may hold


def _is_basic(selection: Any) -> bool:
    if isinstance(selection, slice):
        return True
    return isinstance(selection, tuple) and all(
        isinstance(s, slice) or (np.ndim(s) == 0 and s is not None) for s in selection
    )


class ShardIO(ChunkIO):
    """Read and write the shards of one sharded array, inner chunk by inner chunk.

    Built by :func:`~zarrflow.chunks.engine.open_engine` when the metadata has
    ``inner_chunks``; see the module notes for the request pattern.

    Examples
    --------
    >>> import numpy as np, zarrflow as zf
    >>> a = zf.create("memory://doc-shard-io", shape=(8, 8), chunks=(2, 2), shards=(4, 4),
    ...               dtype="i4")
    >>> a[0:3, 0:3] = 1
    >>> type(a.engine).__name__, int(a[:].sum()), a.nshards_initialized
    ('ShardIO', 9, 1)
    """

    __slots__ = ("codec", "inner_shape", "reader")
    batches_remote_writes = False  # a shard is large: one PUT each, its pieces encoded in turn

    def __init__(self, store: Store, path: str, metadata, write_empty_chunks: bool = False):
        super().__init__(store, path, metadata, write_empty_chunks)
        registered = self.pipeline.array_to_bytes
        if not isinstance(registered, ShardingCodec):  # pragma: no cover - metadata checks
            raise CodecError(f"array {self.name!r}: expected a sharding_indexed codec")
        self.codec = registered.with_fill_value(self.fill)
        self.pipeline = CodecPipeline(self.chunk_shape, self.dtype, (), self.codec, ())
        self.inner_shape = self.codec.inner_shape
        self.reader = ShardReader(self.store, self.codec, self.name)

    # geometry -----------------------------------------------------------------------
    @property
    def inner_grid_shape(self) -> tuple[int, ...]:
        """Number of inner chunks along each axis of the array."""
        return chunk_grid_shape(self.metadata.shape, self.inner_shape)

    def shard_of(self, inner: Sequence[int]) -> tuple[Index, Index]:
        """``(shard coords, local inner coords)`` of an inner chunk of the array."""
        cps = self.codec.chunks_per_shard
        return (
            tuple(i // n for i, n in zip(inner, cps, strict=True)),
            tuple(i % n for i, n in zip(inner, cps, strict=True)),
        )

    def _extent(self, coords: Sequence[int]) -> tuple[int, ...]:
        """The in-bounds shape of a shard (smaller than the shard at the array's edge)."""
        return tuple(
            min(c, s - i * c)
            for i, c, s in zip(coords, self.chunk_shape, self.metadata.shape, strict=True)
        )

    def _inner_in_bounds(self, coords: Sequence[int]) -> int:
        extent = self._extent(coords)
        return math.prod(-(-e // c) for e, c in zip(extent, self.inner_shape, strict=True))

    def _full_inner(self) -> tuple[slice, ...]:
        return tuple(slice(0, c) for c in self.inner_shape)

    def decode(self, coords: Sequence[int], data: bytes, out: np.ndarray | None = None):
        """Decode one whole stored shard, naming the array and shard key in any error."""
        try:
            return self.pipeline.decode(data, out=out)
        except CodecError as e:
            raise self.reader.corrupt(self.key(coords), e) from e

    # reading: the ChunkIO interface ---------------------------------------------------
    def read_chunk(self, coords: Sequence[int]) -> np.ndarray:
        """The whole shard at ``coords`` (fill value where never written)."""
        coords = tuple(coords)
        out = np.empty(self.chunk_shape, self.dtype)
        full = self._full_inner()
        items = [
            ChunkProjection(local, full, self.codec.region(local), True)
            for local in self.codec.inner_coords()
        ]
        self.reader.run([ShardJob(coords, self.key(coords), items, out, True)])
        return out

    def read_into(
        self, out: np.ndarray, projections: Iterable[ChunkProjection], flat: bool = False
    ) -> None:
        """Fill ``out`` from the shards the (shard-level) projections name."""
        target = out.reshape(-1) if flat else out
        batch: list[tuple[ShardJob, Any]] = []
        scratch_bytes = 0
        for p in projections:
            job, post = self._job_for(p, target)
            batch.append((job, post))
            scratch_bytes += 0 if post is None else job.target.nbytes
            if not self.store.is_remote or scratch_bytes > _SCRATCH_BATCH_BYTES:
                self._run_posted(batch)
                batch, scratch_bytes = [], 0
        if batch:
            self._run_posted(batch)

    def _run_posted(self, batch: list[tuple[ShardJob, Any]]) -> None:
        self.reader.run([job for job, _ in batch])
        for job, post in batch:
            if post is not None:
                target, out_selection, chunk_selection = post
                target[out_selection] = job.target[chunk_selection]

    def _job_for(self, p: ChunkProjection, target: np.ndarray) -> tuple[ShardJob, Any]:
        """A job reading projection ``p``'s part of a shard (and what to copy after)."""
        coords, key = p.chunk_coords, self.key(p.chunk_coords)
        if _is_basic(p.chunk_selection) and _is_basic(p.out_selection):
            sel = p.out_selection
            view = target[(*sel, Ellipsis) if isinstance(sel, tuple) else sel]  # a view, even 0-d
            items = list(BasicIndexer(p.chunk_selection, self._extent(coords), self.inner_shape))
            whole = len(items) >= self._inner_in_bounds(coords)
            return ShardJob(coords, key, items, view, whole), None
        scratch = np.empty(self.chunk_shape, self.dtype)
        full, region = self._full_inner(), self.codec.region
        items = [
            ChunkProjection(local, full, region(local), True)
            for local in self._touched_locals(p.chunk_selection)
        ]
        whole = len(items) >= self._inner_in_bounds(coords)
        post = (target, p.out_selection, p.chunk_selection)
        return ShardJob(coords, key, items, scratch, whole), post

    def _touched_locals(self, selection: tuple) -> list[Index]:
        """The local inner chunks any numpy selection of a shard touches."""
        per_axis: list[Any] = []
        arrays, array_axes = [], []
        axis = 0
        for entry in selection:
            if entry is None:
                continue
            n, c = self.chunk_shape[axis], self.inner_shape[axis]
            if isinstance(entry, slice):
                per_axis.append(np.unique(np.arange(*entry.indices(n)) // c).tolist())
            elif np.ndim(entry) == 0:
                per_axis.append([int(entry) // c])
            else:
                arr = np.asarray(entry)
                arr = np.nonzero(arr)[0] if arr.dtype == bool else arr
                arrays.append(arr // c)
                array_axes.append(axis)
                per_axis.append(None)
            axis += 1
        combos: list[tuple[int, ...]] = [()]
        if arrays:
            flat = [a.reshape(-1) for a in np.broadcast_arrays(*arrays)]
            combos = [tuple(r) for r in np.unique(np.stack(flat, axis=-1), axis=0).tolist()]
        plain = [range(1) if s is None else s for s in per_axis]
        touched = []
        for combo in combos:
            for pick in itertools.product(*plain):
                local = list(pick)
                for ax, value in zip(array_axes, combo, strict=True):
                    local[ax] = value
                touched.append(tuple(local))
        return touched

    def read_inner_into(self, out: np.ndarray, projections: Iterable[ChunkProjection]) -> None:
        """Fill ``out`` from projections over the array's *inner* chunk grid.

        Projections are grouped by shard, so each shard's index is read once.
        """
        groups: dict[Index, list[ChunkProjection]] = {}
        for p in projections:
            shard, local = self.shard_of(p.chunk_coords)
            groups.setdefault(shard, []).append(p._replace(chunk_coords=local))
        jobs = [
            ShardJob(shard, self.key(shard), items, out, len(items) >= self._inner_in_bounds(shard))
            for shard, items in groups.items()
        ]
        self.reader.run(jobs)

    def read_chunks(
        self, indices: Sequence[Index], index_cache: dict | None = None
    ) -> list[tuple[Index, Any]]:
        """``(index, chunk or exception)`` for inner chunks of the array, trimmed at its edge.

        Results come in the order of ``indices``, which are inner-chunk grid
        indices; they are grouped by shard, and
        each shard is read as one :class:`ShardJob` (the whole shard in one
        request when every in-bounds inner chunk is wanted, else its index and
        coalesced ranges). A failure of one inner chunk is returned in its
        place; a failure of a whole shard (its index, the store) in the place
        of each of its chunks. ``index_cache`` (shard coords -> decoded index)
        saves index requests across calls.
        """
        shape, inner = self.metadata.shape, self.inner_shape
        groups: dict[Index, list[tuple[int, Index, Index]]] = {}
        for pos, idx in enumerate(indices):
            shard, local = self.shard_of(idx)
            groups.setdefault(shard, []).append((pos, tuple(idx), local))
        full = self._full_inner()
        results: list[Any] = [None] * len(indices)
        for shard, members in groups.items():
            buffer = np.empty((len(members), *inner), self.dtype)
            items = [
                ChunkProjection(loc, full, (k,), True) for k, (_, _, loc) in enumerate(members)
            ]
            whole = len(items) >= self._inner_in_bounds(shard)
            job = ShardJob(shard, self.key(shard), items, buffer, whole)
            job.errors = {}
            try:
                self.reader.run_cached(job, index_cache)
            except Exception as e:  # the shard failed: every chunk of it did
                for pos, idx, _ in members:
                    results[pos] = (idx, e)
                continue
            for k, (pos, idx, _) in enumerate(members):
                trim = tuple(
                    slice(0, min(c, s - i * c)) for i, c, s in zip(idx, inner, shape, strict=True)
                )
                results[pos] = (idx, job.errors.get(k, buffer[k][(*trim, Ellipsis)]))
        return results

    def inner_chunks_of(
        self, coords: Index, stored: bool = False, index_cache: dict | None = None
    ) -> list[Index]:
        """The array-level indices of a shard's inner chunks, in C order.

        ``stored``: only those stored in the shard (one ranged read of its index).
        """
        shard = tuple(coords)
        cps, grid = self.codec.chunks_per_shard, self.inner_grid_shape
        if not stored:
            ranges = (
                range(s * n, min((s + 1) * n, g)) for s, n, g in zip(shard, cps, grid, strict=True)
            )
            return list(itertools.product(*ranges))
        job = ShardJob(shard, self.key(shard), [], np.empty(0, self.dtype), False)
        self.reader.run_cached(job, index_cache, lambda j: self.reader.fetch_indices([j]))
        if job.index is None:
            return []
        present = np.flatnonzero(job.index[:, 0] != MISSING)
        found = []
        for local in np.array(np.unravel_index(present, cps)).T.tolist():
            idx = tuple(s * n + i for s, n, i in zip(shard, cps, local, strict=True))
            if all(i < g for i, g in zip(idx, grid, strict=True)):
                found.append(idx)
        return found

    # writing ------------------------------------------------------------------------
    def _encode_inner(self, key: str, local: Index, chunk: np.ndarray) -> bytes | None:
        if not self.write_empty_chunks and self.codec.is_fill(chunk):
            return None
        t0 = perf_counter() if HOOKS else 0.0
        try:
            contiguous = chunk if chunk.flags.c_contiguous else chunk.copy()
            data = self.codec.inner.encode(contiguous)
            if t0:
                emit_since(t0, "write", "encode", chunk.nbytes, 1, "sharding")
            return data
        except CodecError as e:
            raise CodecError(
                f"array {self.name!r}: shard key {key!r}, inner chunk {local}: {e}"
            ) from e

    def _store_pieces(self, coords: Sequence[int], pieces: list[Any]) -> None:
        key = self.key(coords)
        if not self.write_empty_chunks and all(p is None for p in pieces):
            self.store.delete(key)
            return
        data = self.codec.encode_pieces(pieces)
        t0 = perf_counter() if HOOKS else 0.0
        try:
            self.store.set(key, data)
            if t0:
                emit_since(t0, "write", "storage", len(data), 1)
        except StoreError:
            raise
        except OSError as e:
            raise StoreError(f"array {self.name!r}: writing shard key {key!r} failed: {e}") from e

    def write_chunk(self, coords: Sequence[int], chunk: np.ndarray) -> None:
        """Encode and store one whole shard; empty inner chunks are left out."""
        key, region = self.key(coords), self.codec.region
        pieces = [
            self._encode_inner(key, local, chunk[region(local)])
            for local in self.codec.inner_coords()
        ]
        self._store_pieces(coords, pieces)

    def write_projection(
        self, p: ChunkProjection, value: np.ndarray, flat: bool = False, lock: str | None = None
    ) -> None:
        """Write one shard's part of ``value``: whole shards lock-free, parts under its lock."""
        src = value.reshape(-1) if flat else value
        part = src[p.out_selection]
        if p.is_complete_chunk:
            self.write_chunk(p.chunk_coords, self._complete_chunk(p, part))
            return
        with chunk_lock(self.store.url, self.key(p.chunk_coords), lock):
            self._update_shard(p, part)

    def _touched(self, p: ChunkProjection) -> list[tuple[Index, bool]]:
        """``(local inner coords, covered completely)`` for the inner chunks ``p`` writes."""
        if _is_basic(p.chunk_selection):
            extent = self._extent(p.chunk_coords)
            indexer = BasicIndexer(p.chunk_selection, extent, self.inner_shape)
            return [(q.chunk_coords, q.is_complete_chunk) for q in indexer]
        return [(local, False) for local in self._touched_locals(p.chunk_selection)]

    def _encode_shard(self, pieces: list[Any]) -> bytes | None:
        """The stored bytes of a shard of encoded inner chunks; None for an empty one."""
        if not self.write_empty_chunks and all(p is None for p in pieces):
            return None
        return self.codec.encode_pieces(pieces)

    def _update_shard(self, p: ChunkProjection, part: np.ndarray) -> None:
        """Read-modify-write of part of a shard, conditional on the generation it read.

        See :func:`~zarrflow.chunks.conditional.read_modify_write`: on a conflict
        the shard is read again and the write merged into the fresh bytes.
        """
        coords, codec = p.chunk_coords, self.codec
        key = self.key(coords)
        touched = self._touched(p)

        def merge(data: bytes | None) -> bytes | None:
            pieces: list[Any] = [None] * codec.n_inner
            if data is not None:
                pieces = self.reader.split_whole(key, data)[1]
            shard = np.full(self.chunk_shape, self.fill, self.dtype)
            for local, complete in touched:
                piece = pieces[codec.linear(local)]
                if not complete and piece is not None:
                    try:
                        codec.inner.decode(piece, out=shard[codec.region(local)])
                    except CodecError as e:
                        raise self.reader.corrupt(key, f"cannot be decoded: {e}", local) from e
            shard[p.chunk_selection] = part
            for local, _ in touched:
                region = shard[codec.region(local)]
                pieces[codec.linear(local)] = self._encode_inner(key, local, region)
            return self._encode_shard(pieces)

        try:
            read_modify_write(self.store, key, merge, self.name)
        except StoreError:
            raise
        except OSError as e:
            raise StoreError(f"array {self.name!r}: writing shard key {key!r} failed: {e}") from e
