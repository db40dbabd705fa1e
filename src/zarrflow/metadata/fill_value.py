"""Fill values: the JSON spellings of Zarr v2 and v3 <-> numpy scalars.

In memory a fill value is a numpy scalar of the array's dtype, or ``None`` for
a Zarr v2 ``null``. On disk:

- floats are JSON numbers or ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; v3 also
  reads ``"0x..."`` raw bits (as many hex digits as the type has nibbles) and
  writes a NaN whose bits are not the canonical quiet NaN that way, so NaN
  payloads survive a round trip;
- complex values are ``[real, imag]`` pairs of floats;
- ``datetime64``/``timedelta64`` values are integers (counts of the unit;
  NaT is -2**63, and ``"NaT"`` is read too), ``S``/``V``/structured values and
  variable-length bytes base64 strings, ``U`` values and variable-length
  strings plain strings — in v2 and v3 alike, as zarr-python 3 writes them.

A variable-length string's fill value is a ``str``, a variable-length bytes'
one ``bytes``; the default fill values are zero, ``""``, ``b""`` and NaT for
times (zarr-python's defaults).
"""

from __future__ import annotations

import base64
import binascii
import math
import operator
import warnings
from typing import Any

import numpy as np

from zarrflow.errors import MetadataError
from zarrflow.metadata.json import where
from zarrflow.metadata.object_dtypes import object_kind

__all__ = [
    "DEFAULT_FILL_VALUE",
    "default_fill_value",
    "fill_value_from_json",
    "fill_value_to_json",
    "parse_fill_value",
]


class _DefaultFillValue:
    """Sentinel type for "no fill value given": use the dtype's zero."""

    _instance: _DefaultFillValue | None = None

    def __new__(cls) -> _DefaultFillValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT_FILL_VALUE"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_DefaultFillValue, ())


#: pass as ``fill_value`` to get the dtype's zero (v2 ``None`` means JSON ``null``)
DEFAULT_FILL_VALUE: Any = _DefaultFillValue()

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
#: bits of the canonical quiet NaN (sign 0, mantissa MSB 1) per float width
_CANONICAL_NAN = {2: 0x7E00, 4: 0x7FC00000, 8: 0x7FF8000000000000}


def _bits_dtype(fdtype: np.dtype[Any]) -> np.dtype[Any]:
    return np.dtype(f"<u{fdtype.itemsize}")


def _float_from_bits(bits: int, fdtype: np.dtype[Any]) -> np.floating[Any]:
    return np.array(bits, dtype=_bits_dtype(fdtype)).view(fdtype)[()]


