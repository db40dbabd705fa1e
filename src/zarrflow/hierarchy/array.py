"""The Zarr array: shape, chunks, dtype, attributes, and selection reads and writes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from zarrflow.chunks import ChunkCache, ChunkEngine, open_engine, resolve_chunk_cache
from zarrflow.errors import ReadOnlyError, SelectionError, ValueShapeError
from zarrflow.hierarchy.layout import ArrayLayout
from zarrflow.hierarchy.node_base import Node
from zarrflow.hierarchy.reshaping import ShapeChanges
from zarrflow.indexing import (
    BasicIndexer,
    allocate_result,
    make_indexer,
    slices_from_start_stop,
)
from zarrflow.metadata.object_dtypes import object_kind
from zarrflow.parallel import stream
from zarrflow.parallel.dask_read import parallel_read, parallel_write, to_dask
from zarrflow.storage import Store

__all__ = ["Array"]


class _IndexView:
    """``a.oindex[...]`` / ``a.vindex[...]``: the same array, another selection kind."""

    __slots__ = ("_array", "_kind")

    def __init__(self, array: Array, kind: str) -> None:
        self._array = array
        self._kind = kind

    def __getitem__(self, selection: Any) -> np.ndarray:
        return self._array._get(self._array._indexer(selection, self._kind))

    def __setitem__(self, selection: Any, value: Any) -> None:
        self._array._set(self._array._indexer(selection, self._kind), value)


class Array(ShapeChanges, Node, ArrayLayout):
    """A Zarr array (v2 or v3) in a store.

    Open or create one with :func:`zarrflow.open` or :func:`zarrflow.create`;
    the constructor takes an already-loaded metadata object.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-array", shape=(4, 4), chunks=(2, 2), dtype="int32")
    >>> a[0:2, 0:2] = 7
    >>> int(a[:].sum())
    28
    """

    kind = "array"

    def __init__(
        self,
        store: Store,
        path: str,
        metadata,
        *,
        write_empty_chunks: bool = False,
        chunk_cache: ChunkCache | int | None = None,
    ) -> None:
        super().__init__(store, path, metadata)
        self._chunk_cache = resolve_chunk_cache(chunk_cache)
        self._engine = open_engine(
            store,
            self._path,
            metadata,
            write_empty_chunks=write_empty_chunks,
            chunk_cache=self._chunk_cache,
        )

    @property
    def chunk_cache(self) -> ChunkCache | None:
        """The cache of decoded chunks this array reads through (None: none)."""
        return self._chunk_cache

    def use_chunk_cache(self, chunk_cache: ChunkCache | int) -> Array:
        """Read through ``chunk_cache`` from now on (a ChunkCache, or bytes; 0: no cache).

        Parameters
        ----------
        chunk_cache
            A :class:`~zarrflow.ChunkCache` (shared with other arrays), a size
            in bytes for a new one, or 0 to stop caching.

        Returns
        -------
        Array
            This array.

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-use-cache", shape=(4,), chunks=(2,), dtype="u1")
        >>> a.use_chunk_cache(2**20).chunk_cache.max_bytes
        1048576
        """
        self._chunk_cache = None if chunk_cache is None else resolve_chunk_cache(chunk_cache)
        self._engine = open_engine(
            self._store,
            self._path,
            self._meta,
            write_empty_chunks=self._engine.write_empty_chunks,
            chunk_cache=self._chunk_cache,
        )
        return self

    @property
    def engine(self) -> ChunkEngine:
        """The chunk engine that reads and writes this array's chunks (store, path, metadata)."""
        return self._engine

    # description -------------------------------------------------------------
    @property
    def name(self) -> str:
        """The array's URL: store URL plus path (as the chunk layer names it in errors)."""
        return self._engine.name

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._meta.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._meta.dtype)

    @property
    def fill_value(self) -> Any:
        return self._meta.fill_value

    @property
    def order(self) -> str:
        return self._meta.order

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def dimension_names(self) -> tuple[str | None, ...] | None:
        return self._meta.dimension_names

    def stored_chunk_keys(self):
        """The keys of the stored chunks, or shards when sharded (one listing of the prefix)."""
        engine = self._engine
        for coords in engine.stored_chunk_coords():
            yield engine.key(coords)

    def _metadata_changed(self, metadata) -> None:
        """Take ``metadata`` (just stored) as this handle's own, and rebuild the engine."""
        self._meta = metadata
        self._engine = open_engine(
            self._store,
            self._path,
            metadata,
            write_empty_chunks=self._engine.write_empty_chunks,
            chunk_cache=self._chunk_cache,
        )

    # selection ---------------------------------------------------------------
    def _indexer(self, selection: Any, kind: str):
        """The indexer of ``selection``: kind "numpy" (``a[...]``), "orthogonal" or "vindex"."""
        try:
            grid = self.shards or self.chunks  # the stored objects' grid
            return make_indexer(selection, self.shape, grid, kind)
        except SelectionError as e:
            raise SelectionError(f"array {self.name!r}: {e}") from None

    def _get(self, indexer, selection: Any = None) -> np.ndarray:
        out, target = allocate_result(indexer, self.dtype, self.name)
        parallel_read(self._engine, indexer, target, False, selection)
        if out.ndim == 0:
            return out[()]
        return out

    def _prepare_value(self, value: Any, shape: tuple[int, ...]) -> np.ndarray:
        arr = np.asarray(value)
        if self.dtype.kind == "O":
            arr = self._variable_length_value(arr)
        if arr.dtype != self.dtype:
            if arr.ndim == 0 and not isinstance(value, np.ndarray | np.generic):
                ok = np.can_cast(np.min_scalar_type(value), self.dtype, "same_kind") or (
                    arr.dtype.kind in "iub" and self.dtype.kind in "iufc"
                )
            else:
                ok = np.can_cast(arr.dtype, self.dtype, "same_kind")
            if not ok:
                raise ValueShapeError(
                    f"array {self.name!r}: cannot write {arr.dtype} data into a {self.dtype} "
                    "array without losing information; convert it first (astype)"
                )
            try:
                arr = arr.astype(self.dtype)
            except (OverflowError, ValueError) as e:
                raise ValueShapeError(f"array {self.name!r}: {e}") from None
        try:
            return np.broadcast_to(arr, shape)
        except ValueError:
            raise ValueShapeError(
                f"array {self.name!r}: value of shape {arr.shape} does not fit a selection "
                f"of shape {shape}"
            ) from None

    def _variable_length_value(self, arr: np.ndarray) -> np.ndarray:
        """Values for a string (or bytes) array: an object array of ``str`` (``bytes``).

        numpy ``U`` (``S``) arrays are converted; anything else is refused
        before any chunk is written.
        """
        kind = object_kind(self.dtype)
        want, code = {"string": (str, "U"), "variable_length_bytes": (bytes, "S")}.get(
            kind,  # type: ignore[arg-type]
            (None, ""),
        )
        if want is None:
            return arr
        if arr.dtype.kind == code:
            return arr.astype(object)
        if arr.dtype.kind == "O" and all(isinstance(v, want) for v in arr.flat):
            return arr
        raise ValueShapeError(
            f"array {self.name!r}: a {kind} array holds {want.__name__} values only, got "
            f"{arr.dtype} data; convert it first (e.g. .astype({want.__name__}))"
        )

    def _set(self, indexer, value: Any) -> None:
        if self.read_only:
            raise ReadOnlyError(f"array {self.name!r} is read-only: cannot write")
        arr = self._prepare_value(value, tuple(indexer.shape))
        parallel_write(self._engine, indexer, arr.reshape(indexer.projection_shape), False)

    def __getitem__(self, selection: Any) -> Any:
        indexer = self._indexer(selection, "numpy")
        return self._get(indexer, selection if isinstance(indexer, BasicIndexer) else None)

    def __setitem__(self, selection: Any, value: Any) -> None:
        self._set(self._indexer(selection, "numpy"), value)

    @property
    def oindex(self) -> _IndexView:
        """Orthogonal selection: integer arrays and boolean masks per axis."""
        return _IndexView(self, "orthogonal")

    @property
    def vindex(self) -> _IndexView:
        """Coordinate (point) selection, or a boolean mask of the array's shape."""
        return _IndexView(self, "vindex")

    def get_slice(
        self,
        start: Sequence[int] | None = None,
        stop: Sequence[int] | None = None,
        step: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Read the box ``[start, stop)`` (with optional steps).

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-gs", shape=(4, 4), chunks=(2, 2), dtype="int8")
        >>> a.get_slice(start=(1, 1), stop=(3, 3)).shape
        (2, 2)
        """
        return self[slices_from_start_stop(self.shape, start, stop, step)]

    def set_slice(self, data: Any, start: Sequence[int] | None = None) -> None:
        """Write ``data`` into the box starting at ``start``.

        Examples
        --------
        >>> import numpy as np, zarrflow as zf
        >>> a = zf.create("memory://doc-ss", shape=(4, 4), chunks=(2, 2), dtype="int8")
        >>> a.set_slice(np.ones((2, 3), "int8"), start=(1, 1))
        >>> int(a[:].sum())
        6
        """
        data = np.asarray(data)
        start = tuple(start) if start is not None else (0,) * self.ndim
        if data.ndim != self.ndim or len(start) != self.ndim:
            raise ValueShapeError(
                f"array {self.name!r}: set_slice needs {self.ndim}-d data and start, "
                f"got data of shape {data.shape} and start {start}"
            )
        stop = tuple(s + n for s, n in zip(start, data.shape, strict=True))
        self[slices_from_start_stop(self.shape, start, stop)] = data

    # chunks -------------------------------------------------------------------
    def chunk_key(self, chunk_index: Sequence[int]) -> str:
        """The store key of a chunk; of the shard holding it, when sharded.

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-chunk-key", shape=(8,), chunks=(2,), shards=(4,))
        >>> a.chunk_key((3,))
        'c/1'
        """
        return self._engine.key(self._shard_index(chunk_index))

    def _shard_index(self, chunk_index: Sequence[int]) -> tuple[int, ...]:
        if self.shards is None:
            return tuple(chunk_index)
        per = (s // c for s, c in zip(self.shards, self.chunks, strict=True))
        return tuple(i // n for i, n in zip(chunk_index, per, strict=True))

    def read_chunk(self, chunk_index: Sequence[int]) -> np.ndarray:
        """The decoded chunk at ``chunk_index`` (full chunk shape, fill where missing).

        For a sharded array ``chunk_index`` indexes the inner chunk grid
        (:attr:`chunk_grid_shape`), as :meth:`chunk_stream` yields it.

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-read-chunk", shape=(5,), chunks=(2,), shards=(4,),
        ...               dtype="i1", fill_value=9)
        >>> a[:] = 1
        >>> a.read_chunk((2,)).tolist()
        [1, 9]
        """
        self._check_chunk_index(chunk_index)
        if self.shards is not None:
            return self._read_inner_chunk(tuple(chunk_index))
        return self._engine.read_chunk(tuple(chunk_index))

    def _read_inner_chunk(self, chunk_index: tuple[int, ...]) -> np.ndarray:
        out = np.full(self.chunks, self.fill_value, dtype=self.dtype)
        part = self[self.chunk_slices(chunk_index)]
        out[tuple(slice(0, n) for n in part.shape)] = part
        return out

    def write_chunk(self, chunk_index: Sequence[int], chunk: Any) -> None:
        """Replace a whole chunk with ``chunk`` (of the chunk shape).

        For a sharded array this is an inner chunk: its shard is rewritten
        with the read-modify-write of any partial write.
        """
        self._check_chunk_index(chunk_index)
        if self.read_only:
            raise ReadOnlyError(f"array {self.name!r} is read-only: cannot write")
        arr = self._prepare_value(chunk, self.chunks)
        if self.shards is not None:
            region = self.chunk_slices(chunk_index)
            self[region] = arr[tuple(slice(0, r.stop - r.start) for r in region)]
            return
        self._engine.write_chunk(tuple(chunk_index), np.ascontiguousarray(arr))

    def _check_chunk_index(self, chunk_index: Sequence[int]) -> None:
        grid = self.chunk_grid_shape
        idx = tuple(chunk_index)
        if len(idx) != len(grid) or any(not 0 <= i < g for i, g in zip(idx, grid, strict=True)):
            raise SelectionError(
                f"array {self.name!r}: chunk index {idx} is outside the chunk grid {grid}"
            )

    def chunk_slices(self, chunk_index: Sequence[int]) -> tuple[slice, ...]:
        """The region a chunk (an inner chunk, when sharded) covers, clipped at the edge."""
        return tuple(
            slice(i * c, min((i + 1) * c, s))
            for i, c, s in zip(chunk_index, self.chunks, self.shape, strict=True)
        )

    # parallel chunk I/O --------------------------------------------------------
    def chunk_stream(
        self,
        parallel: int = 1,
        ordered: bool = True,
        filter: Callable[[tuple[int, ...]], bool] | None = None,
        progress_callback: Callable[[int, int], None] | None = None,
        scheduler: Any = None,
        skip_missing: bool = False,
        on_error: str = "raise",
    ) -> Iterator[tuple[tuple[int, ...], Any]]:
        """Stream ``(chunk_index, chunk)`` pairs, lazily, with bounded memory.

        Parameters
        ----------
        parallel
            Chunk reads in flight at once; 1 reads sequentially in grid order.
            At most ``2 × parallel`` batches of chunks are held at any moment:
            those being read, and as many finished and waiting for you. A batch
            is one chunk of 256 KiB or more on local threads (up to 64 smaller
            ones), and about ``zarrflow.task_target_bytes`` (4 MiB) of chunks
            on a cluster or process pool, where each task is a round trip.
        ordered
            Yield in grid order (True) or as reads complete (False).
        filter
            ``filter(chunk_index) -> bool``, applied before reading: chunks it
            rejects are never fetched.
        progress_callback
            ``progress_callback(done, total)``, called in your thread.
        scheduler
            Where reads run: None (Dask's default, so an active distributed
            client), "threads", "sync", "processes", a Client or an address.
        skip_missing
            Stream only stored chunks (one listing); otherwise missing chunks
            arrive filled with the fill value.
        on_error
            ``"raise"``: a read that fails (after the store's retries) raises
            :class:`~zarrflow.ParallelChunkError` naming the chunk index and
            ends the stream. ``"return"``: the stream goes on, and the failed
            chunk arrives as a :class:`~zarrflow.ChunkFailure` in place of its
            data, so one pass reports every chunk that could not be read.

        Chunks at the array's edge arrive trimmed to the array's shape.
        Breaking out of the loop cancels the reads not yet started. A sharded
        array streams its *inner* chunks (``chunk_index`` in
        :attr:`chunk_grid_shape`, the grid of :attr:`chunks`), shard by shard,
        each shard's index read once.

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-stream", shape=(4, 4), chunks=(2, 2), dtype="i4")
        >>> a[:] = 1
        >>> [(idx, int(c.sum())) for idx, c in a.chunk_stream(parallel=2)][:2]
        [((0, 0), 4), ((0, 1), 4)]
        """
        return stream.chunk_stream(
            self._engine,
            parallel,
            ordered,
            filter,
            progress_callback,
            scheduler,
            skip_missing,
            on_error,
        )

    def parallel_chunk_map(
        self,
        fn: Callable[[tuple[int, ...], np.ndarray], Any],
        max_concurrency: int | None = None,
        timeout: float | None = None,
        ordered: bool = True,
        retries: int = 0,
        on_error: str = "raise",
        scheduler: Any = None,
        filter: Callable[[tuple[int, ...]], bool] | None = None,
        progress_callback: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[tuple[int, ...], Any]]:
        """Run ``fn(chunk_index, chunk)`` on every chunk in parallel; yield the results.

        ``fn`` runs in the task that reads the chunk, so on a cluster only its
        result travels back. ``timeout`` (seconds per chunk) fails a late chunk
        with :class:`~zarrflow.ChunkTimeoutError`; ``retries`` re-runs a chunk
        whose ``fn`` or read raised; ``on_error="return"`` yields a
        :class:`~zarrflow.ChunkFailure` in place of the result instead of raising.
        ``max_concurrency`` defaults to the number of cores (or cluster threads).
        A sharded array is mapped per *inner* chunk (:attr:`chunks`), as
        :meth:`chunk_stream` streams it.

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-map", shape=(4,), chunks=(2,), dtype="i4")
        >>> a[:] = [1, 2, 3, 4]
        >>> list(a.parallel_chunk_map(lambda idx, c: int(c.sum()), max_concurrency=2))
        [((0,), 3), ((1,), 7)]
        """
        return stream.parallel_chunk_map(
            self._engine,
            fn,
            max_concurrency=max_concurrency,
            timeout=timeout,
            ordered=ordered,
            retries=retries,
            on_error=on_error,
            scheduler=scheduler,
            filter=filter,
            progress_callback=progress_callback,
        )

    def reduce_chunks(
        self,
        fn: Callable[[tuple[int, ...], np.ndarray], Any],
        combine: Callable[[Any, Any], Any],
        initial: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Fold per-chunk results with ``combine`` as they arrive, never holding every chunk.

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-reduce", shape=(6,), chunks=(2,), dtype="i4")
        >>> a[:] = [5, 1, 9, 2, 7, 3]
        >>> a.reduce_chunks(lambda i, c: int(c.max()), max)
        9
        """
        return stream.reduce_chunks(self._engine, fn, combine, initial, **kwargs)

    def to_dask(self, chunks_per_task: int | Sequence[int] | None = None):
        """A lazy dask array over this array: one read task per block of whole chunks.

        Small chunks are grouped so one task reads about
        ``zarrflow.task_target_bytes`` (4 MiB); ``chunks_per_task`` (a count, or
        a count per axis) sets the grouping explicitly. A sharded array's
        blocks are whole shards (:attr:`shards`, grouped when small; one request
        each), or inner chunks tiling a shard when a shard exceeds
        ``zarrflow.shard_task_bytes``; there ``chunks_per_task`` counts inner
        chunks. For the stored chunks as blocks (what xarray's ``chunks={}``
        gives), use ``chunks_per_task=1``.

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-to-dask", shape=(100, 100), chunks=(10, 10), dtype="f4")
        >>> x = a.to_dask(chunks_per_task=1)
        >>> x.chunksize, x.npartitions
        ((10, 10), 100)
        """
        return to_dask(self._engine, chunks_per_task=chunks_per_task)

    # presentation -------------------------------------------------------------
    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[...]
        return np.asarray(out, dtype=dtype)

    def __repr__(self) -> str:
        return (
            f"<zarrflow.Array {self.name!r} shape={self.shape} chunks={self.chunks} "
            + (f"shards={self.shards} " if self.shards else "")
            + f"dtype={self.dtype} zarr_format={self.zarr_format}>"
        )

    @property
    def info(self):
        """A summary: format, shape, chunks, codecs, stored chunks and bytes."""
        from zarrflow.hierarchy.info import array_info

        return array_info(self)

    def __reduce__(self):
        # the URL (store) and metadata travel, never the data
        return (
            _rebuild_array,
            (
                self._store,
                self._path,
                self._meta,
                self._engine.write_empty_chunks,
                self._chunk_cache if self._chunk_cache is not None else 0,
            ),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Array) and other.name == self.name and other._meta == self._meta

    def __hash__(self) -> int:
        return hash(self.name)


def _rebuild_array(
    store: Store, path: str, metadata, write_empty_chunks: bool, chunk_cache: ChunkCache | int = 0
) -> Array:
    return Array(
        store, path, metadata, write_empty_chunks=write_empty_chunks, chunk_cache=chunk_cache
    )
