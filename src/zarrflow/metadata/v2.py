"""Zarr v2 array metadata: the ``.zarray`` (and ``.zattrs``) documents."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from zarrflow.errors import MetadataError
from zarrflow.metadata.array_view import ArrayMetadataView
from zarrflow.metadata.chunk_keys import (
    ChunkKeyEncoding,
    parse_chunk_shape,
    parse_grid,
    parse_shape,
)
from zarrflow.metadata.dtypes import dtype_from_json_v2, dtype_to_json_v2, parse_dtype
from zarrflow.metadata.fill_value import (
    DEFAULT_FILL_VALUE,
    fill_value_from_json,
    fill_value_to_json,
    parse_fill_value,
)
from zarrflow.metadata.json import parse_attributes, where
from zarrflow.metadata.object_dtypes import object_dtype_from_filters, with_object_codec

__all__ = ["ArrayMetadataV2"]

#: the attribute xarray (and zarrflow) keep v2 dimension names in
DIMENSIONS_ATTRIBUTE = "_ARRAY_DIMENSIONS"


def _parse_codec_config(config: Any, what: str) -> dict[str, Any]:
    if not isinstance(config, Mapping) or not isinstance(config.get("id"), str):
        raise MetadataError(f"{what} {config!r} must be a numcodecs config with a string 'id'")
    return copy.deepcopy(dict(config))


def _parse_filters(filters: Any) -> tuple[dict[str, Any], ...] | None:
    if filters is None:
        return None
    if isinstance(filters, Mapping | str | bytes) or not isinstance(filters, Sequence):
        raise MetadataError(f"filters must be a list of codec configs or null, got {filters!r}")
    parsed = tuple(_parse_codec_config(f, "filter") for f in filters)
    return parsed or None  # the spec spells "no filters" as null, not []


def _parse_dimension_names(attributes: dict[str, Any], ndim: int) -> tuple[str, ...] | None:
    names = attributes.get(DIMENSIONS_ATTRIBUTE)
    if isinstance(names, list) and len(names) == ndim and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None


def _with_dimension_names(
    attrs: dict[str, Any], names: Sequence[str] | None, shape: tuple[int, ...]
) -> dict[str, Any]:
    """``attrs`` with the dimension names in xarray's attribute (removed for None)."""
    attrs = dict(attrs)
    if names is None:
        attrs.pop(DIMENSIONS_ATTRIBUTE, None)
        return attrs
    names = list(names)
    if len(names) != len(shape) or not all(isinstance(n, str) for n in names):
        raise MetadataError(f"dimension_names {names!r} must be {len(shape)} strings for Zarr v2")
    attrs[DIMENSIONS_ATTRIBUTE] = names
    return attrs


