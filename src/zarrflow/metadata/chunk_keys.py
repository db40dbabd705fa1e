"""The regular chunk grid and its chunk keys (grid coordinates <-> store keys).

Zarr v2 joins the coordinates with the array's ``dimension_separator``
(``"0.1"`` or ``"0/1"``; ``"0"`` for a 0-d array). Zarr v3 names the scheme in
``chunk_key_encoding``: ``"default"`` prefixes ``"c"`` (``"c/0/1"``, ``"c"`` for
0-d) and ``"v2"`` is the v2 scheme. Keys are relative to the array's path.

:meth:`ChunkKeyEncoding.chunk_key` is on the per-chunk hot path, so the prefix,
separator and 0-d key are computed once, up front.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zarrflow.errors import MetadataError, UnsupportedExtensionError
from zarrflow.metadata.json import where

__all__ = [
    "ChunkKeyEncoding",
    "chunk_grid_shape",
    "parse_chunk_shape",
    "parse_grid",
    "parse_shape",
]

_DEFAULT_SEPARATOR = {"default": "/", "v2": "."}


class ChunkKeyEncoding:
    """How an array names its chunks in the store.

    Parameters
    ----------
    name
        ``"default"`` (v3 ``c/0/1`` keys) or ``"v2"`` (``0.1`` keys).
    separator
        ``"/"`` or ``"."``.
    ndim
        The number of array dimensions (for parsing keys back).

    Examples
    --------
    >>> enc = ChunkKeyEncoding("default", "/", ndim=2)
    >>> enc.chunk_key((0, 12))
    'c/0/12'
    >>> enc.parse_chunk_key("c/0/12")
    (0, 12)
    >>> enc.parse_chunk_key("zarr.json") is None
    True
    >>> ChunkKeyEncoding("v2", ".", ndim=0).chunk_key(())
    '0'
    """

    __slots__ = ("_empty", "_format", "_match", "_prefix", "name", "ndim", "separator")

    def __init__(self, name: str, separator: str, ndim: int) -> None:
        if name not in _DEFAULT_SEPARATOR:
            raise UnsupportedExtensionError(
                f"unsupported chunk_key_encoding {name!r} (supported: 'default', 'v2')"
            )
        if separator not in ("/", "."):
            raise MetadataError(f"chunk key separator must be '/' or '.', got {separator!r}")
        self.name = name
        self.separator = separator
        self.ndim = ndim
        self._prefix = "c" + separator if name == "default" else ""
        self._empty = "c" if name == "default" else "0"
        template = self._prefix + separator.join(["{}"] * ndim) if ndim else self._empty
        self._format = template.format
        number = r"(0|[1-9][0-9]*)"
        pattern = re.escape(self._prefix) + re.escape(separator).join([number] * ndim)
        self._match = re.compile(pattern if ndim else re.escape(self._empty)).fullmatch

    @classmethod
    def from_json(cls, doc: Any, ndim: int, path: str | None = None) -> ChunkKeyEncoding:
        """Parse a v3 ``chunk_key_encoding`` value.

        Accepts the spec's ``{"name", "configuration": {"separator"}}``, a bare
        name, and zarr-python's flat ``{"name", "separator"}`` form.

        Examples
        --------
        >>> ChunkKeyEncoding.from_json({"name": "v2"}, ndim=1).separator
        '.'
        """
        with where(path):
            if isinstance(doc, str):
                doc = {"name": doc}
            if not isinstance(doc, Mapping) or not isinstance(doc.get("name"), str):
                raise MetadataError(f"chunk_key_encoding {doc!r} must be an object with a name")
            name = doc["name"]
            config = doc.get("configuration") or {}
            if not isinstance(config, Mapping):
                raise MetadataError(f"chunk_key_encoding configuration {config!r} is malformed")
            unknown = set(doc) - {"name", "configuration", "separator", "must_understand"}
            unknown |= set(config) - {"separator"}
            if unknown:
                raise MetadataError(
                    f"chunk_key_encoding {doc!r} has unknown keys {sorted(unknown)}"
                )
            if name not in _DEFAULT_SEPARATOR:
                raise UnsupportedExtensionError(
                    f"unsupported chunk_key_encoding {name!r} (supported: 'default', 'v2')"
                )
            separator = config.get("separator", doc.get("separator", _DEFAULT_SEPARATOR[name]))
            return cls(name, separator, ndim)

    def to_json(self) -> dict[str, Any]:
        """The v3 ``chunk_key_encoding`` value.

        Examples
        --------
        >>> ChunkKeyEncoding("default", "/", ndim=1).to_json()
        {'name': 'default', 'configuration': {'separator': '/'}}
        """
        return {"name": self.name, "configuration": {"separator": self.separator}}

    def chunk_key(self, coords: Sequence[int]) -> str:
        """The key of the chunk at grid coordinates ``coords``.

        Examples
        --------
        >>> ChunkKeyEncoding("v2", "/", ndim=3).chunk_key((1, 2, 3))
        '1/2/3'
        """
        if len(coords) != self.ndim:
            raise MetadataError(
                f"chunk coordinates {tuple(coords)} do not have {self.ndim} dimensions"
            )
        return self._format(*coords)

    def parse_chunk_key(self, key: str) -> tuple[int, ...] | None:
        """The grid coordinates of a chunk key, or None if ``key`` is no chunk key.

        Only keys this encoding writes parse (no leading zeros, one number per
        dimension), so ``chunk_key(parse_chunk_key(k)) == k``.

        Examples
        --------
        >>> ChunkKeyEncoding("v2", ".", ndim=2).parse_chunk_key("3.04") is None
        True
        >>> ChunkKeyEncoding("default", "/", ndim=0).parse_chunk_key("c")
        ()
        """
        match = self._match(key)
        return None if match is None else tuple(map(int, match.groups()))

    def _key(self) -> tuple[str, str, int]:
        return (self.name, self.separator, self.ndim)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChunkKeyEncoding) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"ChunkKeyEncoding({self.name!r}, {self.separator!r}, ndim={self.ndim})"


def _as_index(value: Any) -> int | None:
    """``value`` as an int if it is an integer (numpy ints too, never bools)."""
    if isinstance(value, bool | np.bool_):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def parse_shape(shape: Any, name: str = "shape") -> tuple[int, ...]:
    """A shape as a tuple of non-negative ints (an int is a 1-d shape).

    Examples
    --------
    >>> parse_shape([10, 0])
    (10, 0)
    >>> parse_shape(5)
    (5,)
    """
    single = _as_index(shape)
    if single is not None:
        shape = (single,)
    if isinstance(shape, str | bytes | Mapping) or not isinstance(shape, Sequence | np.ndarray):
        raise MetadataError(f"{name} must be a list of integers, got {shape!r}")
    out = tuple(_as_index(n) for n in shape)
    if any(n is None or n < 0 for n in out):
        raise MetadataError(f"{name} must be a list of non-negative integers, got {shape!r}")
    return out  # type: ignore[return-value]


def parse_chunk_shape(chunks: Any, shape: tuple[int, ...], name: str = "chunks") -> tuple[int, ...]:
    """A chunk shape matching ``shape``: one entry per dimension, each positive
    (zero only along a dimension of length zero, as the v3 spec allows).

    Examples
    --------
    >>> parse_chunk_shape([5, 5], (10, 0))
    (5, 5)
    """
    parsed = parse_shape(chunks, name)
    if len(parsed) != len(shape):
        raise MetadataError(
            f"{name} {list(parsed)} must have one entry per dimension of shape {list(shape)}"
        )
    for c, s in zip(parsed, shape, strict=True):
        if c == 0 and s != 0:
            raise MetadataError(f"{name} {list(parsed)} must be positive (shape {list(shape)})")
    return parsed


def parse_grid(shape: Any, chunks: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The shape and chunk shape of a new array (an int chunk applies to every
    dimension; chunks must be positive).

    Examples
    --------
    >>> parse_grid((10, 4), 2)
    ((10, 4), (2, 2))
    """
    shape = parse_shape(shape)
    if _as_index(chunks) is not None:
        chunks = (chunks,) * len(shape)
    chunks = parse_chunk_shape(chunks, shape)
    if 0 in chunks:
        raise MetadataError(f"chunks {list(chunks)} must be positive")
    return shape, chunks


def chunk_grid_shape(shape: Sequence[int], chunks: Sequence[int]) -> tuple[int, ...]:
    """The number of chunks along each dimension (``ceil(shape / chunks)``).

    Examples
    --------
    >>> chunk_grid_shape((10, 0, 7), (5, 3, 7))
    (2, 0, 1)
    """
    return tuple(-(-s // c) if c else 0 for s, c in zip(shape, chunks, strict=True))
