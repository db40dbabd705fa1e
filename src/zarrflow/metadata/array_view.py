"""The read view both array metadata classes share (v2 and v3 alike).

:class:`~zarrflow.metadata.v2.ArrayMetadataV2` and
:class:`~zarrflow.metadata.v3.ArrayMetadataV3` differ in their fields and
documents; what is derived from ``shape``, ``chunks`` and the chunk key
encoding (set as ``_encoding`` by each ``__post_init__``) is the same, and
lives here once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from zarrflow.metadata.chunk_keys import chunk_grid_shape
from zarrflow.metadata.json import json_dumps

__all__ = ["ArrayMetadataView"]


class ArrayMetadataView:
    """Derived properties and chunk keys of a dataclass with ``shape``, ``chunks``, ``_encoding``.

    Examples
    --------
    >>> from zarrflow.metadata import ArrayMetadataV3
    >>> meta = ArrayMetadataV3.create(shape=(4, 5), chunks=2, dtype="uint8")
    >>> meta.ndim, meta.chunk_grid_shape
    (2, (2, 3))
    """

    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return len(self.shape)

    @property
    def chunk_grid_shape(self) -> tuple[int, ...]:
        """The number of chunks along each dimension."""
        return chunk_grid_shape(self.shape, self.chunks)

    def chunk_key(self, coords: Sequence[int]) -> str:
        """The key (relative to the array) of the chunk at grid ``coords``.

        Examples
        --------
        >>> from zarrflow.metadata import ArrayMetadataV2, ArrayMetadataV3
        >>> ArrayMetadataV2.create(shape=(), chunks=(), dtype="u1").chunk_key(())
        '0'
        >>> ArrayMetadataV3.create(shape=(), chunks=(), dtype="int8").chunk_key(())
        'c'
        """
        return self._encoding.chunk_key(coords)  # type: ignore[attr-defined,no-any-return]

    def parse_chunk_key(self, key: str) -> tuple[int, ...] | None:
        """The grid coordinates of a chunk key, or None for other keys.

        Examples
        --------
        >>> from zarrflow.metadata import ArrayMetadataV2, ArrayMetadataV3
        >>> meta = ArrayMetadataV2.create(shape=(4, 4), chunks=2, dtype="u1",
        ...                               dimension_separator="/")
        >>> meta.parse_chunk_key("1/0"), meta.parse_chunk_key(".zarray")
        ((1, 0), None)
        >>> meta = ArrayMetadataV3.create(shape=(4, 4), chunks=2, dtype="int8")
        >>> meta.parse_chunk_key("c/1/0"), meta.parse_chunk_key("zarr.json")
        ((1, 0), None)
        """
        return self._encoding.parse_chunk_key(key)  # type: ignore[attr-defined,no-any-return]

    def to_json(self) -> dict[str, dict[str, Any]]:  # pragma: no cover - each format's own
        raise NotImplementedError

    def to_documents(self) -> dict[str, bytes]:
        """The documents to store, file name -> strict JSON bytes.

        Examples
        --------
        >>> from zarrflow.metadata import ArrayMetadataV2, ArrayMetadataV3
        >>> docs = ArrayMetadataV2.create(shape=2, chunks=2, dtype="f4",
        ...                               fill_value=float("nan")).to_documents()
        >>> b'"fill_value": "NaN"' in docs[".zarray"]
        True
        >>> meta = ArrayMetadataV3.create(shape=2, chunks=2, dtype="float64",
        ...                               fill_value="-Infinity")
        >>> b'"fill_value": "-Infinity"' in meta.to_documents()["zarr.json"]
        True
        """
        return {name: json_dumps(doc, name) for name, doc in self.to_json().items()}

    def _replaced(self, changes: dict[str, Any]) -> Any:
        """``dataclasses.replace`` after refusing names that are not fields."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
