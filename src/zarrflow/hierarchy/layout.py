"""What an array reports about its layout, as zarr-python 3's ``Array`` does.

Chunks and shards (on a sharded array ``chunks`` is the *inner* chunk and
``shards`` the shard shape), their grids and counts, the codecs split by kind
(``compressors``, ``filters``, ``serializer``) and the bytes stored.
:class:`~zarrflow.Array` inherits these from :class:`ArrayLayout`; they use
only the array's public ``metadata``, ``store``, ``path``, ``shape`` and
``stored_chunk_keys()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from zarrflow.hierarchy import codec_views
from zarrflow.storage import Store

__all__ = ["ArrayLayout"]


def _prefix(path: str) -> str:
    """The key prefix of the node at ``path``."""
    return f"{path}/" if path else ""


class ArrayLayout:
    """Chunk, shard and codec properties derived from an array's metadata and store.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-layout", shape=(6, 6), chunks=(1, 3), shards=(2, 6))
    >>> a.chunks, a.shards, a.nchunks, a.nshards
    ((1, 3), (2, 6), 12, 3)
    """

    metadata: Any
    store: Store
    path: str
    shape: tuple[int, ...]

    def stored_chunk_keys(self) -> Iterator[str]:  # pragma: no cover - Array's
        raise NotImplementedError

    @property
    def chunks(self) -> tuple[int, ...]:
        """The chunk shape; for a sharded array the *inner* chunk (zarr-python's convention).

        The shard shape is :attr:`shards`. Reads, writes and locks work per
        stored object: a chunk, or a whole shard (``a.shards or a.chunks``).

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-chunks", shape=(8, 8), chunks=(2, 2), shards=(4, 8))
        >>> a.chunks, a.shards
        ((2, 2), (4, 8))
        """
        inner = getattr(self.metadata, "inner_chunks", None)
        return tuple(inner if inner is not None else self.metadata.chunks)

    @property
    def shards(self) -> tuple[int, ...] | None:
        """The shard shape of a sharded (v3) array, None when not sharded."""
        if getattr(self.metadata, "inner_chunks", None) is None:
            return None
        return tuple(self.metadata.chunks)

    @property
    def chunk_grid_shape(self) -> tuple[int, ...]:
        """Chunks along each axis: inner chunks when sharded (zarr-python's ``cdata_shape``).

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-grid", shape=(10, 10), chunks=(2, 2), shards=(4, 4))
        >>> a.chunk_grid_shape, a.shard_grid_shape, a.nchunks, a.nshards
        ((5, 5), (3, 3), 25, 9)
        """
        # a zero chunk length (zarr-python's, along an empty axis) means no chunks there
        return tuple(
            math.ceil(s / c) if c else 0 for s, c in zip(self.shape, self.chunks, strict=True)
        )

    @property
    def shard_grid_shape(self) -> tuple[int, ...]:
        """Number of stored objects along each axis: shards, or chunks when not sharded."""
        outer = self.shards or self.chunks
        return tuple(math.ceil(s / c) if c else 0 for s, c in zip(self.shape, outer, strict=True))

    @property
    def nchunks(self) -> int:
        """The number of chunks (inner chunks when sharded; see :attr:`nshards`)."""
        return math.prod(self.chunk_grid_shape)

    @property
    def nshards(self) -> int:
        """The number of shards (the number of chunks when not sharded)."""
        return math.prod(self.shard_grid_shape)

    @property
    def nchunks_initialized(self) -> int:
        """How many chunks are stored (the rest read as the fill value); one listing.

        For a sharded array this counts the inner chunks that lie inside the
        stored shards and inside the array, as zarr-python does (stored shards
        × inner chunks per shard, clipped at the array's edge) without reading
        any shard index: an inner chunk left out of a stored shard because it
        held only the fill value is still counted. :attr:`nshards_initialized`
        counts the stored shards.

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-ninit", shape=(10,), chunks=(2,), shards=(4,))
        >>> a[:5] = 1
        >>> a.nshards_initialized, a.nchunks_initialized
        (2, 4)
        """
        if self.shards is None:
            return sum(1 for _ in self.stored_chunk_keys())
        prefix_len, grid = len(_prefix(self.path)), self.chunk_grid_shape
        per = [s // c for s, c in zip(self.shards, self.chunks, strict=True)]
        total = 0
        for key in self.stored_chunk_keys():
            shard = self.metadata.parse_chunk_key(key[prefix_len:])
            total += math.prod(min(n, g - i * n) for i, n, g in zip(shard, per, grid, strict=True))
        return total

    @property
    def nshards_initialized(self) -> int:
        """How many shards (chunks, when not sharded) are stored: one listing."""
        return sum(1 for _ in self.stored_chunk_keys())

    @property
    def compressors(self) -> tuple[Any, ...]:
        """The bytes-to-bytes codecs, in order (zarr-python's ``compressors``).

        v2: the numcodecs compressor, in a tuple (empty when uncompressed). v3:
        the codec configurations (``{"name": ..., "configuration": {...}}``)
        after the serializer; for a sharded array those inside the shard.
        These are what :func:`zarrflow.create` and xarray's ``to_zarr`` accept.

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-compressors", shape=(4,), dtype="i4")
        >>> [c["name"] for c in a.compressors], a.filters, a.serializer["name"]
        (['zstd'], (), 'bytes')
        """
        return codec_views.compressors(self.metadata)

    @property
    def filters(self) -> tuple[Any, ...]:
        """The array-to-array codecs: numcodecs filters (v2) or v3 codec configurations."""
        return codec_views.filters(self.metadata)

    @property
    def serializer(self) -> dict[str, Any] | None:
        """The v3 array-to-bytes codec configuration (the inner one when sharded); None for v2."""
        return codec_views.serializer(self.metadata)

    def nbytes_stored(self) -> int:
        """The bytes stored under the array's prefix: chunks, shards and metadata documents.

        A method, as in zarr-python, because it lists the store (and on stores
        that do not report sizes in their listing, reads each object).

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-nbytes-stored", shape=(4,), dtype="i4")
        >>> a.nbytes_stored() == len(a.store.get("zarr.json"))
        True
        """
        return codec_views.stored_bytes(self.store, _prefix(self.path))

    def info_complete(self):
        """:attr:`info` plus what needs the store: stored chunks and bytes (one listing).

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-info-complete", shape=(4, 4), chunks=(2, 2), dtype="f4")
        >>> a[:] = 1
        >>> a.info_complete()["Chunks stored"]
        '4 / 4'
        """
        from zarrflow.hierarchy.info import array_info

        return array_info(self, complete=True)
