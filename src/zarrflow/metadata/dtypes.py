"""Data types: Zarr v2 type strings and v3 data type names <-> numpy dtypes.

Zarr v2 spells a data type as a numpy type string with an explicit byte order
(``"<i4"``, ``">f8"``, ``"|b1"``, ``"|S10"``, ``"<M8[ns]"``) or, for structured
types, a list of ``[name, type(, shape)]`` fields; the declared byte order is
kept in memory. Zarr v3 names its core types (``"int32"``, ``"float64"``...)
and keeps endianness in the ``bytes`` codec, so a v3 dtype in memory is always
little-endian (or byte-order free); its JSON forms are in
:mod:`zarrflow.metadata.dtypes_v3`. Variable-length types (``str``, ``bytes``)
are marked object dtypes (:mod:`zarrflow.metadata.object_dtypes`); in v2 they
are ``"|O"`` and their first filter says which.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zarrflow.errors import MetadataError
from zarrflow.metadata.dtypes_v3 import (
    V3_DATA_TYPES,
    dtype_from_json_v3,
    dtype_to_json_v3,
    little_endian,
)
from zarrflow.metadata.json import where
from zarrflow.metadata.object_dtypes import (
    BYTES_DTYPE,
    STRING_DTYPE,
    dtype_of_kind,
    object_kind,
)

__all__ = [
    "V3_DATA_TYPES",
    "dtype_from_json_v2",
    "dtype_from_json_v3",
    "dtype_to_json_v2",
    "dtype_to_json_v3",
    "little_endian",
    "parse_dtype",
]

#: numpy kinds a Zarr v2 array may have (object arrays only when marked, see object_dtypes)
_V2_KINDS = frozenset("biufcmMSUV")
#: what users may pass for a variable-length string or bytes dtype
_STRING_ALIASES = ("str", "string", "variable_length_utf8")
_BYTES_ALIASES = ("bytes", "variable_length_bytes")


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
    if dtype.kind == "O" and object_kind(dtype) is not None:
        return
    if dtype.kind not in _V2_KINDS:
        raise MetadataError(
            f"unsupported Zarr v2 dtype {dtype.str!r} (an object dtype must say what it holds: "
            "use dtype=str or dtype=bytes; supported kinds are bool, int, uint, float, "
            "complex, datetime64, timedelta64, S, U, V, structured, str and bytes)"
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


def _variable_length(dtype: Any) -> np.dtype[Any] | None:
    """The marked object dtype a user's ``str``/``bytes``-like dtype means, else None."""
    if dtype is str or (isinstance(dtype, str) and dtype in _STRING_ALIASES):
        return STRING_DTYPE
    if dtype is bytes or (isinstance(dtype, str) and dtype in _BYTES_ALIASES):
        return BYTES_DTYPE
    string_dtype = getattr(np.dtypes, "StringDType", None)
    if string_dtype is not None and (dtype is string_dtype or isinstance(dtype, string_dtype)):
        return STRING_DTYPE
    if isinstance(dtype, np.dtype) and object_kind(dtype) is not None:
        return dtype_of_kind(object_kind(dtype))  # type: ignore[arg-type]
    return None


def parse_dtype(dtype: Any, zarr_format: int, path: str | None = None) -> np.dtype[Any]:
    """Turn a user's dtype (``"int32"``, ``np.int32``, ``"<f8"``, ``str``, a dtype...)
    into the dtype the metadata holds.

    ``str`` (or ``"str"``, ``"string"``, numpy's ``StringDType``) means
    variable-length UTF-8 strings and ``bytes`` variable-length byte strings:
    both are marked object dtypes. ``"U8"``, ``"S4"``, ``"V2"``, ``"M8[ns]"``,
    ``"m8[s]"`` and structured dtypes keep their numpy meaning. For Zarr v2
    the byte order is kept (native when not given); for v3 every dtype is
    returned little-endian. A v3 ``data_type`` JSON object is accepted too.

    Examples
    --------
    >>> parse_dtype("int32", 2).str
    '<i4'
    >>> parse_dtype(">f8", 3).str
    '<f8'
    >>> parse_dtype(str, 3) is STRING_DTYPE
    True
    >>> parse_dtype(">M8[ns]", 3).str
    '<M8[ns]'
    """
    with where(path):
        if zarr_format not in (2, 3):
            raise MetadataError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
        vlen = _variable_length(dtype)
        if vlen is not None:
            if zarr_format == 3 and object_kind(vlen) == "vlen-array":
                raise MetadataError("vlen-array (ragged) arrays exist only in Zarr v2")
            return vlen
        if zarr_format == 3 and isinstance(dtype, str) and dtype in V3_DATA_TYPES:
            return V3_DATA_TYPES[dtype]
        if zarr_format == 3 and isinstance(dtype, dict):
            return dtype_from_json_v3(dtype)
        if zarr_format == 2 and isinstance(dtype, list):
            return dtype_from_json_v2(dtype)
        try:
            parsed = np.dtype(dtype)
        except (TypeError, ValueError) as e:
            raise MetadataError(f"not a data type: {dtype!r} ({e})") from None
        if zarr_format == 2:
            _check_v2_dtype(parsed)
            return parsed
        return little_endian(dtype_from_json_v3(dtype_to_json_v3(parsed)))
