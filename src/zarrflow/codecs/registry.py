"""The codec contract and the registry of codecs by their Zarr v3 name.

A codec pipeline is a chain of *stages* of three kinds, in the Zarr v3 spec's
own words: array -> array (``transpose``, numcodecs filters), exactly one
array -> bytes (``bytes``, later ``sharding_indexed``), then bytes -> bytes
(compressors, checksums). Each stage is built once per array from its
configuration and the :class:`ChunkSpec` it receives, so the per-chunk calls
do no parsing.

The registry maps a v3 codec name to its kind and a factory
``factory(configuration, spec) -> stage``. Names under a namespace prefix
(``numcodecs.``) are resolved by a resolver registered for that prefix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from math import prod
from typing import Any, ClassVar, Literal

import numpy as np

from zarrflow.errors import UnknownCodecError

__all__ = [
    "ArrayArrayCodec",
    "ArrayBytesCodec",
    "BytesBytesCodec",
    "ChunkSpec",
    "CodecEntry",
    "CodecKind",
    "Stage",
    "known_codec_names",
    "lookup_codec",
    "register_codec",
    "register_namespace",
]

CodecKind = Literal["array_to_array", "array_to_bytes", "bytes_to_bytes"]


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    """The shape and data type of the array a stage receives.

    Examples
    --------
    >>> ChunkSpec((64, 64), np.dtype("uint16")).nbytes
    8192
    """

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        """Size in bytes of one array of this spec."""
        return prod(self.shape) * self.dtype.itemsize


class ArrayArrayCodec(ABC):
    """An array -> array stage bound to its input spec.

    ``encoded_spec`` is the spec of what :meth:`encode` returns, or None when
    it cannot be known in advance (then later stages see raw bytes).
    """

    kind: ClassVar[CodecKind] = "array_to_array"
    name: str
    encoded_spec: ChunkSpec | None

    @abstractmethod
    def encode(self, chunk: np.ndarray) -> np.ndarray:
        """Encode an array of the input spec."""

    @abstractmethod
    def decode(self, chunk: np.ndarray) -> np.ndarray:
        """Decode back to an array of the input spec (shape and dtype)."""


class ArrayBytesCodec(ABC):
    """The array -> bytes stage bound to its input spec (None = raw bytes).

    ``encoded_size`` is the exact length of :meth:`encode`'s output when fixed
    (the ``bytes`` codec), else None (e.g. sharding). ``fixed_size`` is False
    for variable-length codecs (``vlen-utf8``...): their chunks have no fixed
    byte size and :meth:`decode` returns a new object array of the chunk
    shape, never a view of a preallocated buffer.
    """

    kind: ClassVar[CodecKind] = "array_to_bytes"
    name: str
    encoded_size: int | None
    fixed_size: bool = True

    @abstractmethod
    def encode(self, chunk: np.ndarray) -> Any:
        """Serialise an array of the input spec to a bytes-like object."""

    @abstractmethod
    def decode(self, data: Any) -> np.ndarray:
        """Deserialise to an array of the input spec; may be read-only."""

    def decode_into(self, data: Any, out: np.ndarray) -> None:
        """Deserialise into ``out`` (input-spec shaped, any layout)."""
        out[...] = self.decode(data)


class BytesBytesCodec(ABC):
    """A bytes -> bytes stage (a compressor or a checksum).

    :meth:`decode` gets the exact decoded size when the pipeline knows it
    (``expected``), and always an upper bound (``limit``) it must not exceed.
    Stages that can decompress straight into a caller's buffer set
    ``can_decode_into`` and implement :meth:`decode_into`.
    """

    kind: ClassVar[CodecKind] = "bytes_to_bytes"
    name: str
    can_decode_into: bool = False

    @abstractmethod
    def encoded_size(self, decoded_size: int) -> int | None:
        """Length of the output for an input of ``decoded_size`` bytes, if fixed."""

    @abstractmethod
    def encode(self, data: Any) -> Any:
        """Encode a bytes-like object (a contiguous ndarray counts)."""

    @abstractmethod
    def decode(self, data: Any, expected: int | None, limit: int) -> Any:
        """Decode a bytes-like object, never producing more than ``limit`` bytes."""

    def decode_into(self, data: Any, out: np.ndarray) -> None:
        """Decode into the C-contiguous ``out``, whose nbytes is the exact size."""
        raise NotImplementedError(f"{self.name} cannot decode into a buffer")

    def batch_decoder(self, decoded_size: int) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
        """A function decoding many values of ``decoded_size`` bytes each in one call, or None.

        The function takes a list of encoded values and returns one buffer of
        exactly ``decoded_size`` bytes per value, or raises
        :class:`~zarrflow.errors.CorruptChunkError` if any of them is not
        such a value. Stages without a faster way than one :meth:`decode`
        per value return None.
        """
        return None


Stage = ArrayArrayCodec | ArrayBytesCodec | BytesBytesCodec
CodecFactory = Callable[[Mapping[str, Any], ChunkSpec | None], Stage]


@dataclass(frozen=True, slots=True)
class CodecEntry:
    """A registered codec: its kind and its factory."""

    name: str
    kind: CodecKind
    factory: CodecFactory


_CODECS: dict[str, CodecEntry] = {}
_NAMESPACES: dict[str, Callable[[str], CodecEntry]] = {}


def register_codec(name: str, kind: CodecKind, factory: CodecFactory) -> None:
    """Register (or replace) the v3 codec ``name``.

    This is the hook for codecs defined elsewhere, e.g. ``sharding_indexed``
    registers itself as an ``"array_to_bytes"`` codec whose factory builds its
    inner pipelines with :meth:`CodecPipeline.from_v3`.

    Examples
    --------
    >>> import zarrflow.codecs
    >>> lookup_codec("bytes").kind
    'array_to_bytes'
    """
    if kind not in ("array_to_array", "array_to_bytes", "bytes_to_bytes"):
        raise ValueError(f"unknown codec kind {kind!r}")
    _CODECS[name] = CodecEntry(name, kind, factory)


def register_namespace(prefix: str, resolver: Callable[[str], CodecEntry]) -> None:
    """Resolve every codec name starting with ``prefix`` through ``resolver``.

    The resolver gets the full name and returns its :class:`CodecEntry` or
    raises :class:`~zarrflow.errors.UnknownCodecError`.

    Examples
    --------
    >>> import zarrflow.codecs
    >>> lookup_codec("numcodecs.delta").kind
    'array_to_array'
    """
    _NAMESPACES[prefix] = resolver


def lookup_codec(name: str) -> CodecEntry:
    """The registered entry for a v3 codec name.

    Raises
    ------
    UnknownCodecError
        Naming the codec and listing the known names.

    Examples
    --------
    >>> import zarrflow.codecs
    >>> lookup_codec("zstd").kind
    'bytes_to_bytes'
    """
    entry = _CODECS.get(name)
    if entry is not None:
        return entry
    if isinstance(name, str):
        for prefix, resolver in _NAMESPACES.items():
            if name.startswith(prefix):
                return resolver(name)
    raise UnknownCodecError(
        f"unknown codec {name!r}; known codecs: {', '.join(known_codec_names())}"
    )


def known_codec_names() -> list[str]:
    """Registered codec names, plus ``prefix*`` for each namespace.

    Examples
    --------
    >>> import zarrflow.codecs
    >>> "crc32c" in known_codec_names()
    True
    """
    return sorted(_CODECS) + [f"{prefix}*" for prefix in sorted(_NAMESPACES)]
