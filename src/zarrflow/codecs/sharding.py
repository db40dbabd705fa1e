"""The ``sharding_indexed`` codec: many inner chunks packed into one stored shard.

A shard is the concatenation of its non-empty inner chunks, each encoded with
the inner ``codecs``, plus a *shard index* at the start or the end: an array
of shape ``(*chunks_per_shard, 2)`` of ``uint64`` holding ``(offset, nbytes)``
of every inner chunk (``2**64 - 1`` twice for a missing one), encoded with
the ``index_codecs`` (``bytes`` and optionally ``crc32c``; the index must have
a fixed encoded size so that a reader can fetch it with one ranged request).
Offsets count from the start of the shard, index included.

:class:`ShardingCodec` is the codec as a pipeline stage (encode / decode a
whole shard) and the toolbox the sharded I/O path (:mod:`zarrflow.chunks.sharded`)
builds on: index parsing and checking, inner-chunk regions, shard assembly
and :func:`coalesce_ranges`. zarrflow writes inner chunks in C order.

Examples
--------
>>> import numpy as np
>>> codec = ShardingCodec({"chunk_shape": [2, 2]}, ChunkSpec((4, 4), np.dtype("u1")))
>>> shard = np.arange(16, dtype="u1").reshape(4, 4)
>>> np.array_equal(codec.decode(codec.encode(shard)), shard)
True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from zarrflow.codecs.pipeline import CodecPipeline
from zarrflow.codecs.registry import ArrayBytesCodec, ChunkSpec, register_codec
from zarrflow.errors import CodecError, CorruptChunkError, MetadataError

__all__ = [
    "DEFAULT_INDEX_CODECS",
    "MISSING",
    "ShardingCodec",
    "coalesce_ranges",
    "wrap_in_sharding",
]

#: the index entry of a missing inner chunk (offset and nbytes both)
MISSING = 2**64 - 1
#: what zarrflow (like zarr-python and tensorstore) writes when not told otherwise
DEFAULT_INDEX_CODECS: tuple[dict[str, Any], ...] = (
    {"name": "bytes", "configuration": {"endian": "little"}},
    {"name": "crc32c"},
)
_DEFAULT_INNER_CODECS = ({"name": "bytes", "configuration": {"endian": "little"}},)


def _parse_inner_shape(value: Any, shard_shape: tuple[int, ...]) -> tuple[int, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise CodecError(f"sharding_indexed: chunk_shape must be a list of integers, got {value!r}")
    inner = tuple(value)
    if len(inner) != len(shard_shape) or not all(
        isinstance(c, int | np.integer) and not isinstance(c, bool) and c > 0 for c in inner
    ):
        raise CodecError(
            f"sharding_indexed: chunk_shape {list(inner)} must be {len(shard_shape)} positive "
            f"integers (one per dimension of the shard shape {list(shard_shape)})"
        )
    inner = tuple(int(c) for c in inner)
    if any(s % c for s, c in zip(shard_shape, inner, strict=True)):
        raise CodecError(
            f"sharding_indexed: chunk_shape {list(inner)} must evenly divide the shard shape "
            f"{list(shard_shape)}"
        )
    return inner


def _fixed_size(pipeline: CodecPipeline) -> int | None:
    """The exact encoded size of every input to ``pipeline``, or None when it varies."""
    size = pipeline.array_to_bytes.encoded_size
    for stage in pipeline.bytes_to_bytes:
        size = None if size is None else stage.encoded_size(size)
    return size


class ShardingCodec(ArrayBytesCodec):
    """The ``sharding_indexed`` array -> bytes codec, bound to one shard shape and dtype.

    Parameters
    ----------
    config
        ``chunk_shape`` (inner chunk shape), ``codecs`` (inner codecs, default
        little-endian ``bytes``), ``index_codecs`` (default ``bytes`` + ``crc32c``)
        and ``index_location`` (``"end"``, the default, or ``"start"``).
    spec
        The shard's shape and dtype.
    fill_value
        What missing inner chunks decode to, and which inner chunks are
        left out on encode (default: the dtype's zero).

    Examples
    --------
    >>> codec = ShardingCodec({"chunk_shape": [2], "index_location": "start"},
    ...                       ChunkSpec((4,), np.dtype("u1")), fill_value=7)
    >>> codec.chunks_per_shard, codec.index_size
    ((2,), 36)
    >>> codec.decode(codec.encode(np.array([7, 7, 1, 2], "u1"))).tolist()
    [7, 7, 1, 2]
    """

    name = "sharding_indexed"
    encoded_size = None

    def __init__(
        self, config: Mapping[str, Any], spec: ChunkSpec | None, fill_value: Any = None
    ) -> None:
        if spec is None:
            raise CodecError("sharding_indexed: the shard shape is unknown (after a filter)")
        self.spec = spec
        self.shard_shape = tuple(spec.shape)
        self.dtype = np.dtype(spec.dtype)
        self.inner_shape = _parse_inner_shape(config.get("chunk_shape"), self.shard_shape)
        self.chunks_per_shard = tuple(
            s // c for s, c in zip(self.shard_shape, self.inner_shape, strict=True)
        )
        self.n_inner = math.prod(self.chunks_per_shard)
        self.index_location = config.get("index_location", "end")
        if self.index_location not in ("start", "end"):
            raise CodecError(
                f"sharding_indexed: index_location must be 'start' or 'end', "
                f"got {self.index_location!r}"
            )
        self.fill = np.zeros((), self.dtype)[()] if fill_value is None else fill_value
        self.config = {
            "chunk_shape": list(self.inner_shape),
            "codecs": list(config.get("codecs") or _DEFAULT_INNER_CODECS),
            "index_codecs": list(config.get("index_codecs") or DEFAULT_INDEX_CODECS),
            "index_location": self.index_location,
        }
        self.inner = self._inner_pipeline(self.config["codecs"])
        self.fixed_size = self.inner.fixed_size  # variable-length inner chunks: so is a shard
        self.index_pipeline = CodecPipeline.from_v3(
            self.config["index_codecs"], np.dtype("uint64"), (*self.chunks_per_shard, 2)
        )
        size = _fixed_size(self.index_pipeline)
        if size is None:
            raise CodecError(
                "sharding_indexed: index_codecs must have a fixed encoded size (use 'bytes' "
                f"and optionally 'crc32c'), got {self.config['index_codecs']!r}"
            )
        self.index_size = size
        # no encoding of an inner chunk is larger: bounds every ranged read an index asks for
        self.max_inner_nbytes = max(16 * ChunkSpec(self.inner_shape, self.dtype).nbytes, 1 << 24)
        if not self.inner.fixed_size:  # strings: about 4 KiB an element, as the pipeline's bound
            self.max_inner_nbytes = max(math.prod(self.inner_shape) << 12, 1 << 28)

    def _inner_pipeline(self, codecs: list[Any]) -> CodecPipeline:
        pipeline = CodecPipeline.from_v3(codecs, self.dtype, self.inner_shape)
        nested = pipeline.array_to_bytes
        if isinstance(nested, ShardingCodec) and not pipeline.array_to_array:
            nested = ShardingCodec(nested.config, nested.spec, self.fill)  # propagate fill
            pipeline = CodecPipeline(
                self.inner_shape, self.dtype, (), nested, pipeline.bytes_to_bytes
            )
        return pipeline

    def with_fill_value(self, fill_value: Any) -> ShardingCodec:
        """This codec with another fill value (the registry builds it with zero).

        Examples
        --------
        >>> c = ShardingCodec({"chunk_shape": [1]}, ChunkSpec((2,), np.dtype("i2")))
        >>> int(c.with_fill_value(np.int16(-1)).decode(c.encode_pieces([None, None]))[0])
        -1
        """
        return ShardingCodec(self.config, self.spec, fill_value)

    # -- geometry -------------------------------------------------------------------------
    def inner_coords(self) -> Iterator[tuple[int, ...]]:
        """Local inner-chunk coordinates in C order (the order of the index)."""
        return itertools.product(*(range(n) for n in self.chunks_per_shard))

    def region(self, local: Sequence[int]) -> tuple[slice, ...]:
        """The slice of the shard that the inner chunk at ``local`` covers."""
        return tuple(
            slice(i * c, (i + 1) * c) for i, c in zip(local, self.inner_shape, strict=True)
        )

    def linear(self, local: Sequence[int]) -> int:
        """The C-order position of an inner chunk in the shard (its index row)."""
        pos = 0
        for i, n in zip(local, self.chunks_per_shard, strict=True):
            pos = pos * n + i
        return pos

    # -- the shard index --------------------------------------------------------------------
    def index_bytes(self, data: Any) -> memoryview:
        """The encoded index inside a whole shard's bytes."""
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        if len(view) < self.index_size:
            raise CorruptChunkError(
                f"sharding_indexed: a shard must be at least its {self.index_size}-byte index, "
                f"got {len(view)} bytes"
            )
        if self.index_location == "start":
            return view[: self.index_size]
        return view[len(view) - self.index_size :]

    def decode_index(self, data: Any, shard_nbytes: int | None = None) -> np.ndarray:
        """Decode and check an encoded index: ``(n_inner, 2)`` uint64 ``(offset, nbytes)`` rows.

        ``shard_nbytes`` (the whole shard's length), when known, bounds every entry.

        Raises
        ------
        CorruptChunkError
            Wrong size, checksum mismatch, or an entry outside the shard.
        """
        if memoryview(data).nbytes != self.index_size:
            raise CorruptChunkError(
                f"sharding_indexed: expected a {self.index_size}-byte shard index, "
                f"got {memoryview(data).nbytes} bytes"
            )
        try:
            index = self.index_pipeline.decode(data)
        except CodecError as e:
            raise CorruptChunkError(f"sharding_indexed: the shard index is corrupt: {e}") from e
        index = np.asarray(index, dtype=np.uint64).reshape(self.n_inner, 2)
        self._check_index(index, shard_nbytes)
        return index

    def _check_index(self, index: np.ndarray, shard_nbytes: int | None) -> None:
        offsets, nbytes = index[:, 0], index[:, 1]
        missing_offset, missing_size = offsets == MISSING, nbytes == MISSING
        if (missing_offset != missing_size).any():
            row = int(np.argmax(missing_offset != missing_size))
            raise CorruptChunkError(self._entry_problem(index, row, "is half missing"))
        present = ~missing_offset
        low = self.index_size if self.index_location == "start" else 0
        if shard_nbytes is None:
            high = MISSING
        else:
            high = shard_nbytes - (self.index_size if self.index_location == "end" else 0)
        with np.errstate(over="ignore"):
            ends = offsets + nbytes
        too_big = present & (nbytes > self.max_inner_nbytes)
        if too_big.any():
            problem = f"is larger than any encoded inner chunk ({self.max_inner_nbytes} bytes)"
            raise CorruptChunkError(self._entry_problem(index, int(np.argmax(too_big)), problem))
        bad = present & ((offsets < low) | (ends < offsets) | (ends > high))
        if bad.any():
            row = int(np.argmax(bad))
            where = "the shard" if shard_nbytes is None else f"the shard's {shard_nbytes} bytes"
            raise CorruptChunkError(self._entry_problem(index, row, f"lies outside {where}"))

    def _entry_problem(self, index: np.ndarray, row: int, problem: str) -> str:
        local = tuple(int(i) for i in np.unravel_index(row, self.chunks_per_shard))
        offset, nbytes = (int(v) for v in index[row])
        return (
            f"sharding_indexed: the shard index is corrupt: inner chunk {local} at offset "
            f"{offset}, {nbytes} bytes {problem}"
        )

    # -- whole shards -----------------------------------------------------------------------
    def encode_pieces(self, pieces: Sequence[Any]) -> bytes:
        """A shard from its encoded inner chunks in C order (None = missing).

        Examples
        --------
        >>> c = ShardingCodec({"chunk_shape": [1], "index_codecs": ["bytes"]},
        ...                   ChunkSpec((2,), np.dtype("u1")))
        >>> c.encode_pieces([b"\\x05", None]).hex()
        '0500000000000000000100000000000000ffffffffffffffffffffffffffffffff'
        """
        index = np.full((self.n_inner, 2), MISSING, dtype=np.uint64)
        offset = self.index_size if self.index_location == "start" else 0
        body = []
        for row, piece in enumerate(pieces):
            if piece is None:
                continue
            n = memoryview(piece).nbytes
            index[row] = (offset, n)
            offset += n
            body.append(piece)
        encoded = self.index_pipeline.encode(index.reshape(*self.chunks_per_shard, 2))
        parts = [encoded, *body] if self.index_location == "start" else [*body, encoded]
        return b"".join(parts)

    def is_fill(self, chunk: np.ndarray) -> bool:
        """True when every element of ``chunk`` is the fill value (NaN equals NaN)."""
        fill = self.fill
        first = chunk[(0,) * chunk.ndim] if chunk.ndim else chunk[()]
        if self.dtype.kind in "fc" and np.isnan(fill):
            return bool(np.isnan(first)) and bool(np.isnan(chunk).all())
        return bool(first == fill) and bool((chunk == fill).all())

    def encode(self, chunk: np.ndarray) -> bytes:
        """Encode a whole shard, leaving out inner chunks equal to the fill value."""
        shard = np.asarray(chunk, dtype=self.dtype)
        pieces = []
        for local in self.inner_coords():
            view = shard[self.region(local)]
            pieces.append(None if self.is_fill(view) else self.inner.encode(view))
        return self.encode_pieces(pieces)

    def decode(self, data: Any) -> np.ndarray:
        out = np.empty(self.shard_shape, self.dtype)
        self.decode_into(data, out)
        return out

    def decode_into(self, data: Any, out: np.ndarray) -> None:
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        index = self.decode_index(self.index_bytes(view), len(view))
        for row, local in enumerate(self.inner_coords()):
            target = out[self.region(local)]
            offset, nbytes = (int(v) for v in index[row])
            if offset == MISSING:
                target[...] = self.fill
                continue
            try:
                self.inner.decode(view[offset : offset + nbytes], out=target)
            except CodecError as e:
                raise CorruptChunkError(f"sharding_indexed: inner chunk {local}: {e}") from e

    def __repr__(self) -> str:
        return (
            f"ShardingCodec(chunk_shape={self.inner_shape}, inner={self.inner!r}, "
            f"index_location={self.index_location!r})"
        )


def coalesce_ranges(
    ranges: Sequence[tuple[int, int]], gap: int
) -> list[tuple[int, int, list[int]]]:
    """Merge byte ranges ``[start, end)`` whose gap is at most ``gap`` bytes.

    Returns ``(start, end, members)`` requests in offset order; ``members``
    are the positions (in ``ranges``) of the ranges each request serves.

    Examples
    --------
    >>> coalesce_ranges([(100, 200), (0, 50), (60, 90), (5000, 5100)], gap=64)
    [(0, 200, [1, 2, 0]), (5000, 5100, [3])]
    """
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    merged: list[tuple[int, int, list[int]]] = []
    for i in order:
        start, end = ranges[i]
        if merged and start - merged[-1][1] <= gap:
            s, e, members = merged[-1]
            members.append(i)
            merged[-1] = (s, max(e, end), members)
        else:
            merged.append((start, end, [i]))
    return merged


def wrap_in_sharding(
    codecs: Sequence[Mapping[str, Any]],
    *,
    inner_chunks: Sequence[int],
    shards: Sequence[int] | int,
    index_location: str = "end",
) -> tuple[list[dict[str, Any]], tuple[int, ...]]:
    """Put a v3 ``codecs`` list inside a ``sharding_indexed`` codec for ``create(shards=)``.

    Returns the new codecs list and the shard shape (the array's chunk grid).

    Raises
    ------
    MetadataError
        When the shard shape does not match the inner chunk shape, naming both.

    Examples
    --------
    >>> codecs, shards = wrap_in_sharding([{"name": "bytes"}], inner_chunks=(2, 2), shards=(4, 8))
    >>> shards, codecs[0]["configuration"]["chunk_shape"]
    ((4, 8), [2, 2])
    """
    inner = tuple(int(c) for c in inner_chunks)
    shape = (shards,) * len(inner) if isinstance(shards, int | np.integer) else tuple(shards)
    if any(isinstance(c, Mapping) and c.get("name") == "sharding_indexed" for c in codecs):
        raise MetadataError(
            "pass either shards= or a 'sharding_indexed' codec in codecs=, not both"
        )
    if len(shape) != len(inner) or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise MetadataError(
            f"shards {shape!r} must be {len(inner)} positive integers (one per dimension)"
        )
    shape = tuple(int(s) for s in shape)
    if any(s % c for s, c in zip(shape, inner, strict=True)):
        raise MetadataError(
            f"shards {list(shape)} must be a multiple of the inner chunk shape (chunks=) "
            f"{list(inner)} along every dimension"
        )
    config = {
        "chunk_shape": list(inner),
        "codecs": [dict(c) for c in codecs],
        "index_codecs": [dict(c) for c in DEFAULT_INDEX_CODECS],
        "index_location": index_location,
    }
    return [{"name": "sharding_indexed", "configuration": config}], shape


def _sharding_factory(config: Mapping[str, Any], spec: ChunkSpec | None) -> ShardingCodec:
    return ShardingCodec(config, spec)


register_codec("sharding_indexed", "array_to_bytes", _sharding_factory)
