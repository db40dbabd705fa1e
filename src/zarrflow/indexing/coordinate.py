"""Point selections: coordinate arrays (zarr's ``vindex``) and boolean masks.

Points are grouped by chunk with one stable sort of their raveled chunk ids,
so the work is vectorised whatever the number of points; only the loop over
touched chunks runs in Python. ``out_selection`` is a flat index into the
raveled result ``out.reshape(-1)``: a slice when the chunk's points are
contiguous in the result, else an int64 array.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from zarrflow.indexing.common import (
    ChunkProjection,
    broadcast_problem,
    check_shape_and_chunks,
    is_integer,
    selection_error,
)

__all__ = ["CoordinateIndexer", "MaskIndexer", "PointGroups", "group_points"]


class PointGroups(NamedTuple):
    """In-bounds points grouped by chunk (see :func:`group_points`).

    Chunk ``k`` (at ``chunk_coords[k]``) holds the points ``bounds[k]:bounds[k+1]``
    of the sorted order; ``local`` are their chunk-local coordinates (one array
    per axis, in sorted order) and ``order[j]`` is sorted point ``j``'s position
    among the given points (None when they were already in chunk order).
    """

    order: np.ndarray | None
    local: tuple[np.ndarray, ...]
    bounds: list[int]
    chunk_coords: list[tuple[int, ...]]
    counts_full: list[bool]


def group_points(
    coords: Sequence[np.ndarray], shape: Sequence[int], chunks: Sequence[int]
) -> PointGroups:
    """Group in-bounds point coordinates (one int64 array per axis) by chunk.

    One stable sort of the raveled chunk ids, so repeated points keep their
    order (the last write wins, as in numpy). ``counts_full[k]`` says whether
    chunk ``k`` has as many points as in-bounds elements.

    Parameters
    ----------
    coords : sequence of numpy.ndarray
        Non-negative, in-bounds coordinates, one 1-D array per axis.
    shape, chunks : sequence of int
        The array shape and regular chunk shape (chunk lengths >= 1).

    Examples
    --------
    >>> g = group_points([np.array([5, 1, 6])], (8,), (4,))
    >>> g.chunk_coords, g.bounds, g.order.tolist()
    ([(0,), (1,)], [0, 1, 3], [1, 0, 2])
    """
    npoints = len(coords[0]) if len(coords) else 0
    if npoints == 0:
        return PointGroups(None, (), [0], [], [])
    grid = tuple(-(-s // c) for s, c in zip(shape, chunks, strict=True))
    chunk_ix, local = zip(
        *(np.divmod(co, c) for co, c in zip(coords, chunks, strict=True)), strict=True
    )
    ids = chunk_ix[0] if len(grid) == 1 else np.ravel_multi_index(chunk_ix, grid)
    order = None
    if npoints > 1 and not bool(np.all(ids[1:] >= ids[:-1])):
        # a stable sort keeps repeated points in order (the last write wins);
        # small chunk ids take numpy's radix sort
        keys = ids.astype(np.uint16) if math.prod(grid) <= 2**16 else ids
        order = np.argsort(keys, kind="stable")
        ids = ids[order]
        local = [loc[order] for loc in local]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(ids)) + 1))
    bounds = [*starts.tolist(), npoints]
    unique_ids = np.unravel_index(ids[starts], grid)
    chunk_coords = list(zip(*(u.tolist() for u in unique_ids), strict=True))
    extent_size = np.ones(len(starts), np.int64)
    for u, n, c in zip(unique_ids, shape, chunks, strict=True):
        extent_size *= np.minimum(c, n - u * c)
    full = (np.diff(bounds) == extent_size).tolist()
    return PointGroups(order, tuple(local), bounds, chunk_coords, full)


class _PointIndexer:
    """Group in-bounds point coordinates by chunk; shared by both indexers."""

    shape: tuple[int, ...]
    array_shape: tuple[int, ...]
    chunks: tuple[int, ...]
    #: True when no point can repeat (masks), so a full count means complete
    _unique_points = False

    def _group(self, coords: Sequence[np.ndarray]) -> None:
        groups = group_points(coords, self.array_shape, self.chunks)
        self._order = groups.order
        self._local = groups.local
        self._bounds = groups.bounds
        self._chunk_coords = groups.chunk_coords
        self._full = groups.counts_full

    @property
    def projection_shape(self) -> tuple[int, ...]:
        """The shape ``out_selection`` indexes into: the flat result ``(size,)``."""
        return (math.prod(self.shape),)

    @property
    def nchunks(self) -> int:
        """Number of chunks holding at least one selected point."""
        return len(self._chunk_coords)

    def __len__(self) -> int:
        return self.nchunks

    def _is_complete(self, k: int, chunk_sel: tuple[np.ndarray, ...]) -> bool:
        """Do chunk ``k``'s points take each in-bounds element exactly once?"""
        if not self._full[k] or self._unique_points:
            return self._full[k]
        flat = np.ravel_multi_index(chunk_sel, self.chunks)
        return len(np.unique(flat)) == len(flat)

    def __iter__(self) -> Iterator[ChunkProjection]:
        order, local, bounds = self._order, self._local, self._bounds
        for k, coords in enumerate(self._chunk_coords):
            s, e = bounds[k], bounds[k + 1]
            chunk_sel = tuple(loc[s:e] for loc in local)
            out_sel = slice(s, e, 1) if order is None else order[s:e]
            complete = self._is_complete(k, chunk_sel)
            if complete and len(local) == 1:
                chunk_sel, out_sel = _identity_order(chunk_sel[0], out_sel)
            yield ChunkProjection(coords, chunk_sel, out_sel, complete)


