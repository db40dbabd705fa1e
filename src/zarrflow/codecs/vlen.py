"""The variable-length array -> bytes codecs: ``vlen-utf8``, ``vlen-bytes``, ``vlen-array``.

A chunk of variable-length values (an ``object`` array of ``str``, ``bytes`` or,
for v2 ``vlen-array``, 1-D arrays) has no fixed byte size, so it cannot be
decoded into a preallocated numeric buffer: this stage says so
(``fixed_size = False``) and decodes to a new object array of the chunk
shape, which the caller then places. The bytes are numcodecs' own (a
little-endian element count, then each element's length and bytes, in C
order), the same in Zarr v2 (the first filter) and v3 (the array -> bytes
codec); ``vlen-array`` exists only in v2.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod
from typing import Any

import numcodecs
import numpy as np

from zarrflow.codecs.registry import ArrayBytesCodec, ChunkSpec, register_codec
from zarrflow.errors import CodecError, CorruptChunkError

__all__ = ["VLEN_CODEC_IDS", "VlenCodec", "vlen_codec_from_config"]

#: the numcodecs class of each variable-length codec id
_NUMCODECS = {
    "vlen-utf8": numcodecs.VLenUTF8,
    "vlen-bytes": numcodecs.VLenBytes,
    "vlen-array": numcodecs.VLenArray,
}
VLEN_CODEC_IDS = frozenset(_NUMCODECS)


class VlenCodec(ArrayBytesCodec):
    """A variable-length codec as the array -> bytes stage of one array's chunks.

    Examples
    --------
    >>> c = VlenCodec("vlen-utf8", {}, ChunkSpec((2, 2), np.dtype("O")))
    >>> chunk = np.array([["a", "bc"], ["", "δ"]], dtype=object)
    >>> c.decode(c.encode(chunk)).tolist()
    [['a', 'bc'], ['', 'δ']]
    >>> c.fixed_size
    False
    """

    encoded_size = None
    fixed_size = False

    def __init__(self, name: str, config: Mapping[str, Any], spec: ChunkSpec | None) -> None:
        if spec is None:
            raise CodecError(f"{name}: the chunk shape is unknown (a filter changed it)")
        if name not in _NUMCODECS:
            raise CodecError(f"{name!r} is not a variable-length codec")
        if spec.dtype.kind != "O":
            raise CodecError(
                f"{name} encodes variable-length (object) arrays, not {spec.dtype.str} ones"
            )
        self.name = name
        self.spec = spec
        self.count = prod(spec.shape)
        if name == "vlen-array":
            if "dtype" not in config:
                raise CodecError("vlen-array needs the element dtype in its configuration")
            self.codec = numcodecs.VLenArray(config["dtype"])
        else:
            self.codec = _NUMCODECS[name]()

    def encode(self, chunk: np.ndarray) -> bytes:
        flat = np.array(chunk, dtype=object, order="C", copy=None).reshape(-1)
        if not flat.flags.writeable:  # numcodecs' vlen-bytes takes writable buffers only
            flat = flat.copy()
        try:
            return bytes(self.codec.encode(flat))
        except (TypeError, ValueError) as e:
            what = {"vlen-utf8": "str", "vlen-bytes": "bytes", "vlen-array": "array"}[self.name]
            raise CodecError(f"{self.name}: every element must be a {what}: {e}") from None

    def decode(self, data: Any) -> np.ndarray:
        try:
            flat = self.codec.decode(data)
        except (TypeError, ValueError, RuntimeError) as e:
            raise CorruptChunkError(f"{self.name}: cannot decode the chunk: {e}") from None
        if flat.size != self.count:
            raise CorruptChunkError(
                f"{self.name}: expected {self.count} elements for a chunk of shape "
                f"{self.spec.shape}, got {flat.size}"
            )
        return flat.reshape(self.spec.shape)

    def __repr__(self) -> str:
        return f"VlenCodec({self.name!r})"


def vlen_codec_from_config(config: Mapping[str, Any], spec: ChunkSpec) -> VlenCodec:
    """The stage for a v2 object codec config (``{"id": "vlen-utf8"}``...).

    Examples
    --------
    >>> vlen_codec_from_config({"id": "vlen-bytes"}, ChunkSpec((3,), np.dtype("O")))
    VlenCodec('vlen-bytes')
    """
    options = {k: v for k, v in config.items() if k != "id"}
    return VlenCodec(str(config.get("id")), options, spec)


def _factory(name: str) -> Any:
    def factory(config: Mapping[str, Any], spec: ChunkSpec | None) -> VlenCodec:
        if config:
            raise CodecError(f"{name} takes no configuration, got {dict(config)!r}")
        return VlenCodec(name, config, spec)

    return factory


register_codec("vlen-utf8", "array_to_bytes", _factory("vlen-utf8"))
register_codec("vlen-bytes", "array_to_bytes", _factory("vlen-bytes"))
