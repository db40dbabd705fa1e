"""Indexing: turn a selection into per-chunk projections.

Pure computation over ``shape`` and the regular chunk shape ``chunks``; no
I/O. Each indexer has ``shape`` (the result shape) and ``nchunks``, and
iterates :class:`ChunkProjection` values in increasing chunk order::

    out[p.out_selection] = chunk[p.chunk_selection]    # read
    chunk[p.chunk_selection] = value[p.out_selection]  # write

(``out.reshape(-1)`` / ``value.reshape(-1)`` for coordinate and mask
indexers). Stored chunks always have the full ``chunks`` shape; see
:mod:`zarrflow.indexing.common` for how edge chunks and
``is_complete_chunk`` are to be handled.

Examples
--------
>>> import numpy as np
>>> a = np.arange(10)
>>> out = np.empty(3, a.dtype)
>>> for p in BasicIndexer(slice(1, 8, 3), shape=(10,), chunks=(4,)):
...     chunk = a[p.chunk_coords[0] * 4 : (p.chunk_coords[0] + 1) * 4]
...     out[p.out_selection] = chunk[p.chunk_selection]
>>> out
array([1, 4, 7])
"""

from __future__ import annotations

from zarrflow.indexing.basic import BasicIndexer, DimIndexer, IntDimIndexer, SliceDimIndexer
from zarrflow.indexing.common import (
    ChunkProjection,
    DimProjection,
    chunk_extent,
    normalize_integer_selection,
    replace_ellipsis,
)
from zarrflow.indexing.coordinate import CoordinateIndexer, MaskIndexer
from zarrflow.indexing.orthogonal import ArrayDimIndexer, OrthogonalIndexer
from zarrflow.indexing.selection import (
    Indexer,
    SelectionKind,
    is_basic_selection,
    is_coordinate_selection,
    is_mask_selection,
    is_orthogonal_selection,
    make_indexer,
    selection_kind,
    slices_from_start_stop,
)

__all__ = [
    "ArrayDimIndexer",
    "BasicIndexer",
    "ChunkProjection",
    "CoordinateIndexer",
    "DimIndexer",
    "DimProjection",
    "Indexer",
    "IntDimIndexer",
    "MaskIndexer",
    "OrthogonalIndexer",
    "SelectionKind",
    "SliceDimIndexer",
    "chunk_extent",
    "is_basic_selection",
    "is_coordinate_selection",
    "is_mask_selection",
    "is_orthogonal_selection",
    "make_indexer",
    "normalize_integer_selection",
    "replace_ellipsis",
    "selection_kind",
    "slices_from_start_stop",
]
