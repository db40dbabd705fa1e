"""Basic selections: integers, slices (any step), ``Ellipsis`` and ``None``.

Each axis is projected once onto its chunks (a tuple of
:class:`~zarrflow.indexing.common.DimProjection`); the chunk projections are
the Cartesian product of those. Iteration runs entirely in C (products of
per-axis columns zipped into projections), about half a microsecond per chunk
whatever the selection.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

from zarrflow.indexing.common import (
    ChunkProjection,
    DimProjection,
    check_shape_and_chunks,
    is_integer,
    normalize_integer_selection,
    replace_ellipsis,
    selection_error,
)

__all__ = ["BasicIndexer", "DimIndexer", "IntDimIndexer", "SliceDimIndexer"]

#: the projection slot of a ``None`` (new) axis: no chunk axis, out index 0
_NEWAXIS_SLOT = (DimProjection(-1, None, 0, True),)


class DimIndexer:
    """One axis of a selection projected onto that axis's chunks.

    Attributes
    ----------
    dim_len, dim_chunk_len : int
        The axis length and its chunk length.
    nitems : int
        Number of elements selected along the axis.
    drops_axis : bool
        True for an integer index (the axis is absent from the result).
    projections : tuple of DimProjection
        One per chunk touched, in increasing chunk order.
    """

    __slots__ = ("dim_chunk_len", "dim_len", "nitems", "projections")
    drops_axis = False

    dim_len: int
    dim_chunk_len: int
    nitems: int
    projections: tuple[DimProjection, ...]

    @property
    def nchunks(self) -> int:
        """Number of chunks touched along this axis."""
        return len(self.projections)

    @property
    def is_complete(self) -> bool:
        """True when every touched chunk is covered completely along this axis."""
        return all(p.is_complete_chunk for p in self.projections)

    def __iter__(self) -> Iterator[DimProjection]:
        return iter(self.projections)


class IntDimIndexer(DimIndexer):
    """An integer index on one axis (negative values count from the end).

    Examples
    --------
    >>> list(IntDimIndexer(-1, 10, 4))
    [DimProjection(dim_chunk_ix=2, dim_chunk_sel=1, dim_out_sel=None, is_complete_chunk=False)]
    """

    __slots__ = ()
    drops_axis = True

    def __init__(
        self, dim_sel: Any, dim_len: int, dim_chunk_len: int, *, axis: int = 0, context: Any = None
    ) -> None:
        sel, shape = context if context is not None else (dim_sel, (dim_len,))
        i = normalize_integer_selection(dim_sel, dim_len, axis=axis, selection=sel, shape=shape)
        ix, local = divmod(i, dim_chunk_len)
        extent = min(dim_chunk_len, dim_len - ix * dim_chunk_len)
        self.dim_len, self.dim_chunk_len, self.nitems = dim_len, dim_chunk_len, 1
        self.projections = (DimProjection(ix, local, None, extent == 1),)


def _check_slice(dim_sel: slice, axis: int, context: tuple[Any, Any]) -> None:
    for name in ("start", "stop", "step"):
        value = getattr(dim_sel, name)
        if value is not None and not is_integer(value):
            problem = f"slice {name} {value!r} on axis {axis} is not an integer or None"
            raise selection_error(*context, problem)
    if dim_sel.step is not None and int(dim_sel.step) == 0:
        raise selection_error(*context, f"slice step on axis {axis} cannot be zero")


class SliceDimIndexer(DimIndexer):
    """A slice with any step on one axis.

    A negative step selects the same elements as a positive step read
    backwards: chunk selections always use a positive step and the out
    selections run backwards.

    Examples
    --------
    >>> dim = SliceDimIndexer(slice(2, 7), 10, 4)
    >>> [(p.dim_chunk_ix, p.dim_chunk_sel, p.dim_out_sel) for p in dim]
    [(0, slice(2, 4, 1), slice(0, 2, 1)), (1, slice(0, 3, 1), slice(2, 5, 1))]
    """

    __slots__ = ("_projections", "reverse", "start", "step", "stop")

    def __init__(
        self,
        dim_sel: slice,
        dim_len: int,
        dim_chunk_len: int,
        *,
        axis: int = 0,
        context: Any = None,
    ) -> None:
        _check_slice(dim_sel, axis, context if context is not None else (dim_sel, (dim_len,)))
        start, stop, step = dim_sel.indices(dim_len)
        nitems = len(range(start, stop, step))
        self.reverse = step < 0 and nitems > 0
        if step < 0:  # the same elements, walked forwards
            start, stop, step = start + (nitems - 1) * step, start + 1, -step
        self.start, self.stop, self.step = start, stop, step
        self.dim_len, self.dim_chunk_len, self.nitems = dim_len, dim_chunk_len, nitems
        self._projections: tuple[DimProjection, ...] | None = None if nitems else ()

    @property
    def nchunks(self) -> int:
        """Number of chunks touched, counted without projecting (O(1) on any axis)."""
        if not self.nitems:
            return 0
        if self.step >= self.dim_chunk_len:
            return self.nitems
        last = self.start + (self.nitems - 1) * self.step
        return last // self.dim_chunk_len - self.start // self.dim_chunk_len + 1

    @property
    def projections(self) -> tuple[DimProjection, ...]:  # type: ignore[override]
        """The projections, built on first use: an indexer costs nothing until iterated."""
        if self._projections is None:
            self._projections = tuple(self._project())
        return self._projections

    def _project(self) -> Iterator[DimProjection]:
        start, step, n, c = self.start, self.step, self.nitems, self.dim_chunk_len
        last = start + (n - 1) * step
        if step >= c:  # every element lies in its own chunk
            for j in range(n):
                ix, local = divmod(start + j * step, c)
                extent = min(c, self.dim_len - ix * c)
                yield self._projection(ix, slice(local, local + 1, 1), j, j + 1, extent == 1)
            return
        for ix in range(start // c, last // c + 1):
            offset = ix * c
            extent = min(c, self.dim_len - offset)
            first = start if start >= offset else start + -(-(offset - start) // step) * step
            chunk_stop = min(last + 1, offset + extent) - offset
            chunk_start = first - offset
            count = -(-(chunk_stop - chunk_start) // step)
            out_start = (first - start) // step
            complete = chunk_start == 0 and count == extent
            chunk_sel = slice(0, extent, 1) if complete else slice(chunk_start, chunk_stop, step)
            yield self._projection(ix, chunk_sel, out_start, out_start + count, complete)

    def _projection(
        self, ix: int, chunk_sel: slice, out_start: int, out_stop: int, complete: bool
    ) -> DimProjection:
        if not self.reverse:
            return DimProjection(ix, chunk_sel, slice(out_start, out_stop, 1), complete)
        n = self.nitems
        hi, lo = n - 1 - out_start, n - out_stop - 1
        return DimProjection(ix, chunk_sel, slice(hi, lo if lo >= 0 else None, -1), complete)


def _dim_indexer(
    dim_sel: Any, dim_len: int, dim_chunk_len: int, axis: int, context: tuple[Any, Any]
) -> DimIndexer:
    if isinstance(dim_sel, slice):
        return SliceDimIndexer(dim_sel, dim_len, dim_chunk_len, axis=axis, context=context)
    if is_integer(dim_sel):
        return IntDimIndexer(dim_sel, dim_len, dim_chunk_len, axis=axis, context=context)
    if isinstance(dim_sel, float):
        problem = f"index {dim_sel!r} on axis {axis} is a float; expected an integer"
    else:
        problem = (
            f"unsupported index {type(dim_sel).__name__} on axis {axis} for a basic selection; "
            "expected integers, slices, Ellipsis or None (use oindex/vindex for arrays)"
        )
    raise selection_error(*context, problem)


class BasicIndexer:
    """Project a basic selection onto a regular chunk grid.

    Parameters
    ----------
    selection : int, slice, Ellipsis, None or tuple of those
        Fewer entries than dimensions leave trailing axes whole.
    shape, chunks : sequence of int
        The array shape and its regular chunk shape.

    Attributes
    ----------
    shape : tuple of int
        The result shape (integer axes dropped, ``None`` axes of length 1).
    drop_axes : tuple of int
        Array axes indexed by an integer.
    dim_indexers : tuple of DimIndexer
        One per array axis, for callers that run their own loops.
    nchunks : int
        Number of projections the iteration yields.

    Examples
    --------
    >>> idx = BasicIndexer((slice(None), 5), shape=(6, 8), chunks=(4, 4))
    >>> idx.shape, idx.nchunks
    ((6,), 2)
    >>> next(iter(idx))
    ChunkProjection(chunk_coords=(0, 1), chunk_selection=(slice(0, 4, 1), 1), \
out_selection=(slice(0, 4, 1),), is_complete_chunk=False)
    """

    def __init__(self, selection: Any, shape: Sequence[int], chunks: Sequence[int]) -> None:
        shape, chunks = check_shape_and_chunks(shape, chunks)
        context = (selection, shape)
        slots: list[DimIndexer | tuple[DimProjection, ...]] = []
        axis_slots: list[int] = []
        kept_slots: list[int] = []
        dims: list[DimIndexer] = []
        out_shape: list[int] = []
        for dim_sel in replace_ellipsis(selection, shape):
            if dim_sel is None:
                kept_slots.append(len(slots))
                slots.append(_NEWAXIS_SLOT)
                out_shape.append(1)
                continue
            axis = len(dims)
            dim = _dim_indexer(dim_sel, shape[axis], chunks[axis], axis, context)
            if not dim.drops_axis:
                kept_slots.append(len(slots))
                out_shape.append(dim.nitems)
            axis_slots.append(len(slots))
            slots.append(dim)
            dims.append(dim)
        self.selection = selection
        self.array_shape, self.chunks = shape, chunks
        self.shape = tuple(out_shape)
        self.dim_indexers = tuple(dims)
        self.drop_axes = tuple(i for i, d in enumerate(dims) if d.drops_axis)
        self.nchunks = math.prod(d.nchunks for d in dims)
        # the per-axis projections are built on first iteration, so an indexer over
        # a huge grid costs nothing until (and unless) its chunks are visited
        self._layout = (tuple(slots), axis_slots, kept_slots)
        self._columns_cache: tuple[tuple[tuple, ...], ...] | None = None

    @property
    def is_complete(self) -> bool:
        """True when every projection is a complete chunk (no read needed on write)."""
        return self.nchunks == 0 or all(d.is_complete for d in self.dim_indexers)

    def __len__(self) -> int:
        return self.nchunks

    @property
    def projection_shape(self) -> tuple[int, ...]:
        """The shape ``out_selection`` indexes into: the result shape itself."""
        return self.shape

    def _columns(self) -> tuple[tuple[tuple, ...], ...]:
        if self._columns_cache is None:
            slots, axis_slots, kept_slots = self._layout
            resolved = [s if isinstance(s, tuple) else s.projections for s in slots]
            self._columns_cache = _columns(resolved, axis_slots, kept_slots)
        return self._columns_cache

    def __iter__(self) -> Iterator[ChunkProjection]:
        coords, chunk_sel, out_sel, complete = self._columns()
        partial = not all(all(c) for c in complete)
        # four Cartesian products walked in step and zipped into projections, all
        # in C: no Python bytecode runs per chunk (tuple.__new__ skips the
        # NamedTuple's Python-level __new__; the fields are already in order)
        fields = zip(
            itertools.product(*coords),
            itertools.product(*chunk_sel),
            itertools.product(*out_sel),
            (
                map(all, itertools.product(*complete))
                if partial
                else itertools.repeat(True, self.nchunks)
            ),
            strict=True,
        )
        return map(tuple.__new__, itertools.repeat(ChunkProjection), fields)


def _columns(
    slots: Sequence[tuple[DimProjection, ...]], axis_slots: Sequence[int], kept_slots: Sequence[int]
) -> tuple[tuple[tuple, ...], ...]:
    """Per-slot columns of chunk index, chunk selection, out selection and completeness.

    ``coords`` and ``chunk_sel`` take the array axes, ``out_sel`` the result axes
    and ``complete`` every slot. A slot missing from a column (a dropped integer
    axis, a new axis) holds exactly one projection, so the products of the
    columns run in step with the product of all the slots.
    """
    coords = tuple(tuple(p.dim_chunk_ix for p in slots[i]) for i in axis_slots)
    chunk_sel = tuple(tuple(p.dim_chunk_sel for p in slots[i]) for i in axis_slots)
    out_sel = tuple(tuple(p.dim_out_sel for p in slots[i]) for i in kept_slots)
    complete = tuple(tuple(p.is_complete_chunk for p in slot) for slot in slots)
    return coords, chunk_sel, out_sel, complete
