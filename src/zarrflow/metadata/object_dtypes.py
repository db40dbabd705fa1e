"""Variable-length data types: strings, byte strings and (v2) ragged arrays.

numpy holds variable-length values in ``object`` arrays, so in memory the three
variable-length Zarr types share one numpy dtype. Which one an array has is
kept in the dtype's own ``metadata`` (the way h5py marks its string dtypes):

============================  ======================  ===========================
in memory                     Zarr v3 ``data_type``   Zarr v2 ``dtype`` + filter
============================  ======================  ===========================
:data:`STRING_DTYPE`          ``"string"``            ``"|O"`` + ``vlen-utf8``
:data:`BYTES_DTYPE`           ``"variable_length_     ``"|O"`` + ``vlen-bytes``
                              bytes"``
:data:`VLEN_ARRAY_DTYPE`      (none)                  ``"|O"`` + ``vlen-array``
============================  ======================  ===========================

A plain ``object`` dtype says none of this, so it is not a Zarr data type.
Object codecs that would run arbitrary code or guess types (``pickle``,
``json2``, ``msgpack2``) are refused: zarrflow never unpickles stored bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zarrflow.errors import MetadataError

__all__ = [
    "BYTES_DTYPE",
    "OBJECT_CODEC_IDS",
    "STRING_DTYPE",
    "VLEN_ARRAY_DTYPE",
    "object_dtype_from_filters",
    "object_kind",
    "with_object_codec",
]

_KEY = "zarr_data_type"

#: variable-length UTF-8 strings (Python ``str`` elements)
STRING_DTYPE: np.dtype[Any] = np.dtype("O", metadata={_KEY: "string"})
#: variable-length byte strings (Python ``bytes`` elements)
BYTES_DTYPE: np.dtype[Any] = np.dtype("O", metadata={_KEY: "variable_length_bytes"})
#: Zarr v2 ragged arrays (1-D numpy array elements), read through ``vlen-array``
VLEN_ARRAY_DTYPE: np.dtype[Any] = np.dtype("O", metadata={_KEY: "vlen-array"})

_BY_KIND = {
    "string": STRING_DTYPE,
    "variable_length_bytes": BYTES_DTYPE,
    "vlen-array": VLEN_ARRAY_DTYPE,
}
#: the v2 object codec (first filter) of each variable-length kind
OBJECT_CODEC_IDS: dict[str, str] = {
    "string": "vlen-utf8",
    "variable_length_bytes": "vlen-bytes",
    "vlen-array": "vlen-array",
}
_KIND_OF_CODEC = {cid: kind for kind, cid in OBJECT_CODEC_IDS.items()}
_REFUSED = {
    "pickle": "zarrflow never unpickles stored bytes (it can run arbitrary code)",
    "json2": "JSON-encoded object arrays hold values of any type; zarrflow reads typed data",
    "msgpack2": "msgpack-encoded object arrays hold values of any type; zarrflow reads typed data",
}


def object_kind(dtype: np.dtype[Any]) -> str | None:
    """Which variable-length type an object dtype is, or None (not one, or unmarked).

    Examples
    --------
    >>> object_kind(STRING_DTYPE), object_kind(np.dtype("O")), object_kind(np.dtype("i4"))
    ('string', None, None)
    """
    if dtype.kind != "O" or not dtype.metadata:
        return None
    kind = dtype.metadata.get(_KEY)
    return kind if kind in _BY_KIND else None


def dtype_of_kind(kind: str) -> np.dtype[Any]:
    """The marked object dtype of a variable-length kind (``"string"``...).

    Examples
    --------
    >>> dtype_of_kind("string") is STRING_DTYPE
    True
    """
    return _BY_KIND[kind]


def object_dtype_from_filters(filters: Sequence[Mapping[str, Any]] | None) -> np.dtype[Any]:
    """The dtype of a v2 ``"|O"`` array, told by its first filter (its object codec).

    Raises
    ------
    MetadataError
        No filter, an object codec zarrflow refuses (``pickle``, ``json2``,
        ``msgpack2``) or one it does not know, saying which.

    Examples
    --------
    >>> object_dtype_from_filters([{"id": "vlen-utf8"}]) is STRING_DTYPE
    True
    """
    if not filters:
        raise MetadataError(
            "an object ('|O') array needs an object codec as its first filter "
            "(vlen-utf8, vlen-bytes or vlen-array); it has none"
        )
    cid = filters[0].get("id")
    if cid in _KIND_OF_CODEC:
        return _BY_KIND[_KIND_OF_CODEC[cid]]
    if cid in _REFUSED:
        raise MetadataError(
            f"object arrays encoded with {cid!r} are not supported: {_REFUSED[cid]}; "
            "supported object codecs are vlen-utf8, vlen-bytes and vlen-array"
        )
    raise MetadataError(
        f"unsupported object codec {cid!r} for an object ('|O') array; supported: "
        "vlen-utf8, vlen-bytes, vlen-array"
    )


def with_object_codec(
    dtype: np.dtype[Any], filters: Sequence[Mapping[str, Any]] | None
) -> tuple[dict[str, Any], ...] | None:
    """v2 ``filters`` that start with the object codec ``dtype`` needs (added if missing).

    Examples
    --------
    >>> with_object_codec(STRING_DTYPE, None)
    ({'id': 'vlen-utf8'},)
    >>> with_object_codec(np.dtype("i4"), None) is None
    True
    """
    kind = object_kind(dtype)
    if kind is None:
        return None if not filters else tuple(dict(f) for f in filters)
    codec_id = OBJECT_CODEC_IDS[kind]
    filters = [dict(f) for f in filters or ()]
    if filters and filters[0].get("id") == codec_id:
        return tuple(filters)
    if filters and (filters[0].get("id") in _KIND_OF_CODEC or filters[0].get("id") in _REFUSED):
        raise MetadataError(
            f"a {kind} array's object codec is {codec_id!r}, not {filters[0].get('id')!r}"
        )
    if kind == "vlen-array":
        raise MetadataError("a vlen-array array needs its vlen-array filter (with its dtype)")
    return ({"id": codec_id}, *filters)
