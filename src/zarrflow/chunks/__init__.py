"""The chunk engine: read and write one chunk or a batch of chunks, regular or sharded.

:func:`open_engine` gives the :class:`ChunkEngine` of an array (its contract is
in :mod:`.engine`): :class:`~zarrflow.chunks.regular.ChunkIO` does the work of
one array's chunks (fetch, decode, place; encode, store; read-modify-write of
partial chunks); :class:`~zarrflow.chunks.sharded.ShardIO` does the same over
shards; :mod:`.locks` names per-chunk locks and :mod:`.resize` clears what a
shrinking shape leaves behind.
"""

from __future__ import annotations

from zarrflow.chunks.cache import ChunkCache, default_chunk_cache, resolve_chunk_cache
from zarrflow.chunks.cached import CachedChunkIO
from zarrflow.chunks.engine import ChunkEngine, open_engine
from zarrflow.chunks.locks import chunk_lock
from zarrflow.chunks.regular import ChunkIO
from zarrflow.chunks.sharded import ShardIO

__all__ = [
    "CachedChunkIO",
    "ChunkCache",
    "ChunkEngine",
    "ChunkIO",
    "ShardIO",
    "chunk_lock",
    "default_chunk_cache",
    "open_engine",
    "resolve_chunk_cache",
]