def _identity_order(local: np.ndarray, out_sel: slice | np.ndarray) -> tuple[tuple, Any]:
    """A complete 1-D chunk's points as the identity slice, out selection permuted."""
    if len(local) > 1 and not bool(np.all(local[1:] > local[:-1])):
        perm = np.argsort(local)
        flat = np.arange(out_sel.start, out_sel.stop) if isinstance(out_sel, slice) else out_sel
        out_sel = flat[perm]
    return (slice(0, len(local), 1),), out_sel


def _coordinate_arrays(selection: Any, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Check and broadcast coordinate arrays; one entry per axis."""
    sel = selection if isinstance(selection, tuple) else (selection,)
    if len(shape) == 0 or len(sel) != len(shape):
        problem = f"coordinate selection needs one integer array per axis ({len(shape)} axes)"
        raise selection_error(selection, shape, problem)
    arrays = []
    for axis, entry in enumerate(sel):
        arr = (
            np.asarray(entry) if is_integer(entry) or isinstance(entry, list | np.ndarray) else None
        )
        if arr is not None and arr.size == 0 and arr.dtype.kind == "f":
            arr = arr.astype(np.int64)
        if arr is None or arr.dtype.kind not in "iu":
            problem = f"unsupported index {entry!r} on axis {axis}; expected an integer array"
            raise selection_error(selection, shape, problem)
        arrays.append(arr)
    try:
        return np.broadcast_arrays(*arrays)
    except ValueError:
        problem = broadcast_problem([a.shape for a in arrays])
        raise selection_error(selection, shape, problem) from None


class CoordinateIndexer(_PointIndexer):
    """Project a coordinate selection (one integer array per axis) onto chunks.

    The arrays are broadcast together; point ``k`` is
    ``tuple(arr.flat[k] for arr in arrays)`` and the result has the broadcast
    shape, as numpy's ``x[tuple(arrays)]``.

    Parameters
    ----------
    selection : tuple of integer arrays (or ints)
    shape, chunks : sequence of int

    Examples
    --------
    >>> idx = CoordinateIndexer(([0, 5, 1], [1, 1, 0]), shape=(6, 2), chunks=(4, 2))
    >>> idx.shape, [(p.chunk_coords, p.out_selection.tolist()) for p in idx]
    ((3,), [((0, 0), [0, 2]), ((1, 0), [1])])
    """

    def __init__(self, selection: Any, shape: Sequence[int], chunks: Sequence[int]) -> None:
        shape, chunks = check_shape_and_chunks(shape, chunks)
        self.selection = selection
        self.array_shape, self.chunks = shape, chunks
        arrays = _coordinate_arrays(selection, shape)
        self.shape = arrays[0].shape
        coords = []
        for axis, (arr, n) in enumerate(zip(arrays, shape, strict=True)):
            flat = arr.reshape(-1).astype(np.int64, copy=False)
            low, high = (int(flat.min()), int(flat.max())) if flat.size else (0, -1)
            if low < -n or high >= n:
                value = low if low < -n else high
                problem = f"index {value} is out of bounds for axis {axis} of length {n}"
                raise selection_error(selection, shape, problem)
            coords.append(np.where(flat < 0, flat + n, flat) if low < 0 else flat)
        self._group(coords)


class MaskIndexer(_PointIndexer):
    """Project a boolean mask of the array's full shape onto chunks.

    The result is 1-D, the selected elements in C order, as numpy's ``x[mask]``.

    Examples
    --------
    >>> mask = np.array([[True, False], [False, True]])
    >>> idx = MaskIndexer(mask, shape=(2, 2), chunks=(1, 2))
    >>> idx.shape, [p.chunk_coords for p in idx]
    ((2,), [(0, 0), (1, 0)])
    """

    _unique_points = True

    def __init__(self, mask: Any, shape: Sequence[int], chunks: Sequence[int]) -> None:
        shape, chunks = check_shape_and_chunks(shape, chunks)
        self.selection = mask
        self.array_shape, self.chunks = shape, chunks
        arr = mask[0] if isinstance(mask, tuple) and len(mask) == 1 else mask
        arr = np.asarray(arr) if isinstance(arr, list | np.ndarray | np.bool_ | bool) else None
        if arr is None or arr.dtype != bool or arr.shape != shape:
            got = "not an array" if arr is None else f"{arr.dtype} array of shape {arr.shape}"
            problem = f"mask is {got}; expected a bool array of shape {shape}"
            raise selection_error(mask, shape, problem)
        self._zero_d = shape == ()
        if self._zero_d:
            self.shape = (int(arr),)
            self._group([])
            self._chunk_coords = [()] if arr else []
        else:
            self.shape = (int(np.count_nonzero(arr)),)
            self._group(np.nonzero(arr))

    def __iter__(self) -> Iterator[ChunkProjection]:
        if self._zero_d:  # a 0-d chunk: a new axis makes it 1-D
            yield from (
                ChunkProjection((), (None,), slice(0, 1, 1), True) for _ in self._chunk_coords
            )
            return
        yield from super().__iter__()
