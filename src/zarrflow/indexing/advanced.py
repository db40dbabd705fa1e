"""numpy's advanced indexing: integer arrays (and masks) mixed with slices.

numpy broadcasts every integer array of a selection together (a boolean
array counts as its ``nonzero()`` arrays, and once any array is present an
integer counts as a 0-d array); the broadcast dimensions replace the indexed
axes *in place* when the array entries are adjacent in the selection, and go
*first* when a slice or ``None`` separates them::

    x.shape == (5, 6, 7)
    x[[1, 2, 3], [1, 2, 3]].shape       == (3, 7)     # adjacent: in place
    x[[1, 2, 3], :, [1, 2, 3]].shape    == (3, 6)     # separated: first
    x[:, [[0], [1]], [2, 3]].shape      == (5, 2, 2)  # broadcast (2, 1) with (2,)

:class:`AdvancedIndexer` reproduces exactly that. The broadcast points are
grouped by chunk over the indexed axes (as :class:`CoordinateIndexer` does)
and combined with the slices' chunks. The projections index a result whose
broadcast dimensions are flattened into one (``projection_shape``): reshaping
the numpy-shaped result to it is a view, so reads fill it in place.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from zarrflow.indexing.basic import SliceDimIndexer
from zarrflow.indexing.common import (
    ChunkProjection,
    as_index,
    broadcast_problem,
    check_shape_and_chunks,
    is_integer,
    selection_error,
)
from zarrflow.indexing.coordinate import group_points

__all__ = ["AdvancedIndexer", "Slot", "parse_numpy_selection"]


class Slot(NamedTuple):
    """One entry of a selection, after ``Ellipsis`` is expanded.

    ``kind`` is ``"new"`` (``None``), ``"slice"``, ``"int"``, ``"array"`` (an
    integer array, one axis), ``"mask"`` (a boolean array over ``len(axes)``
    axes) or ``"ellipsis"`` (an ``Ellipsis`` standing for no axis, kept
    because it still separates array entries). ``value`` is the slice, the
    int, the numpy array, or None / Ellipsis.
    """

    kind: str
    axes: tuple[int, ...]
    value: Any


def _entry_array(entry: Any, selection: Any, shape: tuple[int, ...], at: int) -> np.ndarray:
    try:
        arr = np.asarray(entry)
    except ValueError:  # a ragged list
        arr = None
    if arr is not None and arr.size == 0 and arr.dtype.kind not in "biu":
        arr = arr.astype(np.int64)
    if arr is None or arr.dtype.kind not in "biu":
        what = "a ragged list" if arr is None else f"a {arr.dtype} array"
        problem = f"index {at} is {what}; expected integers, slices, integer or boolean arrays"
        raise selection_error(selection, shape, problem)
    if arr.dtype == bool and arr.ndim == 0:
        problem = f"index {at} is a boolean scalar; use a boolean array of the axis' length"
        raise selection_error(selection, shape, problem)
    return arr


def _classify(entry: Any, selection: Any, shape: tuple[int, ...], at: int) -> tuple[str, Any]:
    if entry is None:
        return "new", None
    if entry is Ellipsis:
        return "ellipsis", None
    if isinstance(entry, slice):
        return "slice", entry
    if is_integer(entry):
        return "int", int(entry)
    if isinstance(entry, list | tuple | range | np.ndarray) and not isinstance(entry, bool):
        arr = _entry_array(entry, selection, shape, at)
        return ("mask" if arr.dtype == bool else "array"), arr
    problem = (
        f"unsupported selection entry {entry!r} at position {at}; expected integers, slices, "
        "Ellipsis, "
        "None, integer arrays or boolean arrays"
    )
    raise selection_error(selection, shape, problem)


def _width(kind: str, value: Any) -> int:
    """How many array axes an entry takes."""
    if kind == "mask":
        return value.ndim
    return 0 if kind in ("new", "ellipsis") else 1


def parse_numpy_selection(selection: Any, shape: Sequence[int]) -> list[Slot]:
    """Split ``selection`` into :class:`Slot` values as numpy reads it.

    ``Ellipsis`` (and missing trailing entries) become full slices; a boolean
    array takes as many axes as it has dimensions and must match their
    lengths. Array-likes (a zarrflow Array, a dask array) are converted first.

    Parameters
    ----------
    selection : Any
        What was passed to ``a[...]``.
    shape : sequence of int
        The array's shape.

    Examples
    --------
    >>> [(s.kind, s.axes) for s in parse_numpy_selection((..., [0, 1]), (4, 5, 6))]
    [('slice', (0,)), ('slice', (1,)), ('array', (2,))]
    """
    shape = tuple(shape)
    entries = as_index(selection)
    entries = entries if isinstance(entries, tuple) else (entries,)
    parsed = [_classify(e, selection, shape, at) for at, e in enumerate(entries)]
    if sum(kind == "ellipsis" for kind, _ in parsed) > 1:
        raise selection_error(selection, shape, "an index can only have a single ellipsis")
    used = sum(_width(kind, value) for kind, value in parsed)
    if used > len(shape):
        problem = f"too many indices: {used} given for an array of {len(shape)} dimensions"
        raise selection_error(selection, shape, problem)
    fill: list[tuple[str, Any]] = [("slice", slice(None))] * (len(shape) - used)
    at = next((i for i, (kind, _) in enumerate(parsed) if kind == "ellipsis"), len(parsed))
    if at < len(parsed) and not fill:
        # an Ellipsis standing for no axis still separates array entries for numpy
        fill = [("ellipsis", Ellipsis)]
    parsed = parsed[:at] + fill + parsed[at + 1 :]
    slots: list[Slot] = []
    axis = 0
    for kind, value in parsed:
        n = _width(kind, value)
        axes = tuple(range(axis, axis + n))
        if kind == "mask" and value.shape != tuple(shape[a] for a in axes):
            problem = (
                f"boolean array of shape {value.shape} on axes {axes}; expected the shape of "
                f"those axes, {tuple(shape[a] for a in axes)}"
            )
            raise selection_error(selection, shape, problem)
        slots.append(Slot(kind, axes, value))
        axis += n
    return slots


def _point_arrays(
    slots: Sequence[Slot], selection: Any, shape: tuple[int, ...]
) -> tuple[list[int], tuple[int, ...], list[np.ndarray]]:
    """The indexed axes, the broadcast shape, and the in-bounds flat coordinates."""
    axes: list[int] = []
    arrays: list[np.ndarray] = []
    for slot in slots:
        if slot.kind == "mask":
            axes.extend(slot.axes)
            arrays.extend(np.nonzero(slot.value))
        elif slot.kind in ("int", "array"):
            axes.append(slot.axes[0])
            arrays.append(np.asarray(slot.value))
    try:
        broadcast = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        problem = broadcast_problem([a.shape for a in arrays])
        raise selection_error(selection, shape, problem) from None
    coords = []
    for axis, arr in zip(axes, arrays, strict=True):
        n = shape[axis]
        flat = np.broadcast_to(arr, broadcast).reshape(-1).astype(np.int64, copy=False)
        if flat.size and (int(flat.min()) < -n or int(flat.max()) >= n):
            value = int(flat.min()) if int(flat.min()) < -n else int(flat.max())
            problem = f"index {value} is out of bounds for axis {axis} of length {n}"
            raise selection_error(selection, shape, problem)
        coords.append(np.where(flat < 0, flat + n, flat))
    return axes, broadcast, coords


def _layout(slots: Sequence[Slot]) -> list[int]:
    """The result's dimensions in order, as slot numbers; -1 stands for the broadcast."""
    advanced = [k for k, s in enumerate(slots) if s.kind in ("int", "array", "mask")]
    adjacent = advanced == list(range(advanced[0], advanced[-1] + 1))
    rest = [k for k, s in enumerate(slots) if s.kind in ("slice", "new", "ellipsis")]
    if not adjacent:
        return [-1, *rest]
    first = advanced[0]
    return [k for k in rest if k < first] + [-1] + [k for k in rest if k > first]


