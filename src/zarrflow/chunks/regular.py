"""One array's per-chunk read and write path: the hot loop of zarrflow.

:class:`ChunkIO` binds a store, a node path, metadata and its codec pipeline,
and does exactly the work of one chunk: fetch, decode, fill, encode, store.
Everything a chunk needs that does not depend on the chunk (key prefix, fill
chunk, scratch shapes) is computed once in the constructor, so the per-chunk
cost is the storage call, the codec, and a handful of Python operations.

Chunks are read and written through :func:`~zarrflow.storage.retrying.with_retries`:
a transient storage failure is retried (``zarrflow.retries``) by the store or,
for stores that do not retry, here — whichever operation asked for the chunk.

Reading many chunks (:meth:`ChunkIO.read_into`) goes in batches: fetch a
batch of keys (from a LocalStore: straight from its files, keys checked once
per array, small files read without an ``fstat``), decode the batch (small
zstd chunks in one codec call, which also releases the GIL once per batch
rather than once per chunk), then copy each chunk's part into the result.
Writing (whole chunks, read-modify-writes, batches) is the
:class:`~zarrflow.chunks.writing.ChunkWrites` half, mixed in.

For a sharded array (``metadata.inner_chunks`` set),
:func:`~zarrflow.chunks.engine.open_engine` builds a
:class:`~zarrflow.chunks.sharded.ShardIO` instead: the same interface over
shards, reading and writing them by inner chunk with ranged requests.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from time import perf_counter
from typing import Any

import numpy as np

from zarrflow.chunks.scratch import scratch_chunk
from zarrflow.chunks.writing import ChunkWrites
from zarrflow.codecs import CodecPipeline
from zarrflow.errors import (
    CodecError,
    CorruptChunkError,
)
from zarrflow.indexing import ChunkProjection
from zarrflow.metadata import chunk_grid_shape, default_fill_value
from zarrflow.storage import Store
from zarrflow.storage.keys import is_valid_key
from zarrflow.storage.local import LocalStore
from zarrflow.storage.readonly import ReadOnlyStore
from zarrflow.storage.retrying import RetryingStore, batch_or_each, with_retries
from zarrflow.telemetry.events import HOOKS, emit_since

__all__ = ["ChunkIO"]

#: at most this many chunks in one local get_many or one batched decode
_LOCAL_BATCH = 256
#: and at most about this many bytes (of decoded chunks): memory freed by one
#: batch is reused by the next, instead of fresh pages faulted in for each
_READ_BATCH_BYTES = 2**20
#: chunks up to this size are read from local files with one read() and no fstat()
_HINTED_READ_BYTES = 128 * 2**10


def _codec_names(pipeline: CodecPipeline) -> str:
    """The pipeline's codecs, as telemetry's ``detail`` (``bytes+zstd``)."""
    stages = (*pipeline.array_to_array, pipeline.array_to_bytes, *pipeline.bytes_to_bytes)
    return "+".join(str(getattr(s, "name", type(s).__name__)) for s in stages)


def _fill_scalar(metadata) -> Any:
    """The value missing chunks read as (v2 ``null`` reads as the dtype's default:
    zero, NaT, "" for strings). A variable-length fill is a Python ``str``/``bytes``."""
    fv = metadata.fill_value
    if fv is None:
        return default_fill_value(np.dtype(metadata.dtype))
    if metadata.dtype.kind == "O":
        return fv
    return np.asarray(fv, dtype=metadata.dtype)[()]


def _local_store(store: Store) -> LocalStore | None:
    """The LocalStore under the chunk layer's retry and read-only wrappers, if that is all."""
    while type(store) in (RetryingStore, ReadOnlyStore):  # reads pass straight through both
        store = store.inner  # type: ignore[attr-defined]
    return store if type(store) is LocalStore else None


def _stored_bytes(values: list) -> int:
    """Bytes among fetched values (None and exceptions count nothing)."""
    return sum(len(v) for v in values if v is not None and not isinstance(v, BaseException))


