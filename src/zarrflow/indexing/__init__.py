"""Indexing: turn a selection into per-chunk projections.

Pure computation over ``shape`` and the regular chunk shape ``chunks``; no
I/O. Each indexer has ``shape`` (numpy's result shape), ``projection_shape``
and ``nchunks``, and iterates :class:`ChunkProjection` values::

    target = out.reshape(indexer.projection_shape)        # a view of the result
    target[p.out_selection] = chunk[p.chunk_selection]    # read
    chunk[p.chunk_selection] = value[p.out_selection]     # write (value reshaped alike)

``projection_shape`` is the result shape for basic and orthogonal
selections, ``(size,)`` for points and masks, and the result with numpy's
broadcast dimensions flattened into one for :class:`AdvancedIndexer`.
Indexers are lazy: building one costs what the selection's own arrays cost,
never a pass over the chunk grid, so ``shape`` of ``x[:]`` on a huge array is
known at once. Stored chunks always have the full ``chunks`` shape; see
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

from zarrflow.indexing.advanced import AdvancedIndexer, Slot, parse_numpy_selection
from zarrflow.indexing.basic import BasicIndexer, DimIndexer, IntDimIndexer, SliceDimIndexer
from zarrflow.indexing.common import (
    ChunkProjection,
    DimProjection,
    as_index,
    chunk_extent,
    normalize_integer_selection,
    replace_ellipsis,
)
from zarrflow.indexing.coordinate import CoordinateIndexer, MaskIndexer, PointGroups, group_points
from zarrflow.indexing.orthogonal import ArrayDimIndexer, OrthogonalIndexer
from zarrflow.indexing.selection import (
    Indexer,
    SelectionKind,
    allocate_result,
    is_basic_selection,
    is_coordinate_selection,
    is_mask_selection,
    is_orthogonal_selection,
    make_indexer,
    numpy_route,
    selection_kind,
    slices_from_start_stop,
)

__all__ = [
    "AdvancedIndexer",
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
    "PointGroups",
    "SelectionKind",
    "SliceDimIndexer",
    "Slot",
    "allocate_result",
    "as_index",
    "chunk_extent",
    "group_points",
    "is_basic_selection",
    "is_coordinate_selection",
    "is_mask_selection",
    "is_orthogonal_selection",
    "make_indexer",
    "normalize_integer_selection",
    "numpy_route",
    "parse_numpy_selection",
    "replace_ellipsis",
    "selection_kind",
    "slices_from_start_stop",
]
