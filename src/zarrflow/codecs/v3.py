"""The Zarr v3 core codecs and the mapping between v3 codec names and numcodecs.

Core codecs: ``bytes`` (array -> bytes, with ``endian``), ``transpose``
(array -> array), ``crc32c`` (bytes -> bytes, a 4-byte little-endian CRC32C
appended), and ``blosc``, ``gzip``, ``zstd`` (bytes -> bytes, compressed by
numcodecs). Every other numcodecs codec is named ``numcodecs.<id>`` as
zarr-python 3 writes it, e.g. ``{"name": "numcodecs.delta", "configuration":
{"dtype": "<i4"}}``. Importing this module registers all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numcodecs
import numcodecs.blosc
import numpy as np

from zarrflow.codecs.numcodecs_stages import (
    NumcodecsArrayBytesCodec,
    NumcodecsArrayCodec,
    NumcodecsBytesCodec,
    get_numcodec,
    numcodecs_kind,
)
from zarrflow.codecs.registry import (
    ArrayArrayCodec,
    ArrayBytesCodec,
    BytesBytesCodec,
    ChunkSpec,
    CodecEntry,
    Stage,
    register_codec,
    register_namespace,
)
from zarrflow.errors import CodecError, CorruptChunkError, UnknownCodecError

__all__ = [
    "BLOSC_SHUFFLE",
    "BytesCodec",
    "Crc32cCodec",
    "TransposeCodec",
    "byte_view",
    "numcodecs_to_v3",
    "v3_to_numcodecs",
]

BLOSC_SHUFFLE = ("noshuffle", "shuffle", "bitshuffle")  # index = numcodecs' shuffle int
NUMCODECS_PREFIX = "numcodecs."


def byte_view(data: Any) -> memoryview:
    """A flat unsigned-byte view of any C-contiguous buffer.

    Parameters
    ----------
    data
        Bytes, a bytearray, a memoryview or a C-contiguous numpy array.

    Examples
    --------
    >>> import numpy as np
    >>> v = byte_view(np.ones((2, 2), "u2"))
    >>> v.format, v.nbytes
    ('B', 8)
    """
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class BytesCodec(ArrayBytesCodec):
    """The ``bytes`` codec: an array's elements in C order, with a byte order.

    ``endian=None`` keeps the dtype's own byte order (Zarr v2 chunks; 1-byte
    dtypes). ``spec=None`` means the input is raw bytes of unknown length.

    Examples
    --------
    >>> c = BytesCodec(ChunkSpec((2,), np.dtype("uint16")), "big")
    >>> bytes(c.encode(np.array([1, 2], "uint16")))
    b'\\x00\\x01\\x00\\x02'
    >>> c.decode(b"\\x00\\x01\\x00\\x02").tolist()
    [1, 2]
    """

    name = "bytes"

    def __init__(self, spec: ChunkSpec | None, endian: str | None = None) -> None:
        if endian not in (None, "little", "big"):
            raise CodecError(f"bytes codec: endian must be 'little' or 'big', got {endian!r}")
        self.spec = spec
        self.endian = endian
        if spec is None:
            self.wire_dtype, self.encoded_size = np.dtype("u1"), None
            return
        dtype = spec.dtype
        if dtype.kind == "O":
            raise CodecError(
                "the bytes codec stores fixed-size elements; a variable-length (string or "
                "bytes) array needs 'vlen-utf8' or 'vlen-bytes' as its array -> bytes codec"
            )
        if endian is not None and dtype.itemsize > 1 and dtype.byteorder != "|":
            dtype = dtype.newbyteorder("<" if endian == "little" else ">")
        self.wire_dtype = dtype
        self.encoded_size = spec.nbytes

    @property
    def is_plain(self) -> bool:
        """True when decoding is a plain reinterpretation of the bytes (no swap)."""
        return self.spec is not None and self.wire_dtype == self.spec.dtype

    def encode(self, chunk: np.ndarray) -> np.ndarray:
        if self.spec is None:
            return np.ascontiguousarray(chunk)
        return np.ascontiguousarray(chunk, dtype=self.wire_dtype)

    def decode(self, data: Any) -> np.ndarray:
        if self.spec is None:
            return np.frombuffer(data, np.uint8)
        got = memoryview(data).nbytes
        if got != self.encoded_size:
            raise CorruptChunkError(f"bytes: expected {self.encoded_size} bytes, got {got}")
        arr = np.frombuffer(data, self.wire_dtype).reshape(self.spec.shape)
        return arr if self.is_plain else arr.astype(self.spec.dtype)

    def __repr__(self) -> str:
        return f"BytesCodec(endian={self.endian!r})"


class TransposeCodec(ArrayArrayCodec):
    """The ``transpose`` codec: permute the axes (``order`` = new axis order).

    Examples
    --------
    >>> t = TransposeCodec((1, 0), ChunkSpec((2, 3), np.dtype("i1")))
    >>> t.encoded_spec.shape, t.decode(t.encode(np.zeros((2, 3)))).shape
    ((3, 2), (2, 3))
    """

    name = "transpose"

    def __init__(self, order: tuple[int, ...], spec: ChunkSpec) -> None:
        ndim = len(spec.shape)
        if sorted(order) != list(range(ndim)):
            raise CodecError(
                f"transpose: order {list(order)} is not a permutation of 0..{ndim - 1} "
                f"for chunks of shape {spec.shape}"
            )
        self.order = tuple(order)
        self.inverse = tuple(int(i) for i in np.argsort(order))
        self.is_identity = self.order == tuple(range(ndim))
        self.encoded_spec = ChunkSpec(tuple(spec.shape[i] for i in order), spec.dtype)

    def encode(self, chunk: np.ndarray) -> np.ndarray:
        return chunk.transpose(self.order)

    def decode(self, chunk: np.ndarray) -> np.ndarray:
        return chunk.transpose(self.inverse)

    def __repr__(self) -> str:
        return f"TransposeCodec(order={self.order})"


def _load_crc32c() -> Callable[[Any], int] | None:
    try:
        from crc32c import crc32c  # accepts any buffer: no copy of the payload

        return crc32c
    except ImportError:
        from numcodecs.checksum32 import crc32c_checksum  # google_crc32c, if installed

        if crc32c_checksum is None:
            return None
        return lambda data: crc32c_checksum(bytes(data))


_CRC32C = _load_crc32c()


class Crc32cCodec(BytesBytesCodec):
    """The ``crc32c`` codec: append a 4-byte little-endian CRC32C, verify it on decode.

    Examples
    --------
    >>> c = Crc32cCodec()
    >>> c.encode(b"123456789")[-4:].hex()
    '839206e3'
    >>> bytes(c.decode(c.encode(b"abc"), 3, 3))
    b'abc'
    """

    name = "crc32c"

    def __init__(self) -> None:
        if _CRC32C is None:
            raise CodecError("the crc32c codec needs the 'crc32c' or 'google-crc32c' package")

    def encoded_size(self, decoded_size: int) -> int:
        return decoded_size + 4

    def encode(self, data: Any) -> bytes:
        view = byte_view(data)
        return b"".join((view, _CRC32C(view).to_bytes(4, "little")))  # type: ignore[misc]

    def decode(self, data: Any, expected: int | None, limit: int) -> memoryview:
        view = byte_view(data)
        if len(view) < 4:
            raise CorruptChunkError(f"crc32c: expected at least 4 bytes, got {len(view)}")
        payload = view[:-4]
        stored = int.from_bytes(view[-4:], "little")
        computed = _CRC32C(payload)  # type: ignore[misc]
        if stored != computed:
            raise CorruptChunkError(
                f"crc32c: checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            )
        if expected is not None and len(payload) != expected:
            raise CorruptChunkError(
                f"crc32c: expected {expected} bytes after decoding, got {len(payload)}"
            )
        return payload

    def __repr__(self) -> str:
        return "Crc32cCodec()"


# -- v3 configuration <-> numcodecs configuration -----------------------------------------------


def _check_int(value: Any, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise CodecError(f"{what} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        raise CodecError(f"{what} must be in [{low}, {high}], got {value!r}")
    return int(value)


def _blosc_to_numcodecs(config: Mapping[str, Any], spec: ChunkSpec | None) -> dict[str, Any]:
    itemsize = spec.dtype.itemsize if spec is not None else 1
    cname = config.get("cname", "zstd")
    if cname not in numcodecs.blosc.list_compressors():
        known = ", ".join(numcodecs.blosc.list_compressors())
        raise CodecError(f"blosc: unknown cname {cname!r}; known: {known}")
    shuffle = config.get("shuffle", "shuffle" if itemsize > 1 else "bitshuffle")
    if shuffle in BLOSC_SHUFFLE:
        shuffle = BLOSC_SHUFFLE.index(shuffle)
    elif shuffle == -1:
        shuffle = 2 if itemsize == 1 else 1
    elif shuffle not in (0, 1, 2):
        raise CodecError(f"blosc: shuffle must be one of {BLOSC_SHUFFLE}, got {shuffle!r}")
    return {
        "id": "blosc",
        "cname": cname,
        "clevel": _check_int(config.get("clevel", 5), "blosc: clevel", 0, 9),
        "shuffle": shuffle,
        "blocksize": _check_int(config.get("blocksize", 0), "blosc: blocksize", 0),
        "typesize": _check_int(config.get("typesize", itemsize), "blosc: typesize", 1, 255),
    }


def v3_to_numcodecs(
    name: str, config: Mapping[str, Any], spec: ChunkSpec | None = None
) -> dict[str, Any]:
    """The numcodecs config for a v3 compressor (``blosc``, ``gzip``, ``zstd``, ``numcodecs.*``).

    Examples
    --------
    >>> v3_to_numcodecs("zstd", {"level": 3, "checksum": False})
    {'id': 'zstd', 'level': 3, 'checksum': False}
    """
    if name == "zstd":
        checksum = config.get("checksum", False)
        if not isinstance(checksum, bool):
            raise CodecError(f"zstd: checksum must be true or false, got {checksum!r}")
        level = _check_int(config.get("level", 0), "zstd: level", -131072, 22)
        return {"id": "zstd", "level": level, "checksum": checksum}
    if name == "gzip":
        return {"id": "gzip", "level": _check_int(config.get("level", 5), "gzip: level", 0, 9)}
    if name == "blosc":
        return _blosc_to_numcodecs(config, spec)
    if name.startswith(NUMCODECS_PREFIX):
        return {**config, "id": name[len(NUMCODECS_PREFIX) :]}
    raise UnknownCodecError(f"codec {name!r} has no numcodecs equivalent")


def numcodecs_to_v3(config: Mapping[str, Any], dtype: np.dtype) -> dict[str, Any]:
    """The v3 codec object for a numcodecs config; ``dtype`` is what ``bytes`` encodes.

    zstd, blosc and gzip map to the core v3 codecs; any other id becomes
    ``numcodecs.<id>``.

    Examples
    --------
    >>> numcodecs_to_v3({"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1,
    ...                  "blocksize": 0}, np.dtype("int32"))["configuration"]
    {'cname': 'lz4', 'clevel': 5, 'shuffle': 'shuffle', 'typesize': 4, 'blocksize': 0}
    """
    config = dict(config)
    cid = config.pop("id")
    if cid == "zstd":
        level, checksum = config.get("level", 0), config.get("checksum", False)
        return {"name": "zstd", "configuration": {"level": level, "checksum": checksum}}
    if cid == "gzip":
        return {"name": "gzip", "configuration": {"level": config.get("level", 1)}}
    if cid == "blosc":
        shuffle = config.get("shuffle", 1)
        if shuffle == -1:
            shuffle = 2 if dtype.itemsize == 1 else 1
        configuration = {
            "cname": config.get("cname", "lz4"),
            "clevel": config.get("clevel", 5),
            "shuffle": BLOSC_SHUFFLE[shuffle],
            "typesize": dtype.itemsize,
            "blocksize": config.get("blocksize", 0),
        }
        return {"name": "blosc", "configuration": configuration}
    return {"name": NUMCODECS_PREFIX + cid, "configuration": config}


# -- factories and registration ---------------------------------------------------------------


def _bytes_factory(config: Mapping[str, Any], spec: ChunkSpec | None) -> BytesCodec:
    endian = config.get("endian")
    if endian is None and spec is not None and spec.dtype.itemsize > 1:
        endian = "little"  # what zarr-python assumes when a multi-byte dtype omits it
    return BytesCodec(spec, endian)


def _transpose_factory(config: Mapping[str, Any], spec: ChunkSpec | None) -> TransposeCodec:
    if spec is None:
        raise CodecError("transpose: the input shape is unknown (after a size-changing filter)")
    order = config.get("order")
    ndim = len(spec.shape)
    if order == "C":
        order = range(ndim)
    elif order == "F":
        order = range(ndim - 1, -1, -1)
    elif not isinstance(order, list | tuple) or not all(isinstance(i, int) for i in order):
        raise CodecError(f"transpose: order must be a list of axes, got {order!r}")
    return TransposeCodec(tuple(order), spec)


def _compressor_factory(name: str) -> Callable[[Mapping[str, Any], ChunkSpec | None], Stage]:
    def factory(config: Mapping[str, Any], spec: ChunkSpec | None) -> Stage:
        return NumcodecsBytesCodec(get_numcodec(v3_to_numcodecs(name, config, spec)), name)

    return factory


def _fill_numcodecs_defaults(cid: str, config: dict[str, Any], spec: ChunkSpec | None) -> None:
    """Complete a config the way zarr-python 3 evolves it from the array's dtype."""
    if spec is None:
        return
    if cid in ("delta", "fixedscaleoffset", "quantize") and "dtype" not in config:
        config["dtype"] = spec.dtype.str
    elif cid == "astype" and "decode_dtype" not in config:
        config["decode_dtype"] = spec.dtype.str
    elif cid == "shuffle" and config.get("elementsize") is None:
        config["elementsize"] = spec.dtype.itemsize


