"""numcodecs codecs as pipeline stages, with bounded and checked decoding.

Every compressor and filter is numcodecs' own; this module only wraps them so
that decoding never returns garbage and never allocates without bound:

- zstd, blosc and lz4 record the decoded size in their frame or header; it is
  checked against the size the pipeline expects *before* decoding, and the
  codec then decodes into a buffer of exactly that size.
- gzip, zlib, bz2 and lzma are decoded with the standard library's incremental
  decompressors and a ``max_length`` bound (the bytes are numcodecs' own).
- anything else is decoded by numcodecs and its output size checked.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable, Mapping, Sequence
from math import ceil, prod
from typing import Any

import numcodecs
import numpy as np
from numcodecs.abc import Codec

from zarrflow.codecs import zstd_fast
from zarrflow.codecs.registry import (
    ArrayArrayCodec,
    ArrayBytesCodec,
    BytesBytesCodec,
    ChunkSpec,
    CodecKind,
)
from zarrflow.errors import CodecError, CorruptChunkError, UnknownCodecError

__all__ = [
    "NumcodecsArrayBytesCodec",
    "NumcodecsArrayCodec",
    "NumcodecsBytesCodec",
    "filter_encoded_spec",
    "get_numcodec",
    "numcodecs_kind",
]

_ARRAY_TO_ARRAY = frozenset(
    {"delta", "fixedscaleoffset", "quantize", "bitround", "packbits", "astype", "categorize"}
)
_ARRAY_TO_BYTES = frozenset({"pcodec", "zfpy"})
_CHECKSUMS = frozenset({"crc32", "crc32c", "adler32", "fletcher32", "jenkins_lookup3"})
_LZMA_MEMLIMIT = 1 << 30  # decoder memory (dictionary) bound for xz/lzma-alone streams


def numcodecs_kind(codec_id: str) -> CodecKind:
    """The v3 kind of a numcodecs codec id (unlisted ids are bytes -> bytes).

    Examples
    --------
    >>> numcodecs_kind("delta"), numcodecs_kind("zstd")
    ('array_to_array', 'bytes_to_bytes')
    """
    if codec_id in _ARRAY_TO_ARRAY:
        return "array_to_array"
    if codec_id in _ARRAY_TO_BYTES:
        return "array_to_bytes"
    return "bytes_to_bytes"


def get_numcodec(config: Mapping[str, Any]) -> Codec:
    """Build a numcodecs codec from its config, with zarrflow's errors.

    Examples
    --------
    >>> get_numcodec({"id": "zstd", "level": 1})
    Zstd(level=1)
    """
    try:
        return numcodecs.get_codec(dict(config))
    except numcodecs.errors.UnknownCodecError as e:
        raise UnknownCodecError(f"numcodecs has no codec {config.get('id')!r}") from e
    except Exception as e:
        raise CodecError(f"invalid numcodecs codec config {dict(config)!r}: {e}") from e


def filter_encoded_spec(cid: str, config: Mapping[str, Any], spec: ChunkSpec) -> ChunkSpec | None:
    """What a numcodecs filter turns an array of ``spec`` into, when known.

    Parameters
    ----------
    cid, config
        The filter's codec id and configuration.
    spec
        The shape and dtype of the array going in.

    Examples
    --------
    >>> filter_encoded_spec("astype", {"encode_dtype": "i2"}, ChunkSpec((4,), np.dtype("f8")))
    ChunkSpec(shape=(4,), dtype=dtype('int16'))
    """
    if cid in ("delta", "fixedscaleoffset", "quantize", "categorize"):
        return ChunkSpec(spec.shape, np.dtype(config.get("astype") or config["dtype"]))
    if cid == "astype":
        return ChunkSpec(spec.shape, np.dtype(config["encode_dtype"]))
    if cid == "bitround":
        return spec
    if cid == "packbits":
        return ChunkSpec((1 + ceil(prod(spec.shape) / 8),), np.dtype("u1"))
    if cid == "shuffle":
        return ChunkSpec((spec.nbytes,), np.dtype("u1"))
    return None  # unknown: later stages see raw bytes of unknown length


def _conform(arr: Any, spec: ChunkSpec | None, what: str, error: type[CodecError]) -> np.ndarray:
    """Reinterpret a numcodecs result as an array of ``spec`` (byte-exact)."""
    arr = np.asarray(arr)
    if spec is None:
        return arr.reshape(-1)
    if arr.nbytes != spec.nbytes:
        raise error(f"{what}: expected {spec.nbytes} bytes, got {arr.nbytes}")
    if arr.dtype != spec.dtype:
        if arr.dtype.hasobject or spec.dtype.hasobject:
            raise error(f"{what}: expected dtype {spec.dtype}, got {arr.dtype}")
        arr = np.ascontiguousarray(arr).reshape(-1).view(spec.dtype)
    return arr.reshape(spec.shape)


class NumcodecsArrayCodec(ArrayArrayCodec):
    """A numcodecs filter (delta, fixedscaleoffset, astype, ...) as array -> array.

    Examples
    --------
    >>> s = NumcodecsArrayCodec(get_numcodec({"id": "delta", "dtype": "<i4"}),
    ...                         ChunkSpec((2, 2), np.dtype("<i4")))
    >>> s.decode(s.encode(np.arange(4, dtype="<i4").reshape(2, 2))).tolist()
    [[0, 1], [2, 3]]
    """

    def __init__(self, codec: Codec, spec: ChunkSpec | None, name: str | None = None) -> None:
        self.codec = codec
        self.name = name or f"numcodecs.{codec.codec_id}"
        self.spec = spec
        config = codec.get_config()
        self.encoded_spec = (
            None if spec is None else filter_encoded_spec(codec.codec_id, config, spec)
        )

    def encode(self, chunk: np.ndarray) -> np.ndarray:
        try:
            encoded = self.codec.encode(np.ascontiguousarray(chunk))
        except Exception as e:
            raise CodecError(f"{self.name} failed to encode: {e}") from e
        return _conform(encoded, self.encoded_spec, f"{self.name} encode", CodecError)

    def decode(self, chunk: np.ndarray) -> np.ndarray:
        decoded = self.codec.decode(chunk)
        return _conform(decoded, self.spec, f"{self.name} decode", CorruptChunkError)

    def __repr__(self) -> str:
        return f"NumcodecsArrayCodec({self.codec!r})"


class NumcodecsArrayBytesCodec(ArrayBytesCodec):
    """A numcodecs array -> bytes codec (pcodec, zfpy) as the array -> bytes stage."""

    encoded_size = None

    def __init__(self, codec: Codec, spec: ChunkSpec, name: str | None = None) -> None:
        self.codec = codec
        self.name = name or f"numcodecs.{codec.codec_id}"
        self.spec = spec

    def encode(self, chunk: np.ndarray) -> Any:
        try:
            return self.codec.encode(np.ascontiguousarray(chunk))
        except Exception as e:
            raise CodecError(f"{self.name} failed to encode: {e}") from e

    def decode(self, data: Any) -> np.ndarray:
        return _conform(self.codec.decode(data), self.spec, self.name, CorruptChunkError)


# -- declared decoded sizes (zstd frame header, blosc header, lz4 prefix) ---------------------

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _zstd_fcs_table() -> tuple[tuple[int, int], ...]:
    """(offset, length) of the Frame_Content_Size field for each header descriptor byte."""
    table = []
    for fhd in range(256):
        fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
        offset = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
        table.append((offset, (single, 2, 4, 8)[fcs_flag]))
    return tuple(table)


_ZSTD_FCS = _zstd_fcs_table()


def _zstd_declared(data: Any) -> int | None:
    """The content size a zstd frame declares, or None when it declares none."""
    if len(data) < 6 or data[:4] != _ZSTD_MAGIC:
        raise CorruptChunkError("zstd: not a zstd frame (bad magic number or too short)")
    offset, length = _ZSTD_FCS[data[4]]
    if length == 0:
        return None
    if len(data) < offset + length:
        raise CorruptChunkError("zstd: truncated frame header")
    size = int.from_bytes(data[offset : offset + length], "little")
    return size + 256 if length == 2 else size


def _blosc_declared(data: Any) -> int:
    """The decoded size a blosc header declares (after checking it is all there)."""
    if len(data) < 16:
        raise CorruptChunkError(f"blosc: expected a 16-byte header, got {len(data)} bytes")
    cbytes = int.from_bytes(data[12:16], "little")
    if cbytes > len(data):
        raise CorruptChunkError(f"blosc: header says {cbytes} compressed bytes, got {len(data)}")
    return int.from_bytes(data[4:8], "little")


def _lz4_declared(data: Any) -> int:
    if len(data) < 4:
        raise CorruptChunkError(f"lz4: expected a 4-byte size prefix, got {len(data)} bytes")
    return int.from_bytes(data[:4], "little")


_DECLARED: dict[str, Callable[[Any], int | None]] = {
    "zstd": _zstd_declared,
    "blosc": _blosc_declared,
    "lz4": _lz4_declared,
}


# -- stdlib streaming decoders with a max_length bound -----------------------------------------


def _gzip_decompressor(codec: Codec) -> Any:
    return zlib.decompressobj(31)


def _zlib_decompressor(codec: Codec) -> Any:
    return zlib.decompressobj()


def _bz2_decompressor(codec: Codec) -> Any:
    return bz2.BZ2Decompressor()


def _lzma_decompressor(codec: Codec) -> Any:
    if codec.format == lzma.FORMAT_RAW:
        return lzma.LZMADecompressor(format=codec.format, filters=codec.filters)
    return lzma.LZMADecompressor(format=codec.format, memlimit=_LZMA_MEMLIMIT)


# codec id -> (make a decompressor from the codec, whether concatenated streams are read)
_STREAMS: dict[str, tuple[Callable[[Codec], Any], bool]] = {
    "gzip": (_gzip_decompressor, True),
    "zlib": (_zlib_decompressor, False),
    "bz2": (_bz2_decompressor, True),
    "lzma": (_lzma_decompressor, True),
}


def _stream_decode(make: Callable[[], Any], multi: bool, data: Any, limit: int, name: str) -> bytes:
    """Decompress stream by stream, stopping as soon as output would pass ``limit``."""
    pieces: list[bytes] = []
    total = 0
    rest = data
    while True:
        d = make()
        piece = d.decompress(rest, limit + 1 - total)
        pieces.append(piece)
        total += len(piece)
        if total > limit:
            raise CorruptChunkError(f"{name}: decodes to more than {limit} bytes")
        if not d.eof:
            raise CorruptChunkError(f"{name}: truncated stream (ended after {total} bytes)")
        rest = d.unused_data.lstrip(b"\0") if name == "gzip" else d.unused_data
        if not (multi and rest):
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _nbytes(buf: Any) -> int:
    return buf.nbytes if isinstance(buf, np.ndarray) else memoryview(buf).nbytes


#: below this decoded size the reused-context zstd path wins (a fresh context costs
#: more than decoding a small chunk); above it, numcodecs decodes straight into
#: ``out`` without the reused path's extra copy of the chunk
_FAST_ZSTD_LIMIT = 256 * 1024


class NumcodecsBytesCodec(BytesBytesCodec):
    """A numcodecs compressor or checksum as a bounded bytes -> bytes stage.

    Examples
    --------
    >>> s = NumcodecsBytesCodec(get_numcodec({"id": "zstd", "level": 1}))
    >>> out = np.empty(4, "u1")
    >>> s.decode_into(s.encode(b"abcd"), out)
    >>> out.tobytes()
    b'abcd'
    """

    def __init__(self, codec: Codec, name: str | None = None) -> None:
        cid = codec.codec_id
        self.codec = codec
        self.name = name or cid
        self._declared = _DECLARED.get(cid)
        self._stream = _STREAMS.get(cid)
        self.can_decode_into = self._declared is not None
        self._grows_by = 0 if cid == "shuffle" else 4 if cid in _CHECKSUMS else None
        self._fast = None
        if cid == "zstd" and zstd_fast.available():
            config = codec.get_config()
            level, checksum = config.get("level", 0), config.get("checksum", False)
            if isinstance(level, int) and isinstance(checksum, bool):  # else numcodecs decides
                self._fast = zstd_fast.FastZstd(level, checksum)

    def encoded_size(self, decoded_size: int) -> int | None:
        return None if self._grows_by is None else decoded_size + self._grows_by

    def encode(self, data: Any) -> Any:
        try:
            if self._fast is not None:
                return self._fast.compress(data)
            return self.codec.encode(data)
        except Exception as e:
            raise CodecError(f"{self.name} failed to encode: {e}") from e

    def decode(self, data: Any, expected: int | None, limit: int) -> Any:
        if self._declared is not None:
            size = expected
            if size is None:
                size = self._declared(data)
                if size is None:
                    raise CorruptChunkError(
                        f"{self.name}: the frame does not declare its decoded size and the "
                        "pipeline cannot bound it; refusing an unbounded decode"
                    )
                if size > limit:
                    raise CorruptChunkError(
                        f"{self.name}: chunk declares {size} decoded bytes, more than {limit}"
                    )
            out = np.empty(size, np.uint8)
            self.decode_into(data, out)
            return out
        if self._stream is not None:
            make, multi = self._stream
            codec = self.codec
            bound = limit if expected is None else expected
            result = _stream_decode(lambda: make(codec), multi, data, bound, self.name)
        else:
            result = self.codec.decode(data)
        got = _nbytes(result)
        if expected is not None and got != expected:
            raise CorruptChunkError(
                f"{self.name}: expected {expected} bytes after decoding, got {got}"
            )
        if got > limit:
            raise CorruptChunkError(f"{self.name}: decoded {got} bytes, more than {limit}")
        return result

    def decode_into(self, data: Any, out: np.ndarray) -> None:
        declared = self._declared(data)  # type: ignore[misc]
        if declared is not None and declared != out.nbytes:
            raise CorruptChunkError(
                f"{self.name}: expected {out.nbytes} bytes after decoding, "
                f"the chunk declares {declared}"
            )
        try:
            if self._fast is not None and out.nbytes < _FAST_ZSTD_LIMIT:
                self._fast.decompress_into(data, out)
            else:
                self.codec.decode(data, out=out)
        except Exception as e:
            raise CorruptChunkError(
                f"{self.name}: cannot decode {len(data)} bytes into the expected {out.nbytes}: {e}"
            ) from e

    def batch_decoder(self, decoded_size: int) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
        """Batches of small zstd chunks in one call (see :meth:`FastZstd.decompress_many`)."""
        fast = self._fast
        if fast is None or not 0 < decoded_size < _FAST_ZSTD_LIMIT:
            return None
        if not zstd_fast.batches_available():  # pragma: no cover - an older python-zstandard
            return None
        name = self.name

        def decode_many(values: Sequence[Any]) -> Sequence[Any]:
            try:
                return fast.decompress_many(values, decoded_size)
            except Exception as e:
                raise CorruptChunkError(f"{name}: {e} (expected {decoded_size} bytes each)") from e

        return decode_many

    def __repr__(self) -> str:
        return f"NumcodecsBytesCodec({self.codec!r})"
