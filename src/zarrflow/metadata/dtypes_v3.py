"""Zarr v3 ``data_type`` JSON <-> numpy dtypes, as zarr-python 3 writes them.

Core types are bare names (``"int32"``). The others, with their in-memory dtype:

- ``"string"`` -> :data:`~zarrflow.metadata.object_dtypes.STRING_DTYPE`
  (also read: ``"variable_length_utf8"``);
- ``"variable_length_bytes"`` (also read: ``"bytes"``) -> ``BYTES_DTYPE``;
- ``{"name": "fixed_length_utf32", "configuration": {"length_bytes": 4n}}`` -> ``<U{n}``;
- ``{"name": "null_terminated_bytes", "configuration": {"length_bytes": n}}`` -> ``|S{n}``;
- ``{"name": "raw_bytes", "configuration": {"length_bytes": n}}`` -> ``|V{n}``;
- ``{"name": "numpy.datetime64" | "numpy.timedelta64", "configuration":
  {"unit": u, "scale_factor": k}}`` -> ``<M8[{k}{u}]`` / ``<m8[{k}{u}]``;
- ``{"name": "structured", "configuration": {"fields": [[name, data_type], ...]}}``
  -> a structured dtype whose fields are any of these, recursively; the
  ``struct`` extension tensorstore writes (``"fields": [{"name", "data_type"}]``,
  fill value an object by field name) is read too, and written as ``structured``.

In memory every v3 dtype is little-endian (byte order on disk is the ``bytes``
codec's business).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from zarrflow.errors import MetadataError
from zarrflow.metadata.json import where
from zarrflow.metadata.object_dtypes import (
    BYTES_DTYPE,
    STRING_DTYPE,
    object_kind,
)

__all__ = ["V3_DATA_TYPES", "dtype_from_json_v3", "dtype_to_json_v3", "little_endian"]

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
#: the bare names of the variable-length types (first: the one written)
_VLEN_NAMES = {
    "string": STRING_DTYPE,
    "variable_length_utf8": STRING_DTYPE,
    "variable_length_bytes": BYTES_DTYPE,
    "bytes": BYTES_DTYPE,
}
_SIZED = {"fixed_length_utf32": ("U", 4), "null_terminated_bytes": ("S", 1), "raw_bytes": ("V", 1)}
_TIME = {"numpy.datetime64": "M", "numpy.timedelta64": "m"}
_TIME_UNITS = frozenset(
    ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as", "generic")
)
_SUPPORTED = ", ".join(
    [*V3_DATA_TYPES, "string", "variable_length_bytes", *_SIZED, *_TIME, "structured"]
)


def _config(value: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    config = value.get("configuration")
    if not isinstance(config, Mapping) or set(config) != set(keys):
        raise MetadataError(
            f"data_type {value!r} needs a configuration with exactly {', '.join(keys)}"
        )
    return dict(config)


def _positive_int(value: Any, what: str, limit: int = 2**31) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < limit:
        raise MetadataError(f"{what} must be an integer in [1, {limit}), got {value!r}")
    return value


def _sized_from_json(name: str, value: Mapping[str, Any]) -> np.dtype[Any]:
    code, unit = _SIZED[name]
    length = _positive_int(_config(value, ("length_bytes",))["length_bytes"], "length_bytes")
    if length % unit:
        raise MetadataError(f"{name} length_bytes must be a multiple of {unit}, got {length}")
    return np.dtype(f"{'<' if code == 'U' else '|'}{code}{length // unit}")


def _time_from_json(name: str, value: Mapping[str, Any]) -> np.dtype[Any]:
    config = _config(value, ("unit", "scale_factor"))
    unit, scale = config["unit"], _positive_int(config["scale_factor"], "scale_factor")
    if unit not in _TIME_UNITS:
        raise MetadataError(f"{name} unit {unit!r} is not one of {sorted(_TIME_UNITS)}")
    code = _TIME[name]
    if unit == "generic":
        return np.dtype(f"<{code}8")
    return np.dtype(f"<{code}8[{scale if scale > 1 else ''}{unit}]")


def _field_name_and_type(field: Any) -> tuple[str, Any]:
    """``[name, data_type]`` (zarr-python's ``structured``) or ``{"name", "data_type"}``
    (the ``struct`` extension tensorstore writes)."""
    if isinstance(field, list) and len(field) == 2 and isinstance(field[0], str):
        return field[0], field[1]
    if isinstance(field, Mapping) and isinstance(field.get("name"), str) and "data_type" in field:
        return field["name"], field["data_type"]
    raise MetadataError(f"structured field {field!r} must be [name, data_type]")


def _structured_from_json(value: Mapping[str, Any]) -> np.dtype[Any]:
    fields = _config(value, ("fields",))["fields"]
    if not isinstance(fields, list) or not fields:
        raise MetadataError(f"structured fields must be a non-empty list, got {fields!r}")
    spec = []
    for field in fields:
        name, data_type = _field_name_and_type(field)
        sub = _from_json(data_type)
        if sub.kind == "O":
            raise MetadataError(f"structured field {name!r}: variable-length types cannot nest")
        spec.append((name, sub))
    try:
        return np.dtype(spec)
    except (TypeError, ValueError) as e:
        raise MetadataError(f"structured data_type {value!r}: {e}") from None


def _from_json(value: Any) -> np.dtype[Any]:
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        name = value["name"]
        if name in _SIZED:
            return _sized_from_json(name, value)
        if name in _TIME:
            return _time_from_json(name, value)
        if name in ("structured", "struct"):
            return _structured_from_json(value)
        if not value.get("configuration") and set(value) <= {"name", "configuration"}:
            value = name  # {"name": "int32"} is "int32"
    if isinstance(value, str):
        if value in V3_DATA_TYPES:
            return V3_DATA_TYPES[value]
        if value in _VLEN_NAMES:
            return _VLEN_NAMES[value]
    raise MetadataError(f"unsupported Zarr v3 data_type {value!r}; supported: {_SUPPORTED}")


def dtype_from_json_v3(value: Any, path: str | None = None) -> np.dtype[Any]:
    """Parse the ``data_type`` of a Zarr v3 ``zarr.json`` document.

    Parameters
    ----------
    value
        A core type name, ``"string"``, ``"variable_length_bytes"``, or a
        ``{"name", "configuration"}`` object (see the module docstring).
    path
        The array's path, named in error messages.

    Examples
    --------
    >>> dtype_from_json_v3("int32").str
    '<i4'
    >>> dtype_from_json_v3({"name": "numpy.datetime64",
    ...                     "configuration": {"unit": "s", "scale_factor": 10}})
    dtype('<M8[10s]')
    >>> dtype_from_json_v3({"name": "fixed_length_utf32", "configuration": {"length_bytes": 8}})
    dtype('<U2')
    """
    with where(path):
        return _from_json(value)


def little_endian(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """``dtype`` with every multi-byte part little-endian (fields included).

    Examples
    --------
    >>> little_endian(np.dtype([("a", ">i2"), ("b", ">U2")])).descr
    [('a', '<i2'), ('b', '<U2')]
    """
    if dtype.fields is not None:
        if any(sub.subdtype is not None for sub, *_ in dtype.fields.values()):
            raise MetadataError(
                f"structured dtype {dtype.descr!r} has a sub-array field; Zarr v3 "
                "structured fields are scalars (use Zarr v2 for sub-array fields)"
            )
        swapped = np.dtype([(name, little_endian(dtype.fields[name][0])) for name in dtype.names])
        return dtype if swapped == dtype else swapped
    if dtype.kind == "O" or dtype.str[0] != ">":
        return dtype  # already little-endian (or native on this little-endian machine)
    return dtype.newbyteorder("<")


def _time_to_json(dtype: np.dtype[Any]) -> dict[str, Any]:
    unit, scale = np.datetime_data(dtype)
    name = "numpy.datetime64" if dtype.kind == "M" else "numpy.timedelta64"
    return {"name": name, "configuration": {"unit": unit, "scale_factor": int(scale)}}


def dtype_to_json_v3(dtype: np.dtype[Any]) -> str | dict[str, Any]:
    """The Zarr v3 ``data_type`` of a numpy dtype (any byte order).

    Examples
    --------
    >>> dtype_to_json_v3(np.dtype(">u2"))
    'uint16'
    >>> dtype_to_json_v3(np.dtype("S4"))
    {'name': 'null_terminated_bytes', 'configuration': {'length_bytes': 4}}
    >>> dtype_to_json_v3(STRING_DTYPE)
    'string'
    """
    if dtype.fields is not None:
        little_endian(dtype)  # refuses sub-array fields
        fields = [[name, dtype_to_json_v3(dtype.fields[name][0])] for name in dtype.names]
        return {"name": "structured", "configuration": {"fields": fields}}
    kind = dtype.kind
    if kind == "O":
        found = object_kind(dtype)
        if found in ("string", "variable_length_bytes"):
            return found
        raise MetadataError(
            "an object dtype is not a Zarr v3 data type: use dtype=str for "
            "variable-length strings or dtype=bytes for variable-length bytes"
        )
    if kind in "USV" and dtype.subdtype is None:
        if dtype.itemsize == 0:
            raise MetadataError(f"dtype {dtype.str!r} has zero size; give a length, e.g. 'S10'")
        name = {"U": "fixed_length_utf32", "S": "null_terminated_bytes", "V": "raw_bytes"}[kind]
        return {"name": name, "configuration": {"length_bytes": dtype.itemsize}}
    if kind in "mM":
        return _time_to_json(dtype)
    name = _V3_NAMES.get(dtype.str[1:]) if dtype.subdtype is None else None
    if name is None:
        raise MetadataError(f"dtype {dtype.str!r} has no Zarr v3 data type")
    return name
