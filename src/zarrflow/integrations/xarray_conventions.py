"""xarray's Zarr conventions, carried across a v2 ↔ v3 conversion.

xarray names an array's dimensions in v2's ``_ARRAY_DIMENSIONS`` attribute
and in v3's ``dimension_names`` field. Its missing-value marker is v2's
``fill_value`` (every non-null fill value masks), but in v3 the
``_FillValue`` attribute (a float as base64 of its little-endian float64
bytes, an integer as itself), since a v3 fill value always exists. A copy
that changes the format moves both, so the dataset opens identical.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["converted_conventions", "decode_fill_value_attr", "encode_fill_value_attr"]

DIMENSIONS_ATTR = "_ARRAY_DIMENSIONS"
FILL_VALUE_ATTR = "_FillValue"


def _float_b64(value: float) -> str:
    return base64.standard_b64encode(struct.pack("<d", float(value))).decode()


def _b64_float(text: str) -> float:
    return struct.unpack("<d", base64.standard_b64decode(text))[0]


def encode_fill_value_attr(value: Any, dtype: np.dtype) -> Any:
    """A fill value as xarray's v3 ``_FillValue`` attribute, or None when it has no such form.

    Parameters
    ----------
    value
        The fill value.
    dtype
        The array's data type.

    Examples
    --------
    >>> encode_fill_value_attr(float("nan"), np.dtype("f4"))
    'AAAAAAAA+H8='
    >>> encode_fill_value_attr(-1, np.dtype("i2"))
    -1
    """
    kind = np.dtype(dtype).kind
    if kind == "f":
        return _float_b64(value)
    if kind in "iu":
        return int(value)
    if kind == "b":
        return bool(value)
    if kind == "c":
        return [_float_b64(complex(value).real), _float_b64(complex(value).imag)]
    if kind == "S":
        return base64.standard_b64encode(bytes(value)).decode()
    if kind == "U":
        return str(value)
    return None


def decode_fill_value_attr(value: Any, dtype: np.dtype) -> Any:
    """xarray's v3 ``_FillValue`` attribute as a fill value, or None when it cannot be read.

    Examples
    --------
    >>> decode_fill_value_attr("AAAAAAAA+H8=", np.dtype("f4"))
    nan
    """
    kind = np.dtype(dtype).kind
    try:
        if kind == "f":
            return _b64_float(value)
        if kind == "c":
            return complex(_b64_float(value[0]), _b64_float(value[1]))
        if kind == "S":
            return base64.standard_b64decode(value)
        if kind in "iu":
            return int(value)
        if kind == "b":
            return bool(value)
        if kind == "U":
            return str(value)
    except (TypeError, ValueError, IndexError, struct.error):
        return None
    return None


def _is_zero(value: Any) -> bool:
    try:
        return not isinstance(value, str | bytes) and value == 0 and not math.isnan(value)
    except TypeError:
        return False


def converted_conventions(
    attributes: dict[str, Any],
    fill_value: Any,
    dimension_names: Sequence[str | None] | None,
    dtype: np.dtype,
    src_format: int,
    dst_format: int,
) -> tuple[dict[str, Any], Any, tuple[str | None, ...] | None]:
    """``(attributes, fill_value, dimension_names)`` for a copy written as ``dst_format``.

    Parameters
    ----------
    attributes, fill_value, dimension_names, dtype
        The source array's.
    src_format, dst_format
        The source's Zarr format and the copy's.

    Returns
    -------
    tuple
        What to create the copy with. Within one format nothing changes;
        v3 fill values other than xarray's missing-value marker stay as they
        are (a data-changing fill is never dropped), a zero one without
        ``_FillValue`` becomes v2's null, as xarray writes it.

    Examples
    --------
    >>> converted_conventions({"_ARRAY_DIMENSIONS": ["t"]}, np.nan, ("t",), np.dtype("f8"), 2, 3)
    ({'_FillValue': 'AAAAAAAA+H8='}, nan, ('t',))
    >>> converted_conventions({"_FillValue": "AAAAAAAA+H8="}, np.nan, ("t",), np.dtype("f8"), 3, 2)
    ({'_ARRAY_DIMENSIONS': ['t']}, nan, ('t',))
    """
    attrs = dict(attributes)
    names = tuple(dimension_names) if dimension_names is not None else None
    if src_format == dst_format:
        return attrs, fill_value, names
    if dst_format == 3:
        xarray_style = attrs.pop(DIMENSIONS_ATTR, None) is not None
        if xarray_style and fill_value is not None and FILL_VALUE_ATTR not in attrs:
            encoded = encode_fill_value_attr(fill_value, dtype)
            if encoded is not None:
                attrs[FILL_VALUE_ATTR] = encoded
        return attrs, (fill_value if fill_value is not None else 0), names
    if names is not None and not all(isinstance(n, str) for n in names):
        names = None  # v2 has no form for partly named dimensions
    if names is None:
        return attrs, fill_value, None
    attrs[DIMENSIONS_ATTR] = list(names)
    if FILL_VALUE_ATTR in attrs:
        decoded = decode_fill_value_attr(attrs[FILL_VALUE_ATTR], dtype)
        if decoded is not None:
            del attrs[FILL_VALUE_ATTR]
            return attrs, decoded, names
    return attrs, (None if _is_zero(fill_value) else fill_value), names
