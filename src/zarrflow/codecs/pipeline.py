"""CodecPipeline: encode and decode one chunk, for Zarr v2 and v3 alike.

Both formats become the same chain of stages: array -> array stages, one
array -> bytes stage, bytes -> bytes stages (v2's order ``F`` is a transpose,
its filters are numcodecs array -> array stages, its chunk bytes are the
``bytes`` codec in the declared byte order, its compressor is the one
bytes -> bytes stage). Everything that does not depend on the chunk is worked
out in the constructor, including the exact decoded size at every step, so
decoding can be bounded and checked and the common case (one compressor that
can decode into a buffer, no filters, no byte swap) is one header check and
one numcodecs call straight into the caller's array.

Variable-length data types (strings, bytes) have no fixed chunk size: their
array -> bytes stage (``vlen-utf8``, ``vlen-bytes``; in v2 the first filter)
says so, the pipeline's :attr:`CodecPipeline.fixed_size` is False, and a
decode produces a new object array of the chunk shape that the caller places
(or that is copied into ``out``). The fixed-size paths above never see them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from zarrflow.codecs.numcodecs_stages import NumcodecsArrayCodec, NumcodecsBytesCodec, get_numcodec
from zarrflow.codecs.registry import (
    ArrayArrayCodec,
    ArrayBytesCodec,
    BytesBytesCodec,
    ChunkSpec,
    CodecEntry,
    lookup_codec,
)
from zarrflow.codecs.v3 import BytesCodec, TransposeCodec, byte_view
from zarrflow.codecs.vlen import vlen_codec_from_config
from zarrflow.errors import CodecError, CorruptChunkError

__all__ = ["CodecPipeline", "parse_codecs_v3"]

_KIND_RANK = {"array_to_array": 0, "array_to_bytes": 1, "bytes_to_bytes": 2}
_KIND_WORDS = {
    "array_to_array": "array -> array",
    "array_to_bytes": "array -> bytes",
    "bytes_to_bytes": "bytes -> bytes",
}


def _unknown_size_limit(chunk_nbytes: int) -> int:
    """The decode bound where a filter makes the exact size unknowable."""
    return max(16 * chunk_nbytes, 1 << 24)


def _variable_size_limit(n_elements: int) -> int:
    """The decode bound for a chunk of variable-length elements (about 4 KiB each)."""
    return max(n_elements << 12, 1 << 28)


def _grown_bound(size: int) -> int:
    """An upper bound on what a compressor may produce from ``size`` bytes."""
    return size + size // 8 + 4096


def _codec_name_and_config(codec: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(codec, str):
        return codec, {}
    if isinstance(codec, Mapping) and isinstance(codec.get("name"), str):
        config = codec.get("configuration") or {}
        if not isinstance(config, Mapping):
            raise CodecError(f"codec {codec['name']!r}: configuration must be an object")
        return codec["name"], dict(config)
    raise CodecError(
        f"a v3 codec must be a name or {{'name': ..., 'configuration': ...}}, got {codec!r}"
    )


def parse_codecs_v3(codecs: Sequence[Any]) -> list[tuple[CodecEntry, dict[str, Any]]]:
    """Look up each v3 codec and check their order: array->array*, one array->bytes, bytes->bytes*.

    Raises
    ------
    UnknownCodecError
        For a name no registered codec or numcodecs knows.
    CodecError
        For a malformed entry or a wrong order, naming the codecs.

    Examples
    --------
    >>> [e.kind for e, _ in parse_codecs_v3(["transpose", "bytes", "zstd"])]
    ['array_to_array', 'array_to_bytes', 'bytes_to_bytes']
    """
    if isinstance(codecs, str | Mapping):
        raise CodecError(f"codecs must be a list of codecs, got {codecs!r}")
    parsed = []
    for codec in codecs:
        name, config = _codec_name_and_config(codec)
        parsed.append((lookup_codec(name), config))
    names = [entry.name for entry, _ in parsed]
    array_bytes = [entry.name for entry, _ in parsed if entry.kind == "array_to_bytes"]
    if len(array_bytes) != 1:
        found = ", ".join(array_bytes) if array_bytes else "none"
        raise CodecError(
            f"codecs {names} must contain exactly one array -> bytes codec "
            f"(e.g. 'bytes'); found {found}"
        )
    for (before, _), (after, _) in pairwise(parsed):
        if _KIND_RANK[before.kind] > _KIND_RANK[after.kind] or (
            before.kind == after.kind == "array_to_bytes"
        ):
            raise CodecError(
                f"codecs {names}: {_KIND_WORDS[after.kind]} codec {after.name!r} cannot follow "
                f"{_KIND_WORDS[before.kind]} codec {before.name!r} (the order is array -> array, "
                "then one array -> bytes, then bytes -> bytes)"
            )
    return parsed


class CodecPipeline:
    """Encode and decode the chunks of one array.

    Build it with :meth:`from_metadata`, :meth:`from_v2` or :meth:`from_v3`.
    Instances are immutable, thread-safe and picklable.

    Examples
    --------
    >>> p = CodecPipeline.from_v3(
    ...     [{"name": "bytes", "configuration": {"endian": "little"}},
    ...      {"name": "zstd", "configuration": {"level": 1, "checksum": False}}],
    ...     np.dtype("int32"), (4, 4))
    >>> chunk = np.arange(16, dtype="int32").reshape(4, 4)
    >>> np.array_equal(p.decode(p.encode(chunk)), chunk)
    True
    """

    def __init__(
        self,
        chunk_shape: Sequence[int],
        dtype: Any,
        array_to_array: Sequence[ArrayArrayCodec],
        array_to_bytes: ArrayBytesCodec,
        bytes_to_bytes: Sequence[BytesBytesCodec],
    ) -> None:
        self.chunk_shape = tuple(int(n) for n in chunk_shape)
        self.dtype = np.dtype(dtype)
        self.array_to_array = tuple(s for s in array_to_array if not getattr(s, "is_identity", 0))
        self.array_to_bytes = array_to_bytes
        self.bytes_to_bytes = tuple(bytes_to_bytes)
        #: False for variable-length types: chunks decode to new object arrays
        self.fixed_size = bool(array_to_bytes.fixed_size)
        self._plan_decode()
        self._plan_encode()

    def _plan_decode(self) -> None:
        """Exact sizes (or bounds) at every bytes step, and the direct decode stage."""
        nbytes = ChunkSpec(self.chunk_shape, self.dtype).nbytes
        size = self.array_to_bytes.encoded_size
        if not self.fixed_size:
            bound = _variable_size_limit(math.prod(self.chunk_shape))
        else:
            bound = size if size is not None else _unknown_size_limit(nbytes)
        steps = []
        for stage in self.bytes_to_bytes:
            steps.append((stage, size, bound))
            size = None if size is None else stage.encoded_size(size)
            bound = size if size is not None else _grown_bound(bound)
        ab = self.array_to_bytes
        first = self.bytes_to_bytes[0] if self.bytes_to_bytes else None
        direct = (
            not self.array_to_array
            and isinstance(ab, BytesCodec)
            and ab.is_plain
            and ab.spec.dtype == self.dtype
            and first is not None
            and first.can_decode_into
        )
        self._direct = first.decode_into if direct else None  # type: ignore[union-attr]
        self._bb_steps = tuple(reversed(steps[1:] if direct else steps))
        single = direct and len(self.bytes_to_bytes) == 1
        self._batch = first.batch_decoder(nbytes) if single else None  # type: ignore[union-attr]

    def _plan_encode(self) -> None:
        ab = self.array_to_bytes
        plain = not self.array_to_array and isinstance(ab, BytesCodec) and ab.is_plain
        single = plain and len(self.bytes_to_bytes) == 1
        self._direct_encode = self.bytes_to_bytes[0].encode if single else None

    # -- constructors -----------------------------------------------------------------------

    @classmethod
    def from_metadata(cls, meta: Any) -> CodecPipeline:
        """The pipeline for an array's metadata (v2 or v3, duck-typed).

        Examples
        --------
        >>> from types import SimpleNamespace
        >>> meta = SimpleNamespace(zarr_format=2, chunks=(8,), dtype=np.dtype("<f8"),
        ...     order="C", fill_value=0.0, filters=None,
        ...     compressor={"id": "zstd", "level": 3, "checksum": False})
        >>> CodecPipeline.from_metadata(meta)
        CodecPipeline(chunk_shape=(8,), dtype=float64, codecs=[bytes, zstd])
        """
        if meta.zarr_format == 2:
            return cls.from_v2(meta.compressor, meta.filters, meta.dtype, meta.order, meta.chunks)
        if meta.zarr_format == 3:
            return cls.from_v3(meta.codecs, meta.dtype, meta.chunks)
        raise CodecError(f"zarr_format must be 2 or 3, got {meta.zarr_format!r}")

    @classmethod
    def from_v2(
        cls,
        compressor: Mapping[str, Any] | None,
        filters: Sequence[Mapping[str, Any]] | None,
        dtype: Any,
        order: str,
        chunk_shape: Sequence[int],
    ) -> CodecPipeline:
        """The pipeline for a Zarr v2 array (numcodecs configs, ``order`` "C" or "F").

        Examples
        --------
        >>> p = CodecPipeline.from_v2(None, None, ">u2", "F", (2, 2))
        >>> p.encode(np.array([[1, 2], [3, 4]], ">u2")).hex()
        '0001000300020004'
        """
        spec = ChunkSpec(tuple(int(n) for n in chunk_shape), np.dtype(dtype))
        aa: list[ArrayArrayCodec] = []
        if order == "F":
            aa.append(TransposeCodec(tuple(reversed(range(len(spec.shape)))), spec))
        elif order != "C":
            raise CodecError(f"order must be 'C' or 'F', got {order!r}")
        current: ChunkSpec | None = aa[-1].encoded_spec if aa else spec
        filters = list(filters or ())
        for config in filters:
            if not isinstance(config, Mapping) or not isinstance(config.get("id"), str):
                raise CodecError(f"a v2 filter must be a numcodecs config with an 'id': {config!r}")
        if compressor is not None and not isinstance(compressor, Mapping):
            raise CodecError(f"a v2 compressor must be a numcodecs config or None: {compressor!r}")
        bb = [NumcodecsBytesCodec(get_numcodec(compressor))] if compressor else []
        if spec.dtype.kind == "O":  # the first filter is the object codec: array -> bytes
            if not filters:
                raise CodecError("an object array needs an object codec (e.g. vlen-utf8) filter")
            ab = vlen_codec_from_config(filters[0], current)  # type: ignore[arg-type]
            after = [NumcodecsBytesCodec(get_numcodec(f)) for f in filters[1:]]
            return cls(spec.shape, spec.dtype, aa, ab, [*after, *bb])
        for config in filters:
            codec = get_numcodec(config)
            aa.append(NumcodecsArrayCodec(codec, current, codec.codec_id))
            current = aa[-1].encoded_spec
        return cls(spec.shape, spec.dtype, aa, BytesCodec(current, None), bb)

    @classmethod
    def from_v3(
        cls, codecs: Sequence[Any], dtype: Any, chunk_shape: Sequence[int]
    ) -> CodecPipeline:
        """The pipeline for a Zarr v3 ``codecs`` list (dicts or bare names).

        Examples
        --------
        >>> p = CodecPipeline.from_v3(["bytes", "crc32c"], np.dtype("u1"), (3,))
        >>> p.encode(np.array([1, 2, 3], "u1")).hex()
        '0102031ef230f1'
        """
        spec: ChunkSpec | None = ChunkSpec(tuple(int(n) for n in chunk_shape), np.dtype(dtype))
        aa, ab, bb = [], None, []
        for entry, config in parse_codecs_v3(codecs):
            if entry.kind == "array_to_array":
                stage = entry.factory(config, spec)
                aa.append(stage)
                spec = stage.encoded_spec  # type: ignore[union-attr]
            elif entry.kind == "array_to_bytes":
                ab = entry.factory(config, spec)
            else:
                bb.append(entry.factory(config, spec))
        return cls(chunk_shape, dtype, aa, ab, bb)  # type: ignore[arg-type]

    # -- the per-chunk path -----------------------------------------------------------------

    def encode(self, chunk: np.ndarray) -> bytes:
        """Encode one chunk-shaped array (any memory layout) to the stored bytes.

        Examples
        --------
        >>> p = CodecPipeline.from_v2({"id": "zlib", "level": 1}, None, "u1", "C", (4,))
        >>> p.decode(p.encode(np.arange(4, dtype="u1"))).tolist()
        [0, 1, 2, 3]
        """
        encode = self._direct_encode
        if (
            encode is not None
            and type(chunk) is np.ndarray
            and chunk.dtype == self.dtype
            and chunk.shape == self.chunk_shape
            and chunk.flags.c_contiguous
        ):
            data = encode(chunk)
            return data if type(data) is bytes else bytes(data)
        return self._encode_general(chunk)

    def _encode_general(self, chunk: Any) -> bytes:
        arr = np.asarray(chunk)
        if arr.shape != self.chunk_shape:
            raise CodecError(f"chunk has shape {arr.shape}, expected {self.chunk_shape}")
        try:
            if arr.dtype != self.dtype:
                arr = arr.astype(self.dtype)
            for stage in self.array_to_array:
                arr = stage.encode(arr)
            data = self.array_to_bytes.encode(arr)
            for stage in self.bytes_to_bytes:
                data = stage.encode(data)
        except CodecError:
            raise
        except Exception as e:
            raise CodecError(f"{self!r} failed to encode a chunk: {e}") from e
        if type(data) is bytes:
            return data
        return data.tobytes() if isinstance(data, np.ndarray) else bytes(data)

    def decode(self, data: bytes | memoryview, out: np.ndarray | None = None) -> np.ndarray:
        """Decode stored bytes to a chunk-shaped array of the metadata dtype.

        With ``out`` (chunk-shaped, any layout), the chunk is written into it
        and ``out`` is returned; a C-contiguous ``out`` of the right dtype is
        decompressed into directly when no array -> array stage intervenes.

        Raises
        ------
        CorruptChunkError
            Truncated, corrupt or wrongly sized data, saying what was expected.

        Examples
        --------
        >>> p = CodecPipeline.from_v2({"id": "lz4", "acceleration": 1}, None, "u1", "C", (2, 2))
        >>> out = np.zeros((4, 4), "u1")
        >>> p.decode(p.encode(np.ones((2, 2), "u1")), out=out[::2, ::2]).tolist()
        [[1, 1], [1, 1]]
        """
        direct = self._direct
        if direct is not None and not self._bb_steps:
            if type(data) is not bytes:
                data = byte_view(data)
            if out is None:
                out = np.empty(self.chunk_shape, self.dtype)
                direct(data, out)
                return out
            flags = out.flags
            if (
                flags.c_contiguous
                and flags.writeable
                and out.dtype == self.dtype
                and out.shape == self.chunk_shape
            ):
                direct(data, out)
                return out
        return self._decode_general(data, out)

    @property
    def decodes_in_batches(self) -> bool:
        """True when :meth:`decode_many` is faster than one :meth:`decode` per chunk."""
        return self._batch is not None

    def decode_many(self, values: Sequence[bytes | None]) -> list[np.ndarray | None]:
        """Decode a batch of stored chunks; a None (a chunk never written) stays None.

        When :attr:`decodes_in_batches`, the whole batch is one codec call
        (small zstd chunks: the GIL is released once, not once per chunk) and
        the arrays are read-only views of the codec's output. If any chunk
        cannot be decoded, :class:`~zarrflow.errors.CorruptChunkError` is raised
        without saying which: :meth:`decode` them one by one to find it.

        Examples
        --------
        >>> p = CodecPipeline.from_v2({"id": "zstd", "level": 1}, None, "u1", "C", (2,))
        >>> [None if c is None else c.tolist()
        ...  for c in p.decode_many([p.encode(np.array([1, 2], "u1")), None])]
        [[1, 2], None]
        """
        batch = self._batch
        if batch is None:
            return [None if v is None else self.decode(v) for v in values]
        present = [v for v in values if v is not None]
        decoded = batch(present) if present else ()
        if len(decoded) != len(present):  # pragma: no cover - a codec contract violation
            raise CorruptChunkError(f"{self!r}: {len(decoded)} chunks decoded of {len(present)}")
        dtype, shape, ndarray = self.dtype, self.chunk_shape, np.ndarray
        chunks = [ndarray(shape, dtype, b) for b in decoded]  # a view of each buffer
        if len(present) == len(values):
            return chunks  # type: ignore[return-value]
        it = iter(chunks)
        return [None if v is None else next(it) for v in values]

    def _decode_general(self, data: Any, out: np.ndarray | None) -> np.ndarray:
        if out is not None and out.shape != self.chunk_shape:
            raise CodecError(
                f"out has shape {out.shape}, expected the chunk shape {self.chunk_shape}"
            )
        view = byte_view(data)
        try:
            arr = self._decode_stages(view, out)
        except CorruptChunkError:
            raise
        except Exception as e:
            raise CorruptChunkError(f"{self!r} cannot decode the chunk: {e}") from e
        if arr is out:
            return out
        if out is not None:
            out[...] = arr
            return out
        if arr.dtype != self.dtype:
            return arr.astype(self.dtype, order="K")
        if not arr.flags.writeable or np.may_share_memory(arr, np.frombuffer(view, np.uint8)):
            return arr.copy(order="K")  # never hand out a view of the caller's bytes
        return arr

    def _decode_stages(self, data: Any, out: np.ndarray | None) -> np.ndarray:
        for stage, expected, limit in self._bb_steps:
            data = stage.decode(data, expected, limit)
        if self._direct is not None:
            usable = out is not None and out.flags.c_contiguous and out.flags.writeable
            target = (
                out
                if usable and out.dtype == self.dtype
                else np.empty(self.chunk_shape, self.dtype)
            )
            self._direct(data, target)
            return target
        if not self.array_to_array:
            if out is not None:
                self.array_to_bytes.decode_into(data, out)
                return out
            return self.array_to_bytes.decode(data)
        arr = self.array_to_bytes.decode(data)
        for stage in reversed(self.array_to_array):
            arr = stage.decode(arr)
        return arr

    def __repr__(self) -> str:
        names = [s.name for s in (*self.array_to_array, self.array_to_bytes, *self.bytes_to_bytes)]
        return (
            f"CodecPipeline(chunk_shape={self.chunk_shape}, dtype={self.dtype}, "
            f"codecs=[{', '.join(names)}])"
        )