class AdvancedIndexer:
    """Project numpy's advanced (mixed array and slice) selection onto chunks.

    Each touched chunk is yielded once, grouped by the chunks of the indexed
    axes; no projection is complete (a write reads, merges and writes, so
    repeated points keep numpy's last-write-wins).

    Parameters
    ----------
    selection : tuple
        Integers, slices, ``Ellipsis``, ``None``, integer arrays of any
        dimensions (broadcast together) and boolean arrays, as numpy takes them.
    shape, chunks : sequence of int

    Attributes
    ----------
    shape : tuple of int
        numpy's result shape.
    projection_shape : tuple of int
        The result with the broadcast dimensions flattened into one; the
        projections' ``out_selection`` index an array of this shape.
    nchunks : int

    Examples
    --------
    >>> x = np.arange(125).reshape(5, 5, 5)
    >>> idx = AdvancedIndexer(([1, 2, 3], [1, 2, 3]), shape=x.shape, chunks=(2, 2, 2))
    >>> idx.shape, idx.projection_shape
    ((3, 5), (3, 5))
    >>> out = np.empty(idx.projection_shape, x.dtype)
    >>> for p in idx:
    ...     block = tuple(slice(c * 2, c * 2 + 2) for c in p.chunk_coords)
    ...     out[p.out_selection] = x[block][p.chunk_selection]
    >>> bool((out.reshape(idx.shape) == x[[1, 2, 3], [1, 2, 3]]).all())
    True
    """

    def __init__(self, selection: Any, shape: Sequence[int], chunks: Sequence[int]) -> None:
        shape, chunks = check_shape_and_chunks(shape, chunks)
        context = (selection, shape)
        self.selection = selection
        self.array_shape, self.chunks = shape, chunks
        slots = parse_numpy_selection(selection, shape)
        self._slots = slots
        axes, broadcast, coords = _point_arrays(slots, selection, shape)
        self._point_axes = axes
        self._groups = group_points(coords, [shape[a] for a in axes], [chunks[a] for a in axes])
        self._slices = {
            k: SliceDimIndexer(
                s.value, shape[s.axes[0]], chunks[s.axes[0]], axis=s.axes[0], context=context
            )
            for k, s in enumerate(slots)
            if s.kind == "slice"
        }
        self._layout = _layout(slots)
        dims = {
            k: (self._slices[k].nitems if k in self._slices else 1) for k in self._layout if k >= 0
        }
        npoints = math.prod(broadcast)
        # an Ellipsis standing for no axis is a None in the chunk selections (numpy
        # then keeps the broadcast dimensions first) and an axis of 1 in projection_shape
        self.shape = tuple(
            itertools.chain.from_iterable(
                broadcast if k < 0 else () if slots[k].kind == "ellipsis" else (dims[k],)
                for k in self._layout
            )
        )
        self.projection_shape = tuple(npoints if k < 0 else dims[k] for k in self._layout)
        self.nchunks = len(self._groups.chunk_coords) * math.prod(
            d.nchunks for d in self._slices.values()
        )

    def __len__(self) -> int:
        return self.nchunks

    @property
    def is_complete(self) -> bool:
        """Always False: every chunk is read, merged and written (a write may repeat points)."""
        return self.nchunks == 0

    def __iter__(self) -> Iterator[ChunkProjection]:
        groups, slots = self._groups, self._slots
        slice_keys = list(self._slices)
        ndim = len(self.array_shape)
        for g, point_coords in enumerate(groups.chunk_coords):
            s, e = groups.bounds[g], groups.bounds[g + 1]
            local = [loc[s:e] for loc in groups.local]
            points_out = slice(s, e, 1) if groups.order is None else groups.order[s:e]
            for combo in itertools.product(*(self._slices[k].projections for k in slice_keys)):
                by_slot = dict(zip(slice_keys, combo, strict=True))
                coords = [0] * ndim
                for axis, c in zip(self._point_axes, point_coords, strict=True):
                    coords[axis] = c
                chunk_sel: list[Any] = []
                picks = iter(local)
                for k, slot in enumerate(slots):
                    if slot.kind in ("new", "ellipsis"):
                        chunk_sel.append(None)  # an axis of 1 in the chunk's result
                    elif slot.kind == "slice":
                        coords[slot.axes[0]] = by_slot[k].dim_chunk_ix
                        chunk_sel.append(by_slot[k].dim_chunk_sel)
                    else:
                        chunk_sel.extend(next(picks) for _ in slot.axes)
                out_sel = tuple(
                    points_out
                    if k < 0
                    else by_slot[k].dim_out_sel
                    if k in by_slot
                    else slice(0, 1, 1)
                    for k in self._layout
                )
                yield ChunkProjection(tuple(coords), tuple(chunk_sel), out_sel, False)
