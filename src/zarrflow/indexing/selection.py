"""Classify a selection and build the matching indexer, as ``Array.__getitem__`` needs.

Routing follows zarr-python: basic selections (ints, slices, ``Ellipsis``,
``None``) go to :class:`BasicIndexer`; a boolean array of the full shape to
:class:`MaskIndexer`; a tuple of one integer array (or int) per axis, or a
lone integer array on a 1-D array, to :class:`CoordinateIndexer`; anything
else made of ints, slices, 1-D integer arrays and 1-D boolean masks is
orthogonal, so ``a[[0, 2]]`` on a 2-D array selects rows 0 and 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from zarrflow.indexing.basic import BasicIndexer
from zarrflow.indexing.common import is_integer, selection_error
from zarrflow.indexing.coordinate import CoordinateIndexer, MaskIndexer
from zarrflow.indexing.orthogonal import OrthogonalIndexer

__all__ = [
    "Indexer",
    "SelectionKind",
    "is_basic_selection",
    "is_coordinate_selection",
    "is_mask_selection",
    "is_orthogonal_selection",
    "make_indexer",
    "selection_kind",
    "slices_from_start_stop",
]

Indexer = BasicIndexer | OrthogonalIndexer | CoordinateIndexer | MaskIndexer
SelectionKind = Literal["basic", "orthogonal", "coordinate", "mask"]


def _as_tuple(selection: Any) -> tuple[Any, ...]:
    return selection if isinstance(selection, tuple) else (selection,)


def _array_kind(x: Any) -> tuple[str, int] | None:
    """``("i", ndim)`` / ``("b", ndim)`` for integer / bool array-likes, else None."""
    if isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, list):
        try:
            arr = np.asarray(x)
        except ValueError:  # ragged
            return None
        if arr.size == 0:
            return ("i", arr.ndim)
    else:
        return None
    kind = arr.dtype.kind
    if kind in "iu":
        return ("i", arr.ndim)
    return ("b", arr.ndim) if kind == "b" else None


def is_basic_selection(selection: Any) -> bool:
    """True for ints, slices, ``Ellipsis``, ``None`` or a tuple of those.

    Examples
    --------
    >>> is_basic_selection((1, slice(None), Ellipsis)), is_basic_selection([1, 2])
    (True, False)
    """
    return all(
        s is None or s is Ellipsis or isinstance(s, slice) or is_integer(s)
        for s in _as_tuple(selection)
    )


def is_mask_selection(selection: Any, shape: Sequence[int]) -> bool:
    """True for a boolean array (or 1-tuple of one) of exactly ``shape``.

    Examples
    --------
    >>> is_mask_selection(np.ones((2, 3), bool), (2, 3)), is_mask_selection([True], (2,))
    (True, False)
    """
    sel = _as_tuple(selection)
    if len(sel) != 1:
        return False
    (mask,) = sel
    if isinstance(mask, bool | np.bool_ | list | np.ndarray):
        arr = np.asarray(mask)
        return arr.dtype == bool and arr.shape == tuple(shape)
    return False


def is_coordinate_selection(selection: Any, shape: Sequence[int]) -> bool:
    """True for one integer array (or int) per axis with at least one array.

    On a 1-D array a lone integer array (any number of dims) also counts.

    Examples
    --------
    >>> is_coordinate_selection(([0, 1], [2, 2]), (3, 3)), is_coordinate_selection((0, 1), (3, 3))
    (True, False)
    """
    if len(shape) == 1 and not isinstance(selection, tuple):
        kind = _array_kind(selection)
        return kind is not None and kind[0] == "i"
    sel = _as_tuple(selection)
    if len(shape) == 0 or len(sel) != len(shape):
        return False
    kinds = [None if is_integer(s) else _array_kind(s) for s in sel]
    if not all(
        is_integer(s) or (k is not None and k[0] == "i") for s, k in zip(sel, kinds, strict=True)
    ):
        return False
    return any(k is not None for k in kinds)


def is_orthogonal_selection(selection: Any, shape: Sequence[int]) -> bool:
    """True for ints, slices, ``Ellipsis``, 1-D integer arrays and 1-D boolean masks.

    Examples
    --------
    >>> is_orthogonal_selection(([0, 2], slice(None)), (3, 3))
    True
    """
    for s in _as_tuple(selection):
        if s is Ellipsis or isinstance(s, slice) or is_integer(s):
            continue
        kind = _array_kind(s)
        if kind is None or kind[1] != 1:
            return False
    return len(shape) > 0


def selection_kind(selection: Any, shape: Sequence[int]) -> SelectionKind:
    """Which indexer ``a[selection]`` uses; :class:`SelectionError` if none.

    Examples
    --------
    >>> selection_kind((slice(None), 1), (4, 4)), selection_kind([1, 3], (4, 4))
    ('basic', 'orthogonal')
    >>> selection_kind(([1, 3], [0, 0]), (4, 4))
    'coordinate'
    """
    if is_basic_selection(selection):
        return "basic"
    if is_mask_selection(selection, shape):
        return "mask"
    if is_coordinate_selection(selection, shape):
        return "coordinate"
    if is_orthogonal_selection(selection, shape):
        return "orthogonal"
    problem = (
        "unsupported selection; expected ints, slices, Ellipsis, None, 1-D integer arrays "
        "or boolean masks per axis, one integer array per axis, or a boolean mask of the "
        "array's shape"
    )
    raise selection_error(selection, shape, problem)


def make_indexer(selection: Any, shape: Sequence[int], chunks: Sequence[int]) -> Indexer:
    """Build the indexer for ``a[selection]`` (see :func:`selection_kind`).

    Examples
    --------
    >>> type(make_indexer((0, [1, 2]), (3, 3), (2, 2))).__name__
    'CoordinateIndexer'
    >>> make_indexer(np.s_[::2], (5,), (2,)).shape
    (3,)
    """
    kind = selection_kind(selection, shape)
    if kind == "basic":
        return BasicIndexer(selection, shape, chunks)
    if kind == "mask":
        return MaskIndexer(selection, shape, chunks)
    if kind == "coordinate":
        return CoordinateIndexer(selection, shape, chunks)
    return OrthogonalIndexer(selection, shape, chunks)


def _per_axis(value: Any, name: str, ndim: int, shape: Sequence[int]) -> list[int | None]:
    is_seq = isinstance(value, Sequence) or (isinstance(value, np.ndarray) and value.ndim > 0)
    values = list(value) if is_seq else [value] * ndim
    if len(values) != ndim:
        problem = f"{name} has {len(values)} entries; expected {ndim} (one per axis)"
        raise selection_error(value, shape, problem)
    for v in values:
        if v is not None and not is_integer(v):
            raise selection_error(value, shape, f"{name} entry {v!r} is not an integer or None")
    return [None if v is None else int(v) for v in values]


def slices_from_start_stop(
    shape: Sequence[int],
    start: int | Sequence[int | None] | None = None,
    stop: int | Sequence[int | None] | None = None,
    step: int | Sequence[int | None] | None = None,
) -> tuple[slice, ...]:
    """Build the slices of a ``get_slice`` / ``set_slice`` call.

    Each of ``start``, ``stop`` and ``step`` is None (whole axis), one int
    applied to every axis, or a sequence with one int-or-None per axis. Values
    follow Python slice rules (negative counts from the end, any nonzero step).

    Examples
    --------
    >>> slices_from_start_stop((10, 10), start=(2, None), stop=(8, None), step=2)
    (slice(2, 8, 2), slice(None, None, 2))
    """
    ndim = len(shape)
    starts = _per_axis(start, "start", ndim, shape)
    stops = _per_axis(stop, "stop", ndim, shape)
    steps = _per_axis(step, "step", ndim, shape)
    if 0 in steps:
        raise selection_error(step, shape, "slice step cannot be zero")
    return tuple(slice(a, b, c) for a, b, c in zip(starts, stops, steps, strict=True))
