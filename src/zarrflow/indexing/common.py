"""Values and helpers shared by every indexer.

A *projection* says how one chunk takes part in a selection: which chunk
(``chunk_coords``), which of its elements (``chunk_selection``), and where they
go in the result (``out_selection``). Reads do
``out[out_selection] = chunk[chunk_selection]``; writes do
``chunk[chunk_selection] = value[out_selection]``.

Edge chunks and complete chunks
-------------------------------
A stored chunk always has the full ``chunks`` shape, even where the array's
``shape`` is not a multiple of ``chunks`` (the ragged edge). A
``chunk_selection`` only ever touches the *in-bounds* part of a chunk, which is
``tuple(slice(0, n) for n in chunk_extent(chunk_coords, shape, chunks))``;
the rest of a stored edge chunk holds the fill value and is never selected.

``is_complete_chunk`` is True exactly when ``chunk_selection`` takes every
in-bounds element of the chunk once (no element missed, none repeated). A
write then need not read the old chunk. The array layer must:

* write a complete chunk from a fresh buffer: when
  ``part = value[out_selection]`` has shape ``chunks`` the part *is* the new
  chunk (the selection is then the identity ``(slice(0, c, 1), ...)``, for
  every indexer); otherwise (an edge chunk, a dropped integer axis or a flat
  point selection) fill a ``chunks``-shaped buffer with the fill value,
  assign ``buf[chunk_selection] = part`` and encode the whole buffer. Never
  encode a part smaller than ``chunks``.
* read a complete chunk straight into the result only when
  ``view = out[out_selection]`` is C-contiguous with ``view.shape == chunks``
  (so never for an edge chunk or a reversed slice): decode into ``view``.
  Otherwise decode into a scratch chunk (or, for a batch of small chunks, the
  codec's own buffer) and copy ``chunk[chunk_selection]``.
* read-modify-write every incomplete chunk (a missing stored chunk reads as
  the fill value).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from zarrflow.errors import MetadataError, SelectionError

__all__ = [
    "ChunkProjection",
    "DimProjection",
    "as_index",
    "broadcast_problem",
    "check_shape_and_chunks",
    "chunk_extent",
    "describe_selection",
    "is_bool_array",
    "is_integer",
    "is_integer_array",
    "normalize_integer_selection",
    "replace_ellipsis",
    "selection_error",
    "tuple_getter",
]


class ChunkProjection(NamedTuple):
    """How one chunk takes part in a selection.

    Attributes
    ----------
    chunk_coords : tuple of int
        The chunk's position in the chunk grid.
    chunk_selection : tuple
        Index into the (full ``chunks``-shaped) stored chunk; plain numpy
        indexing gives the elements in result order.
    out_selection : tuple or numpy.ndarray or slice
        Index into the result. Coordinate and mask indexers give a flat index
        into ``out.reshape(-1)``.
    is_complete_chunk : bool
        True when the selection takes every in-bounds element of the chunk
        exactly once (see the module notes on edge chunks).

    Examples
    --------
    >>> p = ChunkProjection((0, 1), (slice(0, 2),), (slice(2, 4),), False)
    >>> p.chunk_coords
    (0, 1)
    """

    chunk_coords: tuple[int, ...]
    chunk_selection: tuple[Any, ...]
    out_selection: Any
    is_complete_chunk: bool


class DimProjection(NamedTuple):
    """How one chunk along one axis takes part in a selection.

    ``dim_out_sel`` is None for an integer (dropped) axis.

    Examples
    --------
    >>> DimProjection(3, slice(0, 4, 1), slice(12, 16, 1), True).dim_chunk_ix
    3
    """

    dim_chunk_ix: int
    dim_chunk_sel: Any
    dim_out_sel: Any
    is_complete_chunk: bool


_PLAIN_ENTRIES = (
    slice,
    int,
    float,
    str,
    bool,
    np.integer,
    np.bool_,
    np.ndarray,
    list,
    range,
    type(Ellipsis),
    type(None),
)


def as_index(selection: Any) -> Any:
    """Turn array-like index entries (a zarrflow Array, a dask array) into numpy arrays.

    Anything with ``__array__`` that is not already a numpy array, list or
    scalar is converted with :func:`numpy.asarray` (which reads a zarrflow
    Array, and computes a dask array), so it indexes like the numpy array it
    stands for. Other entries are returned unchanged.

    Parameters
    ----------
    selection : Any
        A selection or a tuple of per-axis entries.

    Examples
    --------
    >>> import dask.array as da
    >>> as_index((slice(None), da.from_array(np.array([2, 0]))))
    (slice(None, None, None), array([2, 0]))
    """
    if isinstance(selection, tuple):
        return tuple(as_index(s) for s in selection)
    if isinstance(selection, _PLAIN_ENTRIES) or not hasattr(selection, "__array__"):
        return selection
    return np.asarray(selection)


def describe_selection(selection: Any) -> str:
    """A short, readable rendering of a selection for error messages.

    Examples
    --------
    >>> describe_selection((1, slice(None, 5)))
    '(1, slice(None, 5, None))'
    >>> describe_selection(np.zeros(100, dtype=bool))
    'bool array of shape (100,)'
    """
    if isinstance(selection, np.ndarray) and selection.size > 8:
        return f"{selection.dtype} array of shape {selection.shape}"
    if isinstance(selection, tuple):
        inner = ", ".join(describe_selection(s) for s in selection)
        return f"({inner},)" if len(selection) == 1 else f"({inner})"
    text = repr(selection)
    return text if len(text) <= 120 else text[:117] + "..."


def broadcast_problem(shapes: Sequence[tuple[int, ...]]) -> str:
    """The message for integer index arrays that cannot be broadcast together.

    Examples
    --------
    >>> broadcast_problem([(3,), (2,)])[:56]
    'integer arrays of shapes (3,), (2,) cannot be broadcast '
    """
    listed = ", ".join(str(tuple(s)) for s in shapes)
    return (
        f"integer arrays of shapes {listed} cannot be broadcast together: a[...] and "
        "a.vindex[...] pair them element by element (as numpy does); to index each axis "
        "on its own use a.oindex[...]"
    )


def selection_error(selection: Any, shape: Sequence[int], problem: str) -> SelectionError:
    """Build a :class:`SelectionError` naming the selection and array shape.

    Examples
    --------
    >>> str(selection_error(7, (5,), "index 7 is out of bounds for axis 0 of length 5"))
    'index 7 is out of bounds for axis 0 of length 5; selection 7 on array of shape (5,)'
    """
    where = f"selection {describe_selection(selection)} on array of shape {tuple(shape)}"
    return SelectionError(f"{problem}; {where}")


def check_shape_and_chunks(shape: Sequence[int], chunks: Sequence[int]) -> tuple[tuple, tuple]:
    """Validate an array ``shape`` and regular chunk shape, returning int tuples.

    A chunk length of 0 is accepted along an axis of length 0 (zarr-python
    writes ``chunks=(0, 3)`` for an empty axis) and returned as 1.

    Examples
    --------
    >>> check_shape_and_chunks([10, 3], (4, 3))
    ((10, 3), (4, 3))
    >>> check_shape_and_chunks((0, 3), (0, 3))
    ((0, 3), (1, 3))
    """
    shape_t = tuple(operator.index(s) for s in shape)
    chunks_t = tuple(operator.index(c) for c in chunks)
    if len(shape_t) != len(chunks_t):
        raise MetadataError(f"chunks {chunks_t} do not match the dimensions of shape {shape_t}")
    if any(s < 0 for s in shape_t) or any(
        c < 0 or (c == 0 and s != 0) for s, c in zip(shape_t, chunks_t, strict=True)
    ):
        raise MetadataError(
            f"invalid shape {shape_t} / chunks {chunks_t}: expected sizes >= 0 and chunk sizes "
            ">= 1 (0 only along an axis of length 0)"
        )
    # a zero chunk length (zarr-python writes one for an empty axis) selects nothing:
    # any positive length gives the same (empty) projections without dividing by zero
    return shape_t, tuple(c or 1 for c in chunks_t)


def chunk_extent(
    chunk_coords: Sequence[int], shape: Sequence[int], chunks: Sequence[int]
) -> tuple[int, ...]:
    """The in-bounds shape of a chunk; smaller than ``chunks`` at the ragged edge.

    Examples
    --------
    >>> chunk_extent((0, 2), (10, 10), (4, 4))
    (4, 2)
    """
    return tuple(min(c, s - i * c) for i, s, c in zip(chunk_coords, shape, chunks, strict=True))


def is_integer(x: Any) -> bool:
    """True for a Python or numpy integer (not bool) or a 0-d integer array.

    Examples
    --------
    >>> is_integer(3), is_integer(np.int8(3)), is_integer(True), is_integer(3.0)
    (True, True, False, False)
    """
    if isinstance(x, bool | np.bool_):
        return False
    if isinstance(x, int | np.integer):
        return True
    return isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "iu"


def is_integer_array(x: Any, ndim: int | None = None) -> bool:
    """True for an integer ndarray (or a non-empty list of ints) of ``ndim`` dims.

    Examples
    --------
    >>> is_integer_array(np.array([1, 2])), is_integer_array([1, 2]), is_integer_array([])
    (True, True, False)
    """
    if isinstance(x, list) and x and all(is_integer(v) for v in x):
        return ndim in (None, 1)
    if isinstance(x, np.ndarray) and x.dtype.kind in "iu":
        return ndim is None or x.ndim == ndim
    return False


def is_bool_array(x: Any, ndim: int | None = None) -> bool:
    """True for a boolean ndarray (or a non-empty list of bools) of ``ndim`` dims.

    Examples
    --------
    >>> is_bool_array(np.array([True, False])), is_bool_array([True]), is_bool_array([1])
    (True, True, False)
    """
    if isinstance(x, list) and x and all(isinstance(v, bool | np.bool_) for v in x):
        return ndim in (None, 1)
    if isinstance(x, np.ndarray) and x.dtype == bool:
        return ndim is None or x.ndim == ndim
    return False


def normalize_integer_selection(
    index: Any, dim_len: int, *, axis: int = 0, selection: Any = None, shape: Any = None
) -> int:
    """Wrap a negative index and check it is in ``[0, dim_len)``.

    Raises :class:`SelectionError` naming ``selection`` and ``shape`` (when
    given) if the index is not an integer or is out of bounds.

    Examples
    --------
    >>> normalize_integer_selection(-1, 5)
    4
    """
    where = (index if selection is None else selection, (dim_len,) if shape is None else shape)
    if not is_integer(index):
        raise selection_error(*where, f"index {index!r} on axis {axis} is not an integer")
    i = int(index)
    if i < 0:
        i += dim_len
    if not 0 <= i < dim_len:
        problem = f"index {int(index)} is out of bounds for axis {axis} of length {dim_len}"
        raise selection_error(*where, problem)
    return i


def replace_ellipsis(selection: Any, shape: Sequence[int]) -> tuple[Any, ...]:
    """Make ``selection`` a tuple with one entry per axis (``None`` entries aside).

    An ``Ellipsis`` expands to full slices, and missing trailing entries become
    full slices. Raises :class:`SelectionError` for two ellipses or too many
    entries.

    Examples
    --------
    >>> replace_ellipsis((Ellipsis, 1), (2, 3, 4))
    (slice(None, None, None), slice(None, None, None), 1)
    >>> replace_ellipsis(0, (2, 3))
    (0, slice(None, None, None))
    """
    sel = selection if isinstance(selection, tuple) else (selection,)
    n_ellipsis = sum(1 for s in sel if s is Ellipsis)
    if n_ellipsis > 1:
        raise selection_error(selection, shape, "an index can only have a single ellipsis")
    n_axes = sum(1 for s in sel if s is not Ellipsis and s is not None)
    if n_axes > len(shape):
        problem = f"too many indices: {n_axes} given for an array of {len(shape)} dimensions"
        raise selection_error(selection, shape, problem)
    fill = (slice(None),) * (len(shape) - n_axes)
    if n_ellipsis:
        at = next(i for i, s in enumerate(sel) if s is Ellipsis)
        return sel[:at] + fill + sel[at + 1 :]
    return sel + fill


def tuple_getter(indices: Sequence[int], length: int) -> Callable[[tuple], tuple] | None:
    """A fast function picking ``indices`` out of a tuple of ``length`` items.

    Returns None when it would be the identity.

    Examples
    --------
    >>> tuple_getter([0, 2], 3)(("a", "b", "c"))
    ('a', 'c')
    >>> tuple_getter([0, 1], 2) is None
    True
    """
    indices = tuple(indices)
    if indices == tuple(range(length)):
        return None
    if not indices:
        return lambda _t: ()
    if len(indices) == 1:
        (only,) = indices
        return lambda t: (t[only],)
    return operator.itemgetter(*indices)
