"""Zarr v3 array metadata: the ``zarr.json`` document of an array."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from zarrflow.errors import MetadataError, UnsupportedExtensionError
from zarrflow.metadata.array_view import ArrayMetadataView
from zarrflow.metadata.chunk_keys import (
    ChunkKeyEncoding,
    chunk_grid_shape,
    parse_chunk_shape,
    parse_grid,
    parse_shape,
)
from zarrflow.metadata.dtypes import dtype_from_json_v3, dtype_to_json_v3, parse_dtype
from zarrflow.metadata.fill_value import (
    DEFAULT_FILL_VALUE,
    fill_value_from_json,
    fill_value_to_json,
    parse_fill_value,
)
from zarrflow.metadata.json import parse_attributes, where
from zarrflow.metadata.object_dtypes import object_kind

__all__ = ["ArrayMetadataV3", "split_extra_fields"]

#: the fields the v3 core spec defines for an array's zarr.json
ARRAY_FIELDS = frozenset(
    {
        "zarr_format",
        "node_type",
        "shape",
        "data_type",
        "chunk_grid",
        "chunk_key_encoding",
        "fill_value",
        "codecs",
        "attributes",
        "storage_transformers",
        "dimension_names",
    }
)
_DEFAULT_CODECS = ({"name": "bytes", "configuration": {"endian": "little"}},)
_DEFAULT_ENCODING = {"name": "default", "configuration": {"separator": "/"}}


def split_extra_fields(doc: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The unknown top-level fields of a v3 document, all ``must_understand: false``.

    Raises :class:`UnsupportedExtensionError` for any other unknown field.

    Examples
    --------
    >>> split_extra_fields({"zarr_format": 3, "x": {"must_understand": False}},
    ...                    frozenset({"zarr_format"}))
    {'x': {'must_understand': False}}
    """
    extra = {}
    for key, value in doc.items():
        if key in known:
            continue
        if not (isinstance(value, Mapping) and value.get("must_understand") is False):
            raise UnsupportedExtensionError(
                f"unsupported extension field {key!r} in zarr.json (only fields that are "
                'objects with "must_understand": false may be ignored)'
            )
        extra[key] = copy.deepcopy(value)
    return extra


def _parse_codecs(codecs: Any) -> tuple[dict[str, Any], ...]:
    if isinstance(codecs, Mapping | str | bytes) or not isinstance(codecs, Sequence):
        raise MetadataError(f"codecs must be a list of codec objects, got {codecs!r}")
    parsed = []
    for codec in codecs:
        if isinstance(codec, str):
            codec = {"name": codec}
        if not isinstance(codec, Mapping) or not isinstance(codec.get("name"), str):
            raise MetadataError(f"codec {codec!r} must be an object with a string 'name'")
        parsed.append(copy.deepcopy(dict(codec)))
    if not parsed:
        raise MetadataError("codecs must not be empty: an array -> bytes codec is required")
    return tuple(parsed)


def _default_codecs(dtype: np.dtype[Any]) -> tuple[dict[str, Any], ...]:
    """The codecs of an array created without any: ``bytes``, or the vlen codec."""
    vlen = {"string": "vlen-utf8", "variable_length_bytes": "vlen-bytes"}.get(
        object_kind(dtype)  # type: ignore[arg-type]
    )
    if vlen is not None:
        return ({"name": vlen, "configuration": {}},)
    return _DEFAULT_CODECS


def _parse_chunk_grid(grid: Any) -> Any:
    """The ``chunk_shape`` of a ``{"name": "regular"}`` chunk grid."""
    if not isinstance(grid, Mapping) or not isinstance(grid.get("name"), str):
        raise MetadataError(f"chunk_grid {grid!r} must be an object with a name")
    if grid["name"] != "regular":
        raise UnsupportedExtensionError(
            f"unsupported chunk_grid {grid['name']!r} (only 'regular' is supported)"
        )
    config = grid.get("configuration")
    if not isinstance(config, Mapping) or "chunk_shape" not in config:
        raise MetadataError(f"chunk_grid {grid!r} needs configuration.chunk_shape")
    return config["chunk_shape"]


def _parse_dimension_names(names: Any, ndim: int) -> tuple[str | None, ...] | None:
    if names is None:
        return None
    if isinstance(names, str | bytes | Mapping) or not isinstance(names, Sequence):
        raise MetadataError(f"dimension_names must be a list, got {names!r}")
    parsed = tuple(names)
    if len(parsed) != ndim or not all(n is None or isinstance(n, str) for n in parsed):
        raise MetadataError(
            f"dimension_names {list(parsed)!r} must be {ndim} strings or nulls (one per dimension)"
        )
    return parsed