def _batched(items: Iterable, n: int) -> Iterable[list]:
    """``items`` in lists of ``n`` (the last one shorter)."""
    items = iter(items)
    while batch := list(itertools.islice(items, n)):
        yield batch


class ChunkIO(ChunkWrites):
    """Read and write the chunks of one array.

    Parameters
    ----------
    store, path, metadata
        Where the array lives and what it is.
    write_empty_chunks
        Store chunks equal to the fill value instead of deleting them.
    """

    __slots__ = (
        "_codecs",
        "_decode_batch",
        "_fill_is_nan",
        "_local",
        "_read_batch",
        "_size_hint",
        "chunk_shape",
        "dtype",
        "fill",
        "metadata",
        "name",
        "path",
        "pipeline",
        "prefix",
        "store",
        "write_empty_chunks",
    )

    #: whole chunks go to a remote store in concurrent batches (a ShardIO writes shards singly)
    batches_remote_writes = True

    def __init__(self, store: Store, path: str, metadata, write_empty_chunks: bool = False):
        self.store = with_retries(store)
        self.path = path
        self.metadata = metadata
        self.name = f"{store.url.rstrip('/')}/{path}" if path else store.url
        try:
            self.pipeline = CodecPipeline.from_metadata(metadata)
        except CodecError as e:  # unknown codec, bad configuration: say which array
            raise type(e)(f"array {self.name!r}: {e}") from e
        self.prefix = f"{path}/" if path else ""
        self.chunk_shape = tuple(metadata.chunks)
        self.dtype = np.dtype(metadata.dtype)
        self.fill = _fill_scalar(metadata)
        self._fill_is_nan = (self.dtype.kind in "fc" and bool(np.isnan(self.fill))) or (
            self.dtype.kind in "mM" and bool(np.isnat(self.fill))
        )
        self.write_empty_chunks = write_empty_chunks
        self._codecs = _codec_names(self.pipeline)
        self._plan_reads()

    def __reduce__(self):
        # what travels to a task: the store, the path and the metadata, never data
        return (type(self), (self.store, self.path, self.metadata, self.write_empty_chunks))

    # geometry -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return tuple(self.metadata.shape)

    @property
    def chunk_grid_shape(self) -> tuple[int, ...]:
        """Number of stored objects (chunks, or shards) along each axis."""
        return chunk_grid_shape(self.shape, self.chunk_shape)

    @property
    def inner_shape(self) -> tuple[int, ...]:
        """The shape of what streams yield: here the chunk itself."""
        return self.chunk_shape

    @property
    def inner_grid_shape(self) -> tuple[int, ...]:
        """Number of inner chunks along each axis (here: chunks)."""
        return self.chunk_grid_shape

    def stored_chunk_coords(self) -> list[tuple[int, ...]]:
        """The coordinates of the stored objects, sorted (one listing of the prefix)."""
        prefix, grid, parse = self.prefix, self.chunk_grid_shape, self.metadata.parse_chunk_key
        found = []
        for key in self.store.list_prefix(prefix):
            coords = parse(key[len(prefix) :])
            if coords is not None and all(0 <= c < g for c, g in zip(coords, grid, strict=True)):
                found.append(tuple(coords))
        return sorted(found)

    def inner_chunks_of(
        self, coords: tuple[int, ...], stored: bool = False, index_cache: dict | None = None
    ) -> list[tuple[int, ...]]:
        """The inner chunks of one stored object, in C order: here the chunk itself."""
        return [tuple(coords)]

    def _plan_reads(self) -> None:
        """How local chunks are fetched and decoded, worked out once.

        A chunk key is the array's prefix followed by digits and separators,
        so one valid key vouches for every key of the array: reads from a
        LocalStore then skip the per-key check (``get_many_trusted``). Small
        chunks are read without an ``fstat`` (``_size_hint``). Local chunks are
        fetched, and decoded when the pipeline can, in batches of about
        ``_READ_BATCH_BYTES``.
        """
        local = _local_store(self.store)
        first_key = self.key((0,) * len(self.chunk_shape))
        self._local = local if local is not None and is_valid_key(first_key) else None
        nbytes = math.prod(self.chunk_shape) * self.dtype.itemsize
        self._size_hint = nbytes + nbytes // 8 + 4096 if nbytes <= _HINTED_READ_BYTES else None
        self._read_batch = max(1, min(_LOCAL_BATCH, _READ_BATCH_BYTES // max(nbytes, 1)))
        self._decode_batch = self._read_batch if self.pipeline.decodes_in_batches else 0

    # keys -----------------------------------------------------------------------
    def key(self, coords: Sequence[int]) -> str:
        """The store key of the chunk at ``coords``."""
        return self.prefix + self.metadata.chunk_key(coords)

    # telemetry (called only when a hook is registered) ---------------------------------
    def _fetched(self, started: float, values: list, operation: str = "read") -> float:
        """Report a storage phase that began at ``started``; the time it is reported."""
        emit_since(started, operation, "storage", _stored_bytes(values), len(values))
        return perf_counter()

    def _decoded(self, started: float, chunks: int, operation: str = "read") -> float:
        """Report decoding ``chunks`` chunks that began at ``started``; the time now."""
        nbytes = chunks * self.dtype.itemsize * math.prod(self.chunk_shape)
        emit_since(started, operation, "decode", nbytes, chunks, self._codecs)
        return perf_counter()

    # reading ------------------------------------------------------------------
    def decode(self, coords: Sequence[int], data: bytes, out: np.ndarray | None = None):
        """Decode one stored chunk, naming the array and key in any error."""
        try:
            return self.pipeline.decode(data, out=out)
        except CodecError as e:
            raise CorruptChunkError(
                f"array {self.name!r}: chunk key {self.key(coords)!r} cannot be decoded: {e}"
            ) from e

    def new_chunk(self) -> np.ndarray:
        """A chunk-shaped array of the fill value."""
        return np.full(self.chunk_shape, self.fill, dtype=self.dtype)

    def read_chunk(self, coords: Sequence[int]) -> np.ndarray:
        """The whole chunk at ``coords`` (fill value if it was never written)."""
        t0 = perf_counter() if HOOKS else 0.0
        data = self.store.get(self.key(coords))
        if t0:
            t0 = self._fetched(t0, [data])
        if data is None:
            return self.new_chunk()
        chunk = self.decode(coords, data)
        if t0:
            self._decoded(t0, 1)
        return chunk

    def read_chunks(
        self, indices: Sequence[Sequence[int]], index_cache: dict | None = None
    ) -> list[tuple[tuple[int, ...], np.ndarray | BaseException]]:
        """``(index, chunk or exception)`` for a batch of chunks, trimmed at the array's edge.

        The read path of :meth:`read_into`, returning chunks instead of placing
        them: one store call fetches the batch (a LocalStore's files read
        straight, a remote store's requests overlapped), one codec call decodes
        it where the codec can. A chunk that cannot be fetched (after the
        store's retries) or decoded gets its exception in place of its data;
        the rest of the batch is returned. ``index_cache`` serves sharded
        engines and is ignored here.

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-read-chunks", shape=(5,), chunks=(2,), dtype="i2")
        >>> a[:] = [1, 2, 3, 4, 5]
        >>> [(i, c.tolist()) for i, c in a.engine.read_chunks([(1,), (2,)])]
        [((1,), [3, 4]), ((2,), [5])]
        """
        indices = [tuple(i) for i in indices]
        t0 = perf_counter() if HOOKS else 0.0
        values = self._fetch_each([self.key(i) for i in indices])
        if t0:
            t0 = self._fetched(t0, values)
        chunks = self._decode_each(indices, values)
        if t0:
            self._decoded(t0, sum(v is not None and not isinstance(v, Exception) for v in values))
        shape, cshape = self.shape, self.chunk_shape
        results: list[tuple[tuple[int, ...], np.ndarray | BaseException]] = []
        for idx, chunk in zip(indices, chunks, strict=True):
            if not isinstance(chunk, BaseException) and any(
                (i + 1) * c > s for i, c, s in zip(idx, cshape, shape, strict=True)
            ):
                chunk = chunk[
                    tuple(slice(0, s - i * c) for i, c, s in zip(idx, cshape, shape, strict=True))
                ]
            results.append((idx, chunk))
        return results

    def _fetch_each(self, keys: list[str]) -> list:
        """Each key's bytes, None (never written), or the exception its read ended in.

        One try of the whole batch (a LocalStore's files read straight, the
        store under the retry wrapper asked plainly); if it raises, each key is
        read alone through the retrying store, so that one chunk's failure is
        its own and each key gets its attempts (``zarrflow.retries``) once. A
        store that retries its own requests (an object store) is asked for the
        batch directly: after a failed batch its keys are read again one by one.
        """
        local = self._local
        store = self.store
        try:
            if local is not None:
                return local.get_many_trusted(keys, self._size_hint)
            if type(store) is RetryingStore:
                return store.inner.get_many(keys)  # type: ignore[attr-defined]
            return store.get_many(keys)
        except Exception:  # reported per chunk below, never swallowed
            pass
        values: list = []
        for key in keys:
            try:
                values.append(store.get(key))
            except Exception as e:  # each key's fate is its own
                values.append(e)
        return values

    def _decode_each(self, indices: list[tuple[int, ...]], values: list) -> list:
        """Decode fetched values in batches where the codec can; errors stay in place."""
        decoded: list = [None] * len(values)
        todo = [k for k, v in enumerate(values) if v is not None and not isinstance(v, Exception)]
        n = self._decode_batch
        for i in range(0, len(todo) if n else 0, max(n, 1)):
            part = todo[i : i + n]
            try:
                chunks = self.pipeline.decode_many([values[k] for k in part])
            except CodecError:  # one is corrupt: decoded one by one below, naming its key
                continue
            for k, chunk in zip(part, chunks, strict=True):
                # a view of the codec's batch buffer (read-only): the caller gets its own
                decoded[k] = chunk if chunk.flags.writeable else chunk.copy()
        for k in todo:
            if decoded[k] is None:
                decoded[k] = self._decode_or_error(indices[k], values[k])
        fill = self.new_chunk
        return [
            v if isinstance(v, Exception) else fill() if v is None else d
            for v, d in zip(values, decoded, strict=True)
        ]

    def _decode_or_error(self, coords: tuple[int, ...], data: bytes) -> np.ndarray | Exception:
        """One chunk decoded, or its error; a short fast read is read again in full first."""
        try:
            return self.decode(coords, data)
        except CorruptChunkError as e:
            if self._local is None or self._size_hint is None:
                return e
        try:
            data = self.store.get(self.key(coords))
            return self.new_chunk() if data is None else self.decode(coords, data)
        except Exception as e:  # reported in place of the chunk
            return e

    def read_into(
        self, out: np.ndarray, projections: Iterable[ChunkProjection], flat: bool = False
    ) -> None:
        """Fill ``out`` from the chunks the projections name (sequentially)."""
        target = out.reshape(-1) if flat else out
        scratch = scratch_chunk(self.chunk_shape, self.dtype)  # this thread's, reused
        if self.store.is_remote:  # one batched fetch overlaps the requests
            projections = list(projections)
            t0 = perf_counter() if HOOKS else 0.0
            values = self.store.get_many([self.key(p.chunk_coords) for p in projections])
            if t0:
                self._fetched(t0, values)
            self._place_many(target, projections, values, scratch)
            return
        # batches of keys: a store may answer a batch faster (LocalStore: one failed
        # open and one stat for a directory of chunks never written), and the bytes
        # held stay bounded
        fetch, key = self._fetch, self.key
        for batch in _batched(projections, self._read_batch):
            t0 = perf_counter() if HOOKS else 0.0
            values = fetch([key(p.chunk_coords) for p in batch])
            if t0:
                self._fetched(t0, values)
            self._place_many(target, batch, values, scratch)

    def read_inner_into(self, out: np.ndarray, projections: Iterable[ChunkProjection]) -> None:
        """:meth:`read_into` over the inner-chunk grid (here: the chunk grid itself)."""
        self.read_into(out, projections)

    def _fetch(self, keys: list[str]) -> list[bytes | None]:
        """``store.get_many(keys)``, straight from a LocalStore's files when it is one.

        A transient failure of the fast read is retried key by key through the
        retrying store, as ``RetryingStore.get_many`` does for its own batches.
        """
        local = self._local
        if local is None:
            return self.store.get_many(keys)
        return batch_or_each(
            lambda: local.get_many_trusted(keys, self._size_hint),
            lambda: [self.store.get(k) for k in keys],
        )

    def _place_many(
        self,
        target: np.ndarray,
        projections: list[ChunkProjection],
        values: list,
        scratch: np.ndarray,
    ) -> None:
        """Decode fetched chunks (None for missing ones) into their places in ``target``.

        With a telemetry hook, decoding reports as ``decode`` and the copies
        into ``target`` as ``place`` (decoding straight into place: ``decode``).
        """
        t0 = perf_counter() if HOOKS else 0.0
        n = self._decode_batch
        if not n:
            self._place_each(target, projections, values, scratch)
            if t0:
                self._decoded(t0, len(values) - values.count(None))
            return
        decode_many, fill = self.pipeline.decode_many, self.fill
        for i in range(0, len(projections), n):
            batch, data = projections[i : i + n], values[i : i + n]
            try:
                chunks = decode_many(data)
            except CodecError:  # one of them is corrupt: find it, and name its key
                self._place_each(target, batch, data, scratch)
                continue
            if t0:
                t0 = self._decoded(t0, len(data) - data.count(None))
            for p, chunk in zip(batch, chunks, strict=True):
                if chunk is None:
                    target[p.out_selection] = fill
                else:
                    target[p.out_selection] = chunk[p.chunk_selection]
            if t0:
                emit_since(t0, "read", "place", 0, len(batch))
                t0 = perf_counter()

    def _place_each(
        self,
        target: np.ndarray,
        projections: list[ChunkProjection],
        values: list,
        scratch: np.ndarray,
    ) -> None:
        """:meth:`place` chunk by chunk; a chunk that cannot be decoded is read again first.

        The fast local read takes a short read for the end of the file; before
        a chunk read that way is called corrupt, it is read again in full.
        """
        reread = self._local is not None and self._size_hint is not None
        for p, data in zip(projections, values, strict=True):
            try:
                self.place(target, p, data, scratch)
            except CorruptChunkError:
                if not reread:
                    raise
                self.place(target, p, self.store.get(self.key(p.chunk_coords)), scratch)

    def place(self, target: np.ndarray, p: ChunkProjection, data, scratch=None) -> None:
        """Decode one fetched chunk (or None) into its place in ``target``."""
        if data is None:
            target[p.out_selection] = self.fill
            return
        sel = p.out_selection
        if p.is_complete_chunk and type(sel) is tuple and all(type(s) is slice for s in sel):
            # only an all-slice selection is a view (any array in it makes a copy);
            # the Ellipsis keeps a 0-d target an array rather than a scalar
            view = target[(*sel, Ellipsis)]
            if view.shape == self.chunk_shape and view.flags.c_contiguous:
                self.decode(p.chunk_coords, data, out=view)
                return
        chunk = self.decode(p.chunk_coords, data, out=scratch)
        target[p.out_selection] = chunk[p.chunk_selection]
