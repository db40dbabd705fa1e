"""The chunk engine: read and write one chunk or a batch of chunks, regular or sharded.

:class:`~zarrflow.chunks.regular.ChunkIO` does the work of one array's chunks
(fetch, decode, place; encode, store; read-modify-write of partial chunks);
:class:`~zarrflow.chunks.sharded.ShardIO` does the same over shards;
:mod:`.locks` names per-chunk locks and :mod:`.resize` changes an array's shape.
"""

from __future__ import annotations

from zarrflow.chunks.locks import chunk_lock
from zarrflow.chunks.regular import ChunkIO

__all__ = ["ChunkIO", "chunk_lock"]