def _float_from_json(value: Any, fdtype: np.dtype[Any], zarr_format: int) -> np.floating[Any]:
    """One float (or complex component) of ``fdtype`` (a little-endian float dtype)."""
    if isinstance(value, str):
        if value == "NaN":
            return _float_from_bits(_CANONICAL_NAN[fdtype.itemsize], fdtype)
        if value in _SPECIAL:
            return np.array(_SPECIAL[value], dtype=fdtype)[()]
        width = 2 * fdtype.itemsize
        if zarr_format == 3 and value[:2] == "0x":
            digits = value[2:]
            if len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
                return _float_from_bits(int(digits, 16), fdtype)
            raise MetadataError(
                f"fill_value {value!r} for {fdtype.name} must be '0x' and {width} hex digits"
            )
        hex_form = f", or '0x' and {width} hex digits" if zarr_format == 3 else ""
        raise MetadataError(
            f'fill_value {value!r} for {fdtype.name} must be a number, "NaN", '
            f'"Infinity" or "-Infinity"{hex_form}'
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MetadataError(f"fill_value {value!r} for {fdtype.name} must be a number")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # float16 overflow rounds to inf
            return np.array(float(value), dtype=fdtype)[()]
    except OverflowError:
        raise MetadataError(f"fill_value {value!r} is out of range for {fdtype.name}") from None


def _float_to_json(x: np.floating[Any], zarr_format: int) -> float | str:
    if math.isnan(x):
        bits = int(np.array(x).view(_bits_dtype(x.dtype))[()])
        if zarr_format == 2 or bits == _CANONICAL_NAN[x.dtype.itemsize]:
            return "NaN"
        return f"0x{bits:0{2 * x.dtype.itemsize}x}"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x.dtype.itemsize < 8:
        return float(str(x))  # the shortest decimal that reads back to the same value
    return float(x)


def _component_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return np.dtype(f"<f{dtype.itemsize // 2}")


def _complex_from_json(value: Any, dtype: np.dtype[Any], zarr_format: int) -> np.generic:
    fdtype = _component_dtype(dtype)
    if zarr_format == 2 and isinstance(value, int | float) and not isinstance(value, bool):
        value = [value, 0]  # lenient: a bare number is the real part
    if not (isinstance(value, list | tuple) and len(value) == 2):
        raise MetadataError(f"fill_value {value!r} for {dtype.name} must be a [real, imag] pair")
    parts = np.empty(2, dtype=fdtype)
    parts[0] = _float_from_json(value[0], fdtype, zarr_format)
    parts[1] = _float_from_json(value[1], fdtype, zarr_format)
    return parts.view(dtype.newbyteorder("<"))[0]


def _int_from_json(value: Any, dtype: np.dtype[Any], zarr_format: int) -> np.generic:
    if isinstance(value, float) and zarr_format == 2 and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetadataError(f"fill_value {value!r} for {dtype.name} must be an integer")
    info = np.iinfo(dtype)
    if not info.min <= value <= info.max:
        raise MetadataError(
            f"fill_value {value} is out of range for {dtype.name} [{info.min}, {info.max}]"
        )
    return np.array(value, dtype=dtype)[()]


def _bool_from_json(value: Any, zarr_format: int) -> np.generic:
    if zarr_format == 2 and not isinstance(value, bool) and value in (0, 1):
        value = bool(value)
    if not isinstance(value, bool):
        raise MetadataError(f"fill_value {value!r} for bool must be true or false")
    return np.bool_(value)


def _bytes_from_json(value: Any, dtype: np.dtype[Any]) -> np.generic:
    if value == 0 and dtype.kind == "S" and not isinstance(value, bool):
        value = ""  # zarr-python 2 wrote 0 for an unset bytes fill value
    if not isinstance(value, str):
        raise MetadataError(f"fill_value {value!r} for {dtype.str} must be a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise MetadataError(f"fill_value {value!r} for {dtype.str} is not base64") from None
    if dtype.kind == "S" and len(raw) <= dtype.itemsize:
        return np.array(raw, dtype=dtype)[()]
    if len(raw) != dtype.itemsize:
        raise MetadataError(
            f"fill_value {value!r} decodes to {len(raw)} bytes; {dtype.str} needs {dtype.itemsize}"
        )
    return np.frombuffer(raw, dtype=dtype)[0]


def _object_from_json(value: Any, dtype: np.dtype[Any]) -> Any:
    """The fill value of a variable-length type: ``str`` or ``bytes``."""
    kind = object_kind(dtype)
    if kind == "string":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise MetadataError(f"fill_value {value!r} for a string array must be a string")
        return str(value)  # zarr-python reads a number as its text
    if kind == "variable_length_bytes":
        if not isinstance(value, str):
            raise MetadataError(f"fill_value {value!r} for a bytes array must be a base64 string")
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise MetadataError(f"fill_value {value!r} for a bytes array is not base64") from None
    raise MetadataError(f"fill_value {value!r}: a {kind} array has no fill value but null")


def _struct_from_json(value: dict[str, Any], dtype: np.dtype[Any], zarr_format: int) -> Any:
    """A structured fill value given field by field (tensorstore's ``struct`` form)."""
    names = dtype.names or ()
    if set(value) != set(names):
        raise MetadataError(f"fill_value {value!r} must name exactly the fields {list(names)}")
    out = np.zeros((), dtype=dtype)
    for name in names:
        out[name] = fill_value_from_json(value[name], dtype.fields[name][0], zarr_format)
    return out[()]


def _other_from_json(value: Any, dtype: np.dtype[Any], zarr_format: int) -> Any:
    """Fill values of the data types beyond numbers: times, strings, bytes, structured."""
    if dtype.kind == "O":
        return _object_from_json(value, dtype)
    if dtype.fields is not None and isinstance(value, dict):
        return _struct_from_json(value, dtype, zarr_format)
    if dtype.kind in "mM":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise MetadataError(f"fill_value {value!r} for {dtype.str} must be an integer")
        if isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                raise MetadataError(f"fill_value {value} is out of range for {dtype.str} (int64)")
            return np.array(value, dtype="<i8").astype(dtype)[()]
        try:
            return np.array(value, dtype=dtype)[()]
        except ValueError:
            raise MetadataError(f"fill_value {value!r} is not a {dtype.str}") from None
    if dtype.kind == "U":
        if value == 0 and not isinstance(value, bool):
            value = ""
        if not isinstance(value, str) or len(value) > dtype.itemsize // 4:
            raise MetadataError(f"fill_value {value!r} for {dtype.str} must be a short string")
        return np.array(value, dtype=dtype)[()]
    return _bytes_from_json(value, dtype)


def fill_value_from_json(
    value: Any, dtype: np.dtype[Any], zarr_format: int, path: str | None = None
) -> np.generic | None:
    """Decode the ``fill_value`` of a metadata document.

    Parameters
    ----------
    value
        The decoded JSON value.
    dtype
        The array's dtype.
    zarr_format
        2 or 3 (they spell some values differently).
    path
        The array's path, named in error messages.

    Returns
    -------
    numpy.generic or None
        A scalar of ``dtype``; None for a v2 ``null``.

    Examples
    --------
    >>> fill_value_from_json("NaN", np.dtype("f4"), 3)
    np.float32(nan)
    >>> fill_value_from_json([1, "Infinity"], np.dtype("c8"), 3)
    np.complex64(1+infj)
    >>> fill_value_from_json("YWI=", np.dtype("S4"), 2)
    np.bytes_(b'ab')
    """
    with where(path):
        if value is None:
            if zarr_format == 2:
                return None
            raise MetadataError("fill_value must not be null in Zarr v3")
        kind = dtype.kind
        if kind == "b":
            return _bool_from_json(value, zarr_format)
        if kind in "iu":
            return _int_from_json(value, dtype, zarr_format)
        if kind == "f":
            return _float_from_json(value, dtype.newbyteorder("<"), zarr_format)
        if kind == "c":
            return _complex_from_json(value, dtype, zarr_format)
        return _other_from_json(value, dtype, zarr_format)


def fill_value_to_json(value: Any, dtype: np.dtype[Any], zarr_format: int) -> Any:
    """Encode a fill value (a scalar of ``dtype``, or None) as its JSON value.

    NaN and infinities become strings, so the result is strict JSON.

    Examples
    --------
    >>> fill_value_to_json(np.float64("nan"), np.dtype("f8"), 2)
    'NaN'
    >>> fill_value_to_json(np.uint32(0x7FC00001).view(np.float32), np.dtype("f4"), 3)
    '0x7fc00001'
    >>> fill_value_to_json(np.complex128(1 - 2j), np.dtype("c16"), 2)
    [1.0, -2.0]
    """
    if value is None:
        if zarr_format == 2:
            return None
        raise MetadataError("a Zarr v3 array needs a fill value, not None")
    if dtype.kind == "O":
        if isinstance(value, bytes):
            return base64.b64encode(value).decode("ascii")
        return str(value)
    scalar = np.array(value, dtype=dtype)
    kind = dtype.kind
    if kind == "b":
        return bool(scalar)
    if kind in "iu":
        return int(scalar)
    if kind == "f":
        return _float_to_json(scalar.astype(dtype.newbyteorder("<"))[()], zarr_format)
    if kind == "c":
        parts = scalar.astype(dtype.newbyteorder("<")).reshape(1).view(_component_dtype(dtype))
        return [_float_to_json(parts[0], zarr_format), _float_to_json(parts[1], zarr_format)]
    if kind in "mM":
        return int(scalar.astype(dtype.newbyteorder("=")).view(np.int64))
    if kind == "U":
        return str(scalar[()])
    raw = bytes(scalar[()]) if kind == "S" else scalar.tobytes()
    return base64.b64encode(raw).decode("ascii")


def default_fill_value(dtype: np.dtype[Any]) -> Any:
    """The default fill value of ``dtype``, as zarr-python 3's: its zero (False, 0,
    0.0, b"", ""), NaT for datetimes and timedeltas, ``""`` for variable-length
    strings, ``b""`` for variable-length bytes, None for v2 ragged arrays.

    Examples
    --------
    >>> default_fill_value(np.dtype("f4"))
    np.float32(0.0)
    >>> default_fill_value(np.dtype("M8[s]"))
    np.datetime64('NaT','s')
    """
    if dtype.kind in "mM":
        return np.array("NaT", dtype=dtype)[()]
    if dtype.kind == "O":
        return {"string": "", "variable_length_bytes": b""}.get(object_kind(dtype))  # type: ignore[arg-type]
    return np.zeros((), dtype=dtype)[()]


def _parse_user_object(value: Any, dtype: np.dtype[Any]) -> Any:
    """A user's fill value for a variable-length string or bytes array."""
    kind = object_kind(dtype)
    want = {"string": str, "variable_length_bytes": bytes}.get(kind)  # type: ignore[arg-type]
    if want is None:
        raise MetadataError(f"a {kind} array's fill value can only be None (null)")
    if isinstance(value, want):
        return want(value)
    if value == 0 and not isinstance(value, bool):
        return want()  # create()'s default fill_value=0 is the empty value here
    raise MetadataError(f"fill_value {value!r} for a {kind} array must be a {want.__name__}")


def _parse_user_scalar(value: Any, dtype: np.dtype[Any]) -> Any:
    kind = dtype.kind
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if kind == "O":
        return _parse_user_object(value, dtype)
    if kind in "SUV" and not isinstance(value, bool) and isinstance(value, int) and value == 0:
        return default_fill_value(dtype)  # create()'s default fill_value=0: b"", "", zeros
    if isinstance(value, np.generic) and value.dtype.newbyteorder("=") == dtype.newbyteorder("="):
        return np.array(value, dtype=dtype)[()]  # keeps NaN payloads bit for bit
    if kind in "iu" and not isinstance(value, bool | np.bool_ | float | np.floating):
        return _int_from_json(operator.index(value), dtype, 3)
    if kind in "iu" and isinstance(value, float | np.floating):
        if not float(value).is_integer():
            raise MetadataError(f"fill_value {value!r} for {dtype.name} is not an integer")
        return _int_from_json(int(value), dtype, 3)
    if kind == "f" and isinstance(value, str):
        return _float_from_json(value, dtype.newbyteorder("<"), 3)
    if kind == "c" and isinstance(value, list | tuple):
        return _complex_from_json(list(value), dtype, 3)
    if kind == "b" and not isinstance(value, bool | np.bool_) and value not in (0, 1):
        raise MetadataError(f"fill_value {value!r} is not a bool")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        scalar = np.array(value, dtype=dtype)
    if scalar.shape != ():
        raise MetadataError(f"fill_value {value!r} is not a scalar")
    return scalar[()]


def parse_fill_value(
    value: Any, dtype: np.dtype[Any], zarr_format: int, path: str | None = None
) -> np.generic | None:
    """Turn a user's fill value into the scalar the metadata holds.

    ``DEFAULT_FILL_VALUE`` gives the dtype's zero. ``None`` is JSON ``null``
    for Zarr v2 and the dtype's zero for v3 (zarr-python's behaviour). The JSON
    spellings (``"NaN"``, ``"0x7fc00001"``, ``[re, im]``) are accepted too.

    Examples
    --------
    >>> parse_fill_value(DEFAULT_FILL_VALUE, np.dtype("i2"), 2)
    np.int16(0)
    >>> parse_fill_value(None, np.dtype("i2"), 2) is None
    True
    >>> parse_fill_value("-Infinity", np.dtype("f8"), 3)
    np.float64(-inf)
    """
    with where(path):
        if value is DEFAULT_FILL_VALUE or (value is None and zarr_format == 3):
            return default_fill_value(dtype)
        if value is None:
            return None
        try:
            return _parse_user_scalar(value, dtype)
        except MetadataError:
            raise
        except (TypeError, ValueError, OverflowError, RuntimeWarning) as e:
            raise MetadataError(
                f"fill_value {value!r} cannot be stored as {dtype.str}: {e}"
            ) from None