@dataclass(frozen=True, eq=False)
class ArrayMetadataV2(ArrayMetadataView):
    """The metadata of a Zarr v2 array.

    Build one with :meth:`create` (from user values) or :meth:`from_json`
    (from stored documents); fields are validated and normalised on
    construction, so every instance is consistent.

    Examples
    --------
    >>> meta = ArrayMetadataV2.create(shape=(10, 10), chunks=(5, 5), dtype=">i4",
    ...                               fill_value=-1)
    >>> meta.dtype.str, meta.fill_value, meta.chunk_key((1, 0))
    ('>i4', np.int32(-1), '1.0')
    >>> sorted(meta.to_documents())
    ['.zarray', '.zattrs']
    """

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype[Any]
    fill_value: np.generic | None = None
    order: str = "C"
    compressor: dict[str, Any] | None = None
    filters: tuple[dict[str, Any], ...] | None = None
    dimension_separator: str = "."
    attributes: dict[str, Any] = field(default_factory=dict)

    zarr_format: ClassVar[int] = 2
    node_type: ClassVar[str] = "array"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "shape", parse_shape(self.shape))
        set_(self, "chunks", parse_chunk_shape(self.chunks, self.shape))
        set_(self, "dtype", parse_dtype(self.dtype, 2))
        set_(self, "fill_value", parse_fill_value(self.fill_value, self.dtype, 2))
        if self.order not in ("C", "F"):
            raise MetadataError(f"order must be 'C' or 'F', got {self.order!r}")
        if self.compressor is not None:
            set_(self, "compressor", _parse_codec_config(self.compressor, "compressor"))
        set_(self, "filters", with_object_codec(self.dtype, _parse_filters(self.filters)))
        if self.dimension_separator not in (".", "/"):
            raise MetadataError(
                f"dimension_separator must be '.' or '/', got {self.dimension_separator!r}"
            )
        set_(self, "attributes", parse_attributes(self.attributes))
        encoding = ChunkKeyEncoding("v2", self.dimension_separator, len(self.shape))
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
        order: str = "C",
        compressor: Mapping[str, Any] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        dimension_separator: str = ".",
        dimension_names: Sequence[str] | None = None,
        attributes: Mapping[str, Any] | None = None,
        path: str | None = None,
    ) -> ArrayMetadataV2:
        """New v2 array metadata from user values.

        Parameters
        ----------
        shape, chunks
            The array and chunk shapes (an int means one dimension; chunks must
            be positive).
        dtype
            Anything :func:`numpy.dtype` takes; the byte order is kept.
        fill_value
            A scalar; ``None`` writes JSON ``null``; the default is the dtype's zero.
        order
            ``"C"`` or ``"F"``: the memory layout inside each chunk.
        compressor, filters
            Normalised numcodecs configs (``{"id": ..., ...}``) or None.
        dimension_separator
            ``"."`` (``0.1`` keys) or ``"/"`` (``0/1`` keys).
        dimension_names
            Stored as xarray's ``_ARRAY_DIMENSIONS`` attribute.
        attributes
            User attributes (``.zattrs``).
        path
            The array's path, named in error messages.

        Examples
        --------
        >>> ArrayMetadataV2.create(shape=4, chunks=2, dtype="f8",
        ...                        dimension_names=["x"]).dimension_names
        ('x',)
        """
        with where(path):
            shape, chunks = parse_grid(shape, chunks)
            attrs = parse_attributes(attributes)
            if dimension_names is not None:  # else keep any _ARRAY_DIMENSIONS given (xarray)
                attrs = _with_dimension_names(attrs, dimension_names, shape)
            dtype = parse_dtype(dtype, 2)
            return cls(
                shape=shape,
                chunks=chunks,
                dtype=dtype,
                fill_value=parse_fill_value(fill_value, dtype, 2),
                order=order,
                compressor=compressor,  # type: ignore[arg-type]
                filters=filters,  # type: ignore[arg-type]
                dimension_separator=dimension_separator,
                attributes=attrs,
            )

    @classmethod
    def from_json(
        cls, doc: Mapping[str, Any], attrs: Mapping[str, Any] | None, path: str | None = None
    ) -> ArrayMetadataV2:
        """Parse a ``.zarray`` document (and the ``.zattrs`` one, if any).

        Examples
        --------
        >>> doc = {"zarr_format": 2, "shape": [4], "chunks": [2], "dtype": "<f8",
        ...        "compressor": None, "fill_value": "NaN", "order": "C", "filters": None}
        >>> ArrayMetadataV2.from_json(doc, {"a": 1}, "x").fill_value
        np.float64(nan)
        """
        with where(path):
            if not isinstance(doc, Mapping):
                raise MetadataError(f".zarray must be a JSON object, got {doc!r}")
            if doc.get("zarr_format") != 2:
                raise MetadataError(
                    f".zarray zarr_format must be 2, got {doc.get('zarr_format')!r}"
                )
            missing = [k for k in ("shape", "chunks", "dtype") if k not in doc]
            if missing:
                raise MetadataError(f".zarray is missing {', '.join(missing)}")
            if doc["dtype"] in ("|O", "O"):  # the object codec (first filter) says what
                dtype = object_dtype_from_filters(_parse_filters(doc.get("filters")))
            else:
                dtype = dtype_from_json_v2(doc["dtype"])
            return cls(
                shape=doc["shape"],
                chunks=doc["chunks"],
                dtype=dtype,
                fill_value=fill_value_from_json(doc.get("fill_value"), dtype, 2),
                order=doc.get("order", "C"),
                compressor=doc.get("compressor"),
                filters=doc.get("filters"),
                dimension_separator=doc.get("dimension_separator") or ".",
                attributes=parse_attributes(attrs, ".zattrs"),
            )

    # the common read view -------------------------------------------------------
    @property
    def dimension_names(self) -> tuple[str, ...] | None:
        """Dimension names from xarray's ``_ARRAY_DIMENSIONS`` attribute, if valid."""
        return _parse_dimension_names(self.attributes, len(self.shape))

    @property
    def inner_chunks(self) -> None:
        """Always None: Zarr v2 has no sharding."""
        return None

    # serialisation --------------------------------------------------------------
    def to_json(self) -> dict[str, dict[str, Any]]:
        """The documents as JSON objects: ``{".zarray": {...}, ".zattrs": {...}}``.

        ``.zattrs`` is always included (``{}`` when empty), as zarr-python 3
        writes it, so rewriting the metadata never leaves stale attributes.
        """
        zarray = {
            "zarr_format": 2,
            "shape": list(self.shape),
            "chunks": list(self.chunks),
            "dtype": dtype_to_json_v2(self.dtype),
            "compressor": copy.deepcopy(self.compressor),
            "fill_value": fill_value_to_json(self.fill_value, self.dtype, 2),
            "order": self.order,
            "filters": None if self.filters is None else copy.deepcopy(list(self.filters)),
            "dimension_separator": self.dimension_separator,
        }
        return {".zarray": zarray, ".zattrs": copy.deepcopy(self.attributes)}

    def replace(self, **changes: Any) -> ArrayMetadataV2:
        """A copy with some fields changed (validated like the original).

        ``dimension_names=`` updates the ``_ARRAY_DIMENSIONS`` attribute.

        Examples
        --------
        >>> meta = ArrayMetadataV2.create(shape=4, chunks=2, dtype="u1")
        >>> meta.replace(shape=(8,)).chunk_grid_shape
        (4,)
        """
        if "dimension_names" in changes:
            attrs = changes.get("attributes", self.attributes)
            shape = parse_shape(changes.get("shape", self.shape))
            changes["attributes"] = _with_dimension_names(
                attrs, changes.pop("dimension_names"), shape
            )
        return self._replaced(changes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArrayMetadataV2):
            return NotImplemented
        return self.dtype == other.dtype and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]
