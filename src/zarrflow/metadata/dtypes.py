"""Data types: Zarr v2 type strings and v3 data type names <-> numpy dtypes.

Zarr v2 spells a data type as a numpy type string with an explicit byte order
(``"<i4"``, ``">f8"``, ``"|b1"``, ``"|S10"``, ``"<M8[ns]"``) or, for structured
types, a list of ``[name, type(, shape)]`` fields; the declared byte order is
kept in memory. Zarr v3 names its core types (``"int32"``, ``"float64"``...)
and keeps endianness in the ``bytes`` codec, so a v3 dtype in memory is always
little-endian (or byte-order free).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zarrflow.errors import MetadataError
from zarrflow.metadata.json import where

__all__ = [
    "V3_DATA_TYPES",
    "dtype_from_json_v2",
    "dtype_from_json_v3",
    "dtype_to_json_v2",
    "dtype_to_json_v3",
    "parse_dtype",
]

#: Zarr v3 core data type names and their in-memory numpy dtypes
V3_DATA_TYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code)
    for name, code in {
        "bool": "|b1",
        "int8": "|i1",
        "int16": "<i2",
        "int32": "<i4",
        "int64": "<i8",
        "uint8": "|u1",
        "uint16": "<u2",
        "uint32": "<u4",
        "uint64": "<u8",
        "float16": "<f2",
        "float32": "<f4",
        "float64": "<f8",
        "complex64": "<c8",
        "complex128": "<c16",
    }.items()
}
_V3_NAMES: dict[str, str] = {dt.str[1:]: name for name, dt in V3_DATA_TYPES.items()}

#: numpy kinds a Zarr v2 array may have (object arrays need object codecs: unsupported)
_V2_KINDS = frozenset("biufcmMSUV")


def _parse_structured(fields: list[Any]) -> np.dtype[Any]:
    """Build a structured dtype from a v2 ``[[name, type(, shape)], ...]`` list."""
    spec: list[tuple[Any, ...]] = []
    for field in fields:
        if not (isinstance(field, list | tuple) and len(field) in (2, 3)):
            raise MetadataError(f"malformed structured dtype field {field!r}")
        name, sub = field[0], field[1]
        if not isinstance(name, str):
            raise MetadataError(f"structured dtype field name {name!r} is not a string")
        sub_dtype = _parse_structured(sub) if isinstance(sub, list) else _parse_v2_str(sub)
        if len(field) == 3:
            spec.append((name, sub_dtype, tuple(field[2])))
        else:
            spec.append((name, sub_dtype))
    return np.dtype(spec)


def _parse_v2_str(value: Any) -> np.dtype[Any]:
    if not isinstance(value, str):
        raise MetadataError(f"dtype {value!r} must be a string or a list of fields")
    try:
        dtype = np.dtype(value)
    except TypeError as e:
        raise MetadataError(f"unsupported Zarr v2 dtype {value!r}: {e}") from None
    _check_v2_dtype(dtype)
    return dtype


def _check_v2_dtype(dtype: np.dtype[Any]) -> None:
    if dtype.fields is not None:
        for sub, *_ in dtype.fields.values():
            _check_v2_dtype(sub)
        return
    if dtype.subdtype is not None:
        _check_v2_dtype(dtype.subdtype[0])
        return
    if dtype.kind not in _V2_KINDS:
        raise MetadataError(
            f"unsupported Zarr v2 dtype {dtype.str!r} (object dtypes need an object codec; "
            "supported kinds are bool, int, uint, float, complex, datetime64, timedelta64, "
            "S, U, V and structured)"
        )
    if dtype.kind in "mM" and np.datetime_data(dtype)[0] == "generic":
        raise MetadataError(f"dtype {dtype.str!r} needs a time unit, e.g. '<M8[ns]'")
    if dtype.itemsize == 0:
        raise MetadataError(f"dtype {dtype.str!r} has zero size; give a length, e.g. '|S10'")


def dtype_from_json_v2(value: Any, path: str | None = None) -> np.dtype[Any]:
    """Parse the ``dtype`` of a Zarr v2 ``.zarray`` document.

    Parameters
    ----------
    value
        A numpy type string such as ``"<i4"`` or a structured field list.
    path
        The array's path, named in error messages.

    Returns
    -------
    numpy.dtype
        The dtype, with the declared byte order.

    Examples
    --------
    >>> dtype_from_json_v2(">f8").str
    '>f8'
    >>> dtype_from_json_v2([["r", "|u1"], ["g", "|u1"]]).names
    ('r', 'g')
    """
    with where(path):
        if isinstance(value, list):
            try:
                return _parse_structured(value)
            except (TypeError, ValueError) as e:
                raise MetadataError(f"unsupported structured dtype {value!r}: {e}") from None
        return _parse_v2_str(value)


def _descr_to_json(descr: list[tuple[Any, ...]]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for field in descr:
        name, sub = field[0], field[1]
        item: list[Any] = [name, _descr_to_json(sub) if isinstance(sub, list) else sub]
        if len(field) == 3:
            item.append(list(field[2]))
        out.append(item)
    return out


def dtype_to_json_v2(dtype: np.dtype[Any]) -> str | list[list[Any]]:
    """The ``.zarray`` ``dtype`` value of a numpy dtype.

    Examples
    --------
    >>> dtype_to_json_v2(np.dtype(">i4"))
    '>i4'
    >>> dtype_to_json_v2(np.dtype([("x", "<f4", (2,))]))
    [['x', '<f4', [2]]]
    """
    if dtype.fields is not None:
        return _descr_to_json(dtype.descr)
    return dtype.str


def dtype_from_json_v3(value: Any, path: str | None = None) -> np.dtype[Any]:
    """Parse the ``data_type`` of a Zarr v3 ``zarr.json`` document.

    Only the core data types are supported; an extension data type raises
    :class:`MetadataError` naming it.

    Examples
    --------
    >>> dtype_from_json_v3("int32").str
    '<i4'
    """
    with where(path):
        if (
            isinstance(value, dict)
            and isinstance(value.get("name"), str)
            and not any(k not in ("name", "configuration") for k in value)
        ):
            if value.get("configuration"):
                raise MetadataError(f"unsupported Zarr v3 data_type {value!r}")
            value = value["name"]
        if not isinstance(value, str) or value not in V3_DATA_TYPES:
            raise MetadataError(
                f"unsupported Zarr v3 data_type {value!r}; supported: " + ", ".join(V3_DATA_TYPES)
            )
        return V3_DATA_TYPES[value]


def dtype_to_json_v3(dtype: np.dtype[Any]) -> str:
    """The Zarr v3 ``data_type`` name of a numpy dtype (any byte order).

    Examples
    --------
    >>> dtype_to_json_v3(np.dtype(">u2"))
    'uint16'
    """
    name = _V3_NAMES.get(dtype.str[1:]) if dtype.fields is None else None
    if name is None:
        raise MetadataError(f"dtype {dtype.str!r} has no Zarr v3 core data type")
    return name


def parse_dtype(dtype: Any, zarr_format: int, path: str | None = None) -> np.dtype[Any]:
    """Turn a user's dtype (``"int32"``, ``np.int32``, ``"<f8"``, a dtype...) into the
    dtype the metadata holds.

    For Zarr v2 the byte order is kept (native when not given); for v3 the
    dtype must be a core data type and is returned little-endian.

    Examples
    --------
    >>> parse_dtype("int32", 2).str
    '<i4'
    >>> parse_dtype(">f8", 3).str
    '<f8'
    >>> parse_dtype("complex64", 3).str
    '<c8'
    """
    with where(path):
        if zarr_format == 3 and isinstance(dtype, str) and dtype in V3_DATA_TYPES:
            return V3_DATA_TYPES[dtype]
        if zarr_format == 2 and isinstance(dtype, list):
            return dtype_from_json_v2(dtype)
        try:
            parsed = np.dtype(dtype)
        except (TypeError, ValueError) as e:
            raise MetadataError(f"not a data type: {dtype!r} ({e})") from None
        if zarr_format == 2:
            _check_v2_dtype(parsed)
            return parsed
        if zarr_format == 3:
            return V3_DATA_TYPES[dtype_to_json_v3(parsed)]
        raise MetadataError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
