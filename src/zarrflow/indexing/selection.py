"""Classify a selection and build the matching indexer, as ``Array.__getitem__`` needs.

``a[...]`` gives exactly numpy's result. Basic selections (ints, slices,
``Ellipsis``, ``None``) go to :class:`BasicIndexer`; a boolean array of the
full shape to :class:`MaskIndexer`; integers and arrays on every axis to
:class:`CoordinateIndexer` (points, broadcast together); one 1-D integer
array or mask among slices and integers to :class:`OrthogonalIndexer` when
numpy's result is the orthogonal one (``a[[0, 2]]`` on a 2-D array selects
rows 0 and 2); every other mix of arrays and slices to
:class:`AdvancedIndexer`, which follows numpy's broadcasting and placement
rules (so ``x[[1, 2, 3], [1, 2, 3]]`` on a 5x5x5 array has shape (3, 5)).
``a.oindex`` and ``a.vindex`` keep zarr's orthogonal and point meanings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from zarrflow.errors import AllocationError
from zarrflow.indexing.advanced import AdvancedIndexer, Slot, parse_numpy_selection
from zarrflow.indexing.basic import BasicIndexer
from zarrflow.indexing.common import as_index, is_integer, selection_error
from zarrflow.indexing.coordinate import CoordinateIndexer, MaskIndexer
from zarrflow.indexing.orthogonal import OrthogonalIndexer

__all__ = [
    "Indexer",
    "SelectionKind",
    "allocate_result",
    "is_basic_selection",
    "is_coordinate_selection",
    "is_mask_selection",
    "is_orthogonal_selection",
    "make_indexer",
    "numpy_route",
    "selection_kind",
    "slices_from_start_stop",
]

Indexer = BasicIndexer | OrthogonalIndexer | CoordinateIndexer | MaskIndexer | AdvancedIndexer
SelectionKind = Literal["basic", "orthogonal", "coordinate", "mask", "advanced"]


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


def numpy_route(slots: Sequence[Slot]) -> SelectionKind:
    """Which indexer gives numpy's result for a parsed non-basic selection.

    A boolean array over every axis is a ``"mask"``; arrays and integers on
    every axis (no slice, no ``None``) are ``"coordinate"`` points; one 1-D
    integer array or mask among slices and integers is ``"orthogonal"`` where
    numpy places its dimension where the orthogonal result has it; anything
    else is numpy's mixed ``"advanced"`` form.

    Examples
    --------
    >>> numpy_route(parse_numpy_selection(([1, 2], [1, 2]), (5, 5, 5)))
    'advanced'
    >>> numpy_route(parse_numpy_selection((0, slice(None), [1, 2]), (5, 5, 5)))
    'advanced'
    >>> numpy_route(parse_numpy_selection((slice(None), 0, [1, 2]), (5, 5, 5)))
    'orthogonal'
    """
    kinds = [s.kind for s in slots]
    if kinds == ["mask"] and len(slots[0].axes) > 0:
        return "mask"
    if not any(k in ("slice", "new") for k in kinds):
        return "coordinate"
    arrays = [k for k, kind in enumerate(kinds) if kind in ("array", "mask")]
    if "new" in kinds or len(arrays) != 1 or np.ndim(slots[arrays[0]].value) != 1:
        return "advanced"
    advanced = [k for k, kind in enumerate(kinds) if kind in ("int", "array", "mask")]
    adjacent = advanced == list(range(advanced[0], advanced[-1] + 1))
    if adjacent or "slice" not in kinds[: arrays[0]]:
        return "orthogonal"
    return "advanced"


def selection_kind(selection: Any, shape: Sequence[int]) -> SelectionKind:
    """Which indexer gives numpy's ``x[selection]``; :class:`SelectionError` if none.

    Examples
    --------
    >>> selection_kind((slice(None), 1), (4, 4)), selection_kind([1, 3], (4, 4))
    ('basic', 'orthogonal')
    >>> selection_kind(([1, 3], [0, 0]), (4, 4)), selection_kind(([1, 3], [0, 0]), (4, 4, 4))
    ('coordinate', 'advanced')
    """
    selection = as_index(selection)
    if is_basic_selection(selection):
        return "basic"
    if is_mask_selection(selection, shape):
        return "mask"
    return numpy_route(parse_numpy_selection(selection, shape))


def _numpy_indexer(selection: Any, shape: Sequence[int], chunks: Sequence[int]) -> Indexer:
    if is_basic_selection(selection):  # the common case: nothing to convert
        return BasicIndexer(selection, shape, chunks)
    selection = as_index(selection)
    if is_basic_selection(selection):
        return BasicIndexer(selection, shape, chunks)
    if is_mask_selection(selection, shape):
        return MaskIndexer(selection, shape, chunks)
    slots = parse_numpy_selection(selection, shape)
    kind = numpy_route(slots)
    slots = [slot for slot in slots if slot.kind != "ellipsis"]
    if kind == "mask":
        return MaskIndexer(slots[0].value, shape, chunks)
    if kind == "coordinate":
        per_axis: list[Any] = []
        for slot in slots:
            per_axis.extend(np.nonzero(slot.value) if slot.kind == "mask" else (slot.value,))
        return CoordinateIndexer(tuple(per_axis), shape, chunks)
    if kind == "orthogonal":
        return OrthogonalIndexer(tuple(slot.value for slot in slots), shape, chunks)
    return AdvancedIndexer(selection, shape, chunks)


def make_indexer(
    selection: Any, shape: Sequence[int], chunks: Sequence[int], kind: str = "numpy"
) -> Indexer:
    """Build the indexer for a selection.

    Parameters
    ----------
    selection : Any
        Ints, slices, ``Ellipsis``, ``None``, integer or boolean arrays, or
        array-likes (a zarrflow Array, a dask array) converted with
        :func:`numpy.asarray`.
    shape, chunks : sequence of int
        The array shape and its regular chunk shape.
    kind : {"numpy", "orthogonal", "vindex"}
        ``"numpy"`` (``a[...]``): exactly numpy's result, routed by
        :func:`selection_kind`. ``"orthogonal"`` (``a.oindex[...]``): each axis
        indexed on its own. ``"vindex"`` (``a.vindex[...]``): a boolean mask of
        the array's shape, else one integer array per axis (points).

    Examples
    --------
    >>> type(make_indexer((0, [1, 2]), (3, 3), (2, 2))).__name__
    'CoordinateIndexer'
    >>> make_indexer(np.s_[::2], (5,), (2,)).shape
    (3,)
    >>> make_indexer(([0, 1], [0, 1]), (3, 3), (2, 2), kind="orthogonal").shape
    (2, 2)
    """
    if kind == "numpy":
        return _numpy_indexer(selection, shape, chunks)
    selection = as_index(selection)
    if kind == "orthogonal":
        return OrthogonalIndexer(selection, shape, chunks)
    if kind == "vindex":
        if is_mask_selection(selection, shape):
            return MaskIndexer(selection, shape, chunks)
        return CoordinateIndexer(selection, shape, chunks)
    raise ValueError(f"kind must be 'numpy', 'orthogonal' or 'vindex', not {kind!r}")


def _format_bytes(n: int) -> str:
    units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    size, unit = float(n), 0
    while size >= 1024 and unit < len(units) - 1:
        size, unit = size / 1024, unit + 1
    return f"{n} bytes" if unit == 0 else f"{n} bytes ({size:.1f} {units[unit]})"


def allocate_result(indexer: Indexer, dtype: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The empty result of a read, and the view of it the projections fill.

    Returns ``(out, target)`` with ``out`` of numpy's result shape and
    ``target = out.reshape(indexer.projection_shape)`` (a view). A result
    numpy cannot allocate raises :class:`~zarrflow.errors.AllocationError`
    at once, before any chunk is touched.

    Parameters
    ----------
    indexer : Indexer
        The selection's indexer.
    dtype : numpy.dtype
        The array's data type.
    name : str
        The array's name, for the error message.

    Examples
    --------
    >>> out, target = allocate_result(make_indexer(([0, 1], [0, 1]), (3, 3, 3), (2, 2, 2)),
    ...                               np.dtype("i4"), "a")
    >>> out.shape, target.shape
    ((2, 3), (2, 3))
    >>> try:
    ...     allocate_result(make_indexer(np.s_[:], (10**18,), (10**6,)), np.dtype("f8"), "big")
    ... except AllocationError as e:
    ...     print(e)  # doctest: +ELLIPSIS
    array 'big': the result of shape (1000000000000000000,) (float64) needs ...: too large...
    """
    dtype = np.dtype(dtype)
    try:
        out = np.empty(indexer.shape, dtype=dtype)
    except (MemoryError, ValueError):
        nbytes = math.prod(indexer.shape) * dtype.itemsize
        raise AllocationError(
            f"array {name!r}: the result of shape {tuple(indexer.shape)} ({dtype}) needs "
            f"{_format_bytes(nbytes)}: too large to allocate; select less or read chunk by "
            "chunk (chunk_stream)"
        ) from None
    return out, out.reshape(indexer.projection_shape)


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
