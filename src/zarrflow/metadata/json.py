"""Strict JSON encoding and decoding of metadata documents.

Zarr metadata documents are JSON. zarrflow writes strictly valid JSON (a NaN
or infinity anywhere is an error, never a bare ``NaN`` token) indented like
zarr-python for readability, and reads leniently (bare ``NaN`` written by other
libraries is accepted), reporting bad documents as :class:`MetadataError`
naming the key they were read from.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from zarrflow.errors import MetadataError

__all__ = [
    "JSON_INDENT",
    "json_dumps",
    "json_loads",
    "load_json_object",
    "parse_attributes",
    "where",
]

#: the indentation zarr-python uses for its metadata documents
JSON_INDENT = 2


def _default(obj: Any) -> Any:
    """Convert numpy values (and tuples in numpy arrays) to plain JSON types."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"values of type {type(obj).__name__} are not JSON serialisable")


def json_dumps(obj: Any, key: str = "") -> bytes:
    """Encode ``obj`` as strict, indented JSON bytes.

    Numpy scalars and arrays are converted to plain JSON values. Non-finite
    floats (NaN, infinities) are rejected: the Zarr specs spell them as the
    strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.

    Parameters
    ----------
    obj
        A JSON-compatible value (dicts, lists, strings, numbers, bools, None).
    key
        The store key the document is for, named in error messages.

    Returns
    -------
    bytes
        UTF-8 (ASCII-only) JSON text.

    Raises
    ------
    MetadataError
        If ``obj`` holds a non-finite float or a value JSON cannot represent.

    Examples
    --------
    >>> json_dumps({"zarr_format": 2})
    b'{\\n  "zarr_format": 2\\n}'
    """
    try:
        text = json.dumps(obj, indent=JSON_INDENT, allow_nan=False, default=_default)
    except (ValueError, TypeError) as e:
        where = f" for {key!r}" if key else ""
        raise MetadataError(
            f"cannot encode the metadata document{where} as strict JSON: {e} "
            '(write NaN/infinities as the strings "NaN", "Infinity", "-Infinity")'
        ) from e
    return text.encode("utf-8")


def json_loads(data: bytes | str, key: str) -> Any:
    """Decode a JSON metadata document.

    Parameters
    ----------
    data
        The raw document.
    key
        The store key it was read from, named in error messages.

    Returns
    -------
    Any
        The decoded value.

    Raises
    ------
    MetadataError
        If ``data`` is not valid UTF-8 JSON.

    Examples
    --------
    >>> json_loads(b'{"zarr_format": 3}', "zarr.json")
    {'zarr_format': 3}
    """
    try:
        if isinstance(data, bytes | bytearray | memoryview):
            data = bytes(data).decode("utf-8")
        return json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise MetadataError(f"metadata document {key!r} is not valid JSON: {e}") from e


def load_json_object(data: bytes | str, key: str) -> dict[str, Any]:
    """Decode a JSON document that must be an object (a dict).

    Examples
    --------
    >>> load_json_object(b'{}', ".zattrs")
    {}
    """
    obj = json_loads(data, key)
    if not isinstance(obj, dict):
        raise MetadataError(
            f"metadata document {key!r} must be a JSON object, got {type(obj).__name__}"
        )
    return obj


@contextmanager
def where(path: str | None, kind: str = "array") -> Iterator[None]:
    """Prefix any :class:`MetadataError` raised inside with the node it concerns.

    The error keeps its class (e.g. :class:`UnsupportedExtensionError`), so
    callers can still tell what went wrong; ``path=None`` adds nothing.

    Examples
    --------
    >>> try:
    ...     with where("a/b"):
    ...         raise MetadataError("chunks must be positive")
    ... except MetadataError as e:
    ...     print(e)
    array 'a/b': chunks must be positive
    """
    try:
        yield
    except MetadataError as e:
        if path is None or getattr(e, "_zarrflow_located", False):
            raise
        label = f"{kind} {path!r}" if path else f"root {kind}"
        located = type(e)(f"{label}: {e}")
        located._zarrflow_located = True  # type: ignore[attr-defined]
        raise located from e


def parse_attributes(attributes: Any, key: str = "attributes") -> dict[str, Any]:
    """A copy of a user attributes mapping, checked to be a JSON object.

    Examples
    --------
    >>> parse_attributes(None)
    {}
    >>> parse_attributes({"units": "m"})
    {'units': 'm'}
    """
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise MetadataError(f"{key} must be a JSON object (a dict), got {attributes!r}")
    if not all(isinstance(k, str) for k in attributes):
        raise MetadataError(f"{key} keys must be strings, got {list(attributes)!r}")
    return copy.deepcopy(dict(attributes))
