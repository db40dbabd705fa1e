"""Orthogonal selections (zarr's ``oindex``): each axis is indexed on its own.

Per axis an entry may be an integer, a slice, a 1-D integer array (unsorted,
repeated and negative values allowed) or a boolean mask as long as the axis.
The result is numpy's ``x[np.ix_(...)]``, with integer axes dropped.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from zarrflow.indexing.basic import DimIndexer, IntDimIndexer, SliceDimIndexer
from zarrflow.indexing.common import (
    ChunkProjection,
    DimProjection,
    check_shape_and_chunks,
    is_integer,
    replace_ellipsis,
    selection_error,
    tuple_getter,
)

__all__ = ["ArrayDimIndexer", "OrthogonalIndexer", "to_index_array"]


def to_index_array(dim_sel: Any, dim_len: int, *, axis: int = 0, context: Any = None) -> np.ndarray:
    """Turn one axis's integer array or boolean mask into in-bounds int64 indices.

    Raises :class:`SelectionError` for masks of the wrong length, indices out
    of bounds (after wrapping negatives) and arrays of other kinds.

    Examples
    --------
    >>> to_index_array([3, -1], 5)
    array([3, 4])
    >>> to_index_array(np.array([True, False, True]), 3)
    array([0, 2])
    """
    context = context if context is not None else (dim_sel, (dim_len,))
    arr = np.asarray(dim_sel)
    if arr.size == 0 and arr.dtype.kind not in "biu":
        arr = arr.astype(np.int64)
    if arr.dtype == bool:
        if arr.shape != (dim_len,):
            problem = f"boolean mask of shape {arr.shape} on axis {axis}; expected ({dim_len},)"
            raise selection_error(*context, problem)
        return np.flatnonzero(arr)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        problem = (
            f"unsupported {arr.dtype} array of shape {arr.shape} on axis {axis}; "
            "expected a 1-D integer array or boolean mask"
        )
        raise selection_error(*context, problem)
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < -dim_len) | (arr >= dim_len)
    if bad.any():
        value = int(arr[np.argmax(bad)])
        problem = f"index {value} is out of bounds for axis {axis} of length {dim_len}"
        raise selection_error(*context, problem)
    return np.where(arr < 0, arr + dim_len, arr)


def _run_counts(values: np.ndarray, step: int, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Per segment ``[start, stop)``, how many neighbours differ by exactly ``step``."""
    hits = np.diff(values) == step
    cum = np.concatenate(([0], np.cumsum(hits)))
    return cum[stops - 1] - cum[starts]


class ArrayDimIndexer(DimIndexer):
    """An integer array or boolean mask on one axis.

    Elements are grouped by chunk (a stable sort, so repeated indices keep
    their order and the last write wins as in numpy). A chunk's selection is a
    slice when its indices are consecutive, else an int64 array.

    Examples
    --------
    >>> [(p.dim_chunk_ix, p.dim_chunk_sel, p.dim_out_sel) for p in ArrayDimIndexer([5, 1], 8, 4)]
    [(0, slice(1, 2, 1), slice(1, 2, 1)), (1, slice(1, 2, 1), slice(0, 1, 1))]
    """

    __slots__ = ("order",)

    def __init__(
        self, dim_sel: Any, dim_len: int, dim_chunk_len: int, *, axis: int = 0, context: Any = None
    ) -> None:
        idx = to_index_array(dim_sel, dim_len, axis=axis, context=context)
        self.dim_len, self.dim_chunk_len, self.nitems = dim_len, dim_chunk_len, len(idx)
        self.order: np.ndarray | None = None
        if len(idx) > 1 and not bool(np.all(idx[1:] >= idx[:-1])):
            self.order = np.argsort(idx, kind="stable")
            idx = idx[self.order]
        self.projections = tuple(self._project(idx)) if len(idx) else ()

    def _project(self, idx: np.ndarray) -> Iterator[DimProjection]:
        c = self.dim_chunk_len
        chunk_ix = idx // c
        local = idx - chunk_ix * c
        bounds = np.flatnonzero(np.diff(chunk_ix)) + 1
        starts = np.concatenate(([0], bounds))
        stops = np.concatenate((bounds, [len(idx)]))
        lengths = stops - starts
        consecutive = _run_counts(local, 1, starts, stops) == lengths - 1
        order = self.order
        out_consecutive = (
            np.ones(len(starts), bool)
            if order is None
            else _run_counts(order, 1, starts, stops) == lengths - 1
        )
        rows = zip(
            chunk_ix[starts].tolist(),
            starts.tolist(),
            stops.tolist(),
            consecutive.tolist(),
            out_consecutive.tolist(),
            strict=True,
        )
        for ix, s, e, consec, out_consec in rows:
            extent = min(c, self.dim_len - ix * c)
            first = int(local[s])
            chunk_sel = slice(first, first + e - s, 1) if consec else local[s:e]
            if order is None:
                out_sel: Any = slice(s, e, 1)
            else:
                out_first = int(order[s])
                out_sel = slice(out_first, out_first + e - s, 1) if out_consec else order[s:e]
            complete = consec and first == 0 and e - s == extent
            yield DimProjection(ix, chunk_sel, out_sel, complete)