def _inner_chunks(codecs: tuple[dict[str, Any], ...], chunks: tuple[int, ...]) -> Any:
    if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
        return None
    config = codecs[0].get("configuration") or {}
    inner = parse_chunk_shape(config.get("chunk_shape"), chunks, "sharding chunk_shape")
    if any(c == 0 or s % c for s, c in zip(chunks, inner, strict=True)):
        raise MetadataError(
            f"sharding chunk_shape {list(inner)} must evenly divide the shard shape {list(chunks)}"
        )
    return inner


@dataclass(frozen=True, eq=False)
class ArrayMetadataV3(ArrayMetadataView):
    """The metadata of a Zarr v3 array.

    ``dtype`` is little-endian in memory (byte order on disk is the ``bytes``
    codec's business); ``chunks`` is the regular grid's chunk shape, which for
    a sharded array is the shard shape (see :attr:`inner_chunks`).

    Examples
    --------
    >>> meta = ArrayMetadataV3.create(shape=(10, 10), chunks=(5, 5), dtype="float32",
    ...                               fill_value=float("nan"), dimension_names=["y", "x"])
    >>> meta.chunk_key((1, 0)), meta.order
    ('c/1/0', 'C')
    >>> list(meta.to_documents())
    ['zarr.json']
    """

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype[Any]
    fill_value: np.generic
    codecs: tuple[dict[str, Any], ...] = _DEFAULT_CODECS
    chunk_key_encoding: dict[str, Any] = field(default_factory=lambda: dict(_DEFAULT_ENCODING))
    attributes: dict[str, Any] = field(default_factory=dict)
    dimension_names: tuple[str | None, ...] | None = None
    extra_fields: dict[str, Any] = field(default_factory=dict)

    zarr_format: ClassVar[int] = 3
    node_type: ClassVar[str] = "array"
    order: ClassVar[str] = "C"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "shape", parse_shape(self.shape))
        set_(self, "chunks", parse_chunk_shape(self.chunks, self.shape))
        set_(self, "dtype", parse_dtype(self.dtype, 3))
        set_(self, "fill_value", parse_fill_value(self.fill_value, self.dtype, 3))
        set_(self, "codecs", _parse_codecs(self.codecs))
        encoding = ChunkKeyEncoding.from_json(self.chunk_key_encoding, len(self.shape))
        set_(self, "chunk_key_encoding", encoding.to_json())
        set_(self, "attributes", parse_attributes(self.attributes))
        set_(self, "dimension_names", _parse_dimension_names(self.dimension_names, self.ndim))
        set_(self, "extra_fields", split_extra_fields(self.extra_fields, frozenset()))
        clash = ARRAY_FIELDS & set(self.extra_fields)
        if clash:
            raise MetadataError(f"extra_fields {sorted(clash)} clash with core fields")
        set_(self, "_inner_chunks", _inner_chunks(self.codecs, self.chunks))
        set_(self, "_encoding", encoding)

    # construction ---------------------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        shape: Sequence[int] | int,
        chunks: Sequence[int] | int,
        dtype: Any,
        fill_value: Any = DEFAULT_FILL_VALUE,
        codecs: Sequence[Mapping[str, Any]] | None = None,
        chunk_key_encoding: Mapping[str, Any] | str | None = None,
        dimension_names: Sequence[str | None] | None = None,
        attributes: Mapping[str, Any] | None = None,
        path: str | None = None,
    ) -> ArrayMetadataV3:
        """New v3 array metadata from user values.

        Parameters
        ----------
        shape, chunks
            The array shape and the regular grid's chunk (or shard) shape.
        dtype
            A v3 core data type: ``"int32"``, ``np.float64``, ``"<c8"``...
        fill_value
            A scalar or its JSON spelling; None or the default gives the dtype's zero.
        codecs
            Normalised ``{"name", "configuration"}`` codec objects; None means
            just the little-endian ``bytes`` codec.
        chunk_key_encoding
            ``{"name": "default" | "v2", "configuration": {"separator": ...}}``
            (or the bare name); default ``c/0/1`` keys.
        dimension_names
            One name (or None) per dimension.
        attributes
            User attributes.
        path
            The array's path, named in error messages.

        Examples
        --------
        >>> sharded = ArrayMetadataV3.create(
        ...     shape=(8, 8), chunks=(4, 4), dtype="uint8",
        ...     codecs=[{"name": "sharding_indexed",
        ...              "configuration": {"chunk_shape": [2, 2], "codecs": []}}])
        >>> sharded.chunks, sharded.inner_chunks
        ((4, 4), (2, 2))
        """
        with where(path):
            shape, chunks = parse_grid(shape, chunks)
            dtype = parse_dtype(dtype, 3)
            return cls(
                shape=shape,
                chunks=chunks,
                dtype=dtype,
                fill_value=parse_fill_value(fill_value, dtype, 3),
                codecs=_default_codecs(dtype) if codecs is None else codecs,  # type: ignore[arg-type]
                chunk_key_encoding=chunk_key_encoding or _DEFAULT_ENCODING,  # type: ignore[arg-type]
                attributes=parse_attributes(attributes),
                dimension_names=dimension_names,  # type: ignore[arg-type]
            )

    @classmethod
    def from_json(
        cls,
        doc: Mapping[str, Any],
        attrs: Mapping[str, Any] | None = None,
        path: str | None = None,
    ) -> ArrayMetadataV3:
        """Parse an array's ``zarr.json`` document.

        ``attrs``, when given, replaces the document's ``attributes``.

        Examples
        --------
        >>> doc = {"zarr_format": 3, "node_type": "array", "shape": [4],
        ...        "data_type": "float32", "fill_value": "0x7fc00001",
        ...        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
        ...        "chunk_key_encoding": {"name": "v2"}, "codecs": [{"name": "bytes"}],
        ...        "x": {"must_understand": False}}
        >>> meta = ArrayMetadataV3.from_json(doc)
        >>> meta.chunk_key((1,)), meta.extra_fields
        ('1', {'x': {'must_understand': False}})
        """
        with where(path):
            if not isinstance(doc, Mapping):
                raise MetadataError(f"zarr.json must be a JSON object, got {doc!r}")
            if doc.get("zarr_format") != 3 or doc.get("node_type") != "array":
                raise MetadataError(
                    "zarr.json of an array needs zarr_format 3 and node_type 'array', got "
                    f"{doc.get('zarr_format')!r} and {doc.get('node_type')!r}"
                )
            required = ("shape", "data_type", "chunk_grid", "chunk_key_encoding", "codecs")
            missing = [k for k in (*required, "fill_value") if k not in doc]
            if missing:
                raise MetadataError(f"zarr.json is missing {', '.join(missing)}")
            if doc.get("storage_transformers"):
                raise UnsupportedExtensionError(
                    f"storage_transformers {doc['storage_transformers']!r} are not supported"
                )
            extra = split_extra_fields(doc, ARRAY_FIELDS)
            dtype = dtype_from_json_v3(doc["data_type"])
            return cls(
                shape=doc["shape"],
                chunks=_parse_chunk_grid(doc["chunk_grid"]),
                dtype=dtype,
                fill_value=fill_value_from_json(doc["fill_value"], dtype, 3),
                codecs=doc["codecs"],
                chunk_key_encoding=doc["chunk_key_encoding"],
                attributes=attrs if attrs is not None else doc.get("attributes"),  # type: ignore[arg-type]
                dimension_names=doc.get("dimension_names"),
                extra_fields=extra,
            )

    # the common read view -------------------------------------------------------
    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return len(self.shape)

    @property
    def chunk_grid_shape(self) -> tuple[int, ...]:
        """The number of chunks (shards, when sharded) along each dimension."""
        return chunk_grid_shape(self.shape, self.chunks)

    @property
    def inner_chunks(self) -> tuple[int, ...] | None:
        """The chunk shape inside each shard, or None when not sharded."""
        return self._inner_chunks  # type: ignore[attr-defined,no-any-return]

    @property
    def compressor(self) -> None:
        """Always None: v3 compression is one of the :attr:`codecs`."""
        return None

    @property
    def filters(self) -> None:
        """Always None: v3 filters are among the :attr:`codecs`."""
        return None

    # serialisation --------------------------------------------------------------
    def to_json(self) -> dict[str, dict[str, Any]]:
        """The document as a JSON object: ``{"zarr.json": {...}}``."""
        doc: dict[str, Any] = {
            "zarr_format": 3,
            "node_type": "array",
            "shape": list(self.shape),
            "data_type": dtype_to_json_v3(self.dtype),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(self.chunks)}},
            "chunk_key_encoding": copy.deepcopy(self.chunk_key_encoding),
            "fill_value": fill_value_to_json(self.fill_value, self.dtype, 3),
            "codecs": copy.deepcopy(list(self.codecs)),
            "attributes": copy.deepcopy(self.attributes),
        }
        if self.dimension_names is not None:
            doc["dimension_names"] = list(self.dimension_names)
        doc.update(copy.deepcopy(self.extra_fields))
        return {"zarr.json": doc}

    def replace(self, **changes: Any) -> ArrayMetadataV3:
        """A copy with some fields changed (validated like the original).

        Examples
        --------
        >>> meta = ArrayMetadataV3.create(shape=4, chunks=2, dtype="int8")
        >>> meta.replace(attributes={"a": 1}).attributes
        {'a': 1}
        """
        return self._replaced(changes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArrayMetadataV3):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]