def _numcodecs_factory(name: str) -> Callable[[Mapping[str, Any], ChunkSpec | None], Stage]:
    def factory(config: Mapping[str, Any], spec: ChunkSpec | None) -> Stage:
        config = v3_to_numcodecs(name, config)
        cid = config["id"]
        _fill_numcodecs_defaults(cid, config, spec)
        codec = get_numcodec(config)
        kind = numcodecs_kind(cid)
        if kind == "array_to_array":
            return NumcodecsArrayCodec(codec, spec, name)
        if kind == "array_to_bytes":
            if spec is None:
                raise CodecError(f"{name}: the input shape is unknown")
            return NumcodecsArrayBytesCodec(codec, spec, name)
        return NumcodecsBytesCodec(codec, name)

    return factory


def _resolve_numcodecs(name: str) -> CodecEntry:
    cid = name[len(NUMCODECS_PREFIX) :]
    if cid not in numcodecs.registry.codec_registry:
        try:
            numcodecs.get_codec({"id": cid})
        except numcodecs.errors.UnknownCodecError as e:
            raise UnknownCodecError(f"unknown codec {name!r}: numcodecs has no {cid!r}") from e
        except Exception:
            pass  # it exists, it just needs configuration
    return CodecEntry(name, numcodecs_kind(cid), _numcodecs_factory(name))


def _crc32c_factory(config: Mapping[str, Any], spec: ChunkSpec | None) -> Crc32cCodec:
    return Crc32cCodec()


register_codec("bytes", "array_to_bytes", _bytes_factory)
register_codec("transpose", "array_to_array", _transpose_factory)
register_codec("crc32c", "bytes_to_bytes", _crc32c_factory)
for _name in ("blosc", "gzip", "zstd"):
    register_codec(_name, "bytes_to_bytes", _compressor_factory(_name))
register_namespace(NUMCODECS_PREFIX, _resolve_numcodecs)