def _ix(entries: Sequence[Any], lengths: Sequence[int]) -> tuple[Any, ...]:
    """Like ``np.ix_`` over the non-integer entries; integers stay scalars.

    ``lengths`` are the result lengths of the non-integer entries, used to
    resolve slices whose stop is None.
    """
    m = len(lengths)
    out: list[Any] = []
    k = 0
    for entry in entries:
        if isinstance(entry, int):
            out.append(entry)
            continue
        arr = entry
        if isinstance(entry, slice):
            bounds = entry.indices(lengths[k]) if entry.stop is None else (entry.start, entry.stop)
            arr = np.arange(*bounds[:2], entry.step)
        out.append(arr.reshape((1,) * k + (-1,) + (1,) * (m - k - 1)))
        k += 1
    return tuple(out)


class OrthogonalIndexer:
    """Project an orthogonal selection onto a regular chunk grid.

    ``chunk_selection`` is already ``np.ix_``-combined where needed, so plain
    numpy indexing of a chunk gives the orthogonal result.

    Parameters
    ----------
    selection : tuple of int, slice, Ellipsis, integer array or boolean mask
    shape, chunks : sequence of int

    Attributes
    ----------
    shape : tuple of int
        Result shape (integer axes dropped).
    drop_axes : tuple of int
    dim_indexers : tuple of DimIndexer
    nchunks : int

    Examples
    --------
    >>> idx = OrthogonalIndexer(([3, 0], slice(None)), shape=(4, 2), chunks=(2, 2))
    >>> idx.shape, [p.chunk_coords for p in idx]
    ((2, 2), [(0, 0), (1, 0)])
    """

    def __init__(self, selection: Any, shape: Sequence[int], chunks: Sequence[int]) -> None:
        shape, chunks = check_shape_and_chunks(shape, chunks)
        context = (selection, shape)
        dims = []
        for axis, dim_sel in enumerate(replace_ellipsis(selection, shape)):
            dims.append(_orthogonal_dim(dim_sel, shape, chunks, axis, context))
        self.selection = selection
        self.array_shape, self.chunks = shape, chunks
        self.dim_indexers = tuple(dims)
        self.drop_axes = tuple(i for i, d in enumerate(dims) if d.drops_axis)
        kept = [i for i, d in enumerate(dims) if not d.drops_axis]
        self.shape = tuple(dims[i].nitems for i in kept)
        self.nchunks = math.prod(d.nchunks for d in dims)
        self._out_getter = tuple_getter(kept, len(dims))
        self._has_arrays = any(isinstance(d, ArrayDimIndexer) for d in dims)

    @property
    def is_complete(self) -> bool:
        """True when every projection is a complete chunk."""
        return self.nchunks == 0 or all(d.is_complete for d in self.dim_indexers)

    def __len__(self) -> int:
        return self.nchunks

    @property
    def projection_shape(self) -> tuple[int, ...]:
        """The shape ``out_selection`` indexes into: the result shape itself."""
        return self.shape

    def __iter__(self) -> Iterator[ChunkProjection]:
        if not self.dim_indexers:
            yield ChunkProjection((), (), (), True)
            return
        out_get = self._out_getter
        for combo in itertools.product(*(d.projections for d in self.dim_indexers)):
            coords, chunk_sel, out_sel, complete = zip(*combo, strict=True)
            if out_get is not None:
                out_sel = out_get(out_sel)
            if self._has_arrays:
                chunk_sel, out_sel = self._combine(chunk_sel, out_sel)
            yield ChunkProjection(coords, chunk_sel, out_sel, False not in complete)

    def _combine(self, chunk_sel: tuple, out_sel: tuple) -> tuple[tuple, tuple]:
        """Combine array entries ``np.ix_``-style so numpy indexing is orthogonal."""
        n_arrays = sum(isinstance(s, np.ndarray) for s in chunk_sel)
        if n_arrays > 1 or (n_arrays == 1 and self.drop_axes):
            chunk_sel = _ix(chunk_sel, self.shape)
        if sum(isinstance(s, np.ndarray) for s in out_sel) > 1:
            out_sel = _ix(out_sel, self.shape)
        return chunk_sel, out_sel


def _orthogonal_dim(
    dim_sel: Any,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    axis: int,
    context: tuple[Any, Any],
) -> DimIndexer:
    dim_len, dim_chunk_len = shape[axis], chunks[axis]
    if isinstance(dim_sel, slice):
        return SliceDimIndexer(dim_sel, dim_len, dim_chunk_len, axis=axis, context=context)
    if is_integer(dim_sel):
        return IntDimIndexer(dim_sel, dim_len, dim_chunk_len, axis=axis, context=context)
    if isinstance(dim_sel, np.ndarray | list | range):
        return ArrayDimIndexer(dim_sel, dim_len, dim_chunk_len, axis=axis, context=context)
    if dim_sel is None:
        problem = f"None (newaxis) on axis {axis} is not supported in an orthogonal selection"
    else:
        problem = (
            f"unsupported index {dim_sel!r} on axis {axis} for an orthogonal selection; "
            "expected integers, slices, Ellipsis, integer arrays or boolean masks"
        )
    raise selection_error(*context, problem)
