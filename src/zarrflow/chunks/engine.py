"""The chunk engine's contract: what ``parallel`` and ``hierarchy`` drive, on one screen.

A :class:`ChunkEngine` is one array's chunks: a store, a path and metadata,
nothing else. It pickles as exactly that (the codec pipeline is rebuilt on
the other side), so a Dask task on a cluster worker carries an engine, never
data and never an :class:`~zarrflow.Array`. Two implementations, picked by
:func:`open_engine`: :class:`~zarrflow.chunks.regular.ChunkIO` for regular
chunks, :class:`~zarrflow.chunks.sharded.ShardIO` for sharded arrays.

Two grids: **stored objects** (``chunk_shape``: a chunk, or a whole shard)
are what ``read_into`` / ``write_from`` projections and ``key`` address;
**inner chunks** (``inner_shape``: the chunk itself, or a shard's inner
chunk) are what streams yield and ``read_chunks`` returns. One read path:
``read_into`` and ``read_chunks`` both fetch a batch of keys in one store
call and decode it in one codec call where the codec can. One write path:
``write_from``; its read-modify-write of a partial chunk or shard is one
method per implementation (``write_projection``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from zarrflow.chunks.cache import ChunkCache
from zarrflow.chunks.cached import CachedChunkIO, can_cache
from zarrflow.chunks.regular import ChunkIO
from zarrflow.chunks.sharded import ShardIO
from zarrflow.errors import ChunkFailure
from zarrflow.indexing import ChunkProjection
from zarrflow.storage import Store

__all__ = ["ChunkEngine", "Index", "open_engine"]

Index = tuple[int, ...]


@runtime_checkable
class ChunkEngine(Protocol):
    """Read and write one array's chunks (see the module notes for the two grids)."""

    name: str  # the array's URL, named in every error
    store: Store  # retries transient failures (``zarrflow.retries``), once
    path: str
    metadata: Any
    prefix: str  # the key prefix of the array's chunks
    chunk_shape: tuple[int, ...]  # one stored object: a chunk, or a shard
    inner_shape: tuple[int, ...]  # what streams yield: the chunk, or a shard's inner chunk
    dtype: np.dtype
    fill: Any
    write_empty_chunks: bool

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def chunk_grid_shape(self) -> tuple[int, ...]: ...
    @property
    def inner_grid_shape(self) -> tuple[int, ...]: ...
    def key(self, coords: Sequence[int]) -> str: ...
    def read_chunk(self, coords: Sequence[int]) -> np.ndarray: ...
    def read_into(
        self, out: np.ndarray, projections: Iterable[ChunkProjection], flat: bool = False
    ) -> None: ...
    def read_inner_into(self, out: np.ndarray, projections: Iterable[ChunkProjection]) -> None: ...
    def read_chunks(
        self, indices: Sequence[Index], index_cache: dict | None = None
    ) -> list[tuple[Index, np.ndarray | BaseException]]: ...
    def write_chunk(self, coords: Sequence[int], chunk: np.ndarray) -> None: ...
    def write_from(
        self,
        value: np.ndarray,
        projections: Iterable[ChunkProjection],
        flat: bool = False,
        lock: str | None = None,
    ) -> list[ChunkFailure]: ...
    def raise_failures(self, failures: list[ChunkFailure]) -> None: ...
    def check_writable(self) -> None: ...
    def stored_chunk_coords(self) -> list[Index]: ...
    def inner_chunks_of(
        self, coords: Index, stored: bool = False, index_cache: dict | None = None
    ) -> list[Index]: ...


def open_engine(
    store: Store,
    path: str,
    metadata: Any,
    *,
    write_empty_chunks: bool = False,
    chunk_cache: ChunkCache | None = None,
) -> ChunkEngine:
    """The chunk engine of the array at ``path``: sharded when its metadata says so.

    Parameters
    ----------
    store, path, metadata
        Where the array lives and what it is (checked: an unknown codec raises).
    write_empty_chunks
        Store chunks equal to the fill value instead of deleting them.
    chunk_cache
        Read regular chunks through this cache (see :mod:`.cache`), when the
        store can keep it safe; sharded arrays and variable-length data
        (strings, bytes: their size is not their arrays' ``nbytes``) are not
        cached.

    Examples
    --------
    >>> import pickle, zarrflow as zf
    >>> a = zf.create("memory://doc-engine", shape=(8,), chunks=(2,), shards=(4,), dtype="u1")
    >>> engine = open_engine(a.store, a.path, a.metadata)
    >>> type(engine).__name__, engine.chunk_shape, engine.inner_shape, engine.key((1,))
    ('ShardIO', (4,), (2,), 'c/1')
    >>> isinstance(engine, ChunkEngine)
    True
    >>> [(i, c.tolist()) for i, c in engine.read_chunks([(0,), (3,)])]
    [((0,), [0, 0]), ((3,), [0, 0])]
    >>> type(pickle.loads(pickle.dumps(engine))).__name__
    'ShardIO'
    """
    if getattr(metadata, "inner_chunks", None) is not None:
        return ShardIO(store, path, metadata, write_empty_chunks)
    variable_length = np.dtype(metadata.dtype).kind == "O"  # nbytes would not bound them
    if chunk_cache is not None and can_cache(store, chunk_cache) and not variable_length:
        return CachedChunkIO(store, path, metadata, write_empty_chunks, chunk_cache)
    return ChunkIO(store, path, metadata, write_empty_chunks)
