"""Changing an array's shape: ``resize`` and ``append``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zarrflow.chunks.locks import chunk_lock
from zarrflow.errors import ReadOnlyError, ValueShapeError

if TYPE_CHECKING:
    from zarrflow.hierarchy.array import Array

__all__ = ["append_array", "resize_array"]


def resize_array(array: Array, new_shape: tuple[int, ...]) -> None:
    """Give ``array`` a new shape, cleaning up the chunks the shrink leaves behind.

    Stored chunks wholly outside the new shape are deleted; a stored chunk cut
    by a new, smaller edge has its out-of-bounds part reset to the fill value,
    so that growing the array again never shows stale data.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-resize", shape=(4,), chunks=(2,), dtype="i2")
    >>> a[:] = 5
    >>> resize_array(a, (3,)); resize_array(a, (4,))
    >>> a[:].tolist()
    [5, 5, 5, 0]
    """
    if array.read_only:
        raise ReadOnlyError(f"array {array.name!r} is read-only: cannot resize")
    old_shape = array.shape
    if len(new_shape) != len(old_shape) or any(s < 0 for s in new_shape):
        raise ValueShapeError(
            f"array {array.name!r}: new shape {new_shape} must have {len(old_shape)} "
            "non-negative dimensions"
        )
    chunks = array.shards or array.chunks  # the stored objects' grid
    io = array._io
    prefix = io.prefix
    for key in list(array.stored_chunk_keys()):
        coords = array.metadata.parse_chunk_key(key[len(prefix) :])
        starts = [c * n for c, n in zip(coords, chunks, strict=True)]
        if any(start >= s for start, s in zip(starts, new_shape, strict=True)):
            array.store.delete(key)
            continue
        cut = tuple(
            slice(s - start, None) if start + n > s and s < old else None
            for start, n, s, old in zip(starts, chunks, new_shape, old_shape, strict=True)
        )
        if any(c is not None for c in cut):
            _reset_beyond(io, coords, cut)
    array._write_metadata(array.metadata.replace(shape=tuple(new_shape)))


def _reset_beyond(io, coords: tuple[int, ...], cut: tuple[slice | None, ...]) -> None:
    """Set the part of one chunk past the new edge (per axis) to the fill value."""
    with chunk_lock(io.store.url, io.key(coords)):
        chunk = io.read_chunk(coords)
        if not chunk.flags.writeable:
            chunk = chunk.copy()
        for axis, sl in enumerate(cut):
            if sl is not None:
                index = (slice(None),) * axis + (sl,)
                chunk[index] = io.fill
        io.write_chunk(coords, chunk)


def append_array(array: Array, data: np.ndarray, axis: int = 0) -> tuple[int, ...]:
    """Grow ``array`` along ``axis`` and write ``data`` into the new part.

    Examples
    --------
    >>> import numpy as np, zarrflow as zf
    >>> a = zf.create("memory://doc-append", shape=(2, 2), chunks=(2, 2), dtype="i4")
    >>> append_array(a, np.ones((3, 2), "i4"))
    (5, 2)
    """
    shape = array.shape
    ndim = len(shape)
    if not -ndim <= axis < ndim:
        raise ValueShapeError(f"array {array.name!r}: axis {axis} is out of range for {ndim}-d")
    axis %= ndim
    expected = shape[:axis] + shape[axis + 1 :]
    got = data.shape[:axis] + data.shape[axis + 1 :]
    if data.ndim != ndim or got != expected:
        raise ValueShapeError(
            f"array {array.name!r}: cannot append data of shape {data.shape} along axis "
            f"{axis} to an array of shape {shape}"
        )
    array._prepare_value(data, data.shape)  # dtype check before anything changes
    new_shape = (*shape[:axis], shape[axis] + data.shape[axis], *shape[axis + 1 :])
    resize_array(array, new_shape)
    region = tuple(
        slice(shape[axis], new_shape[axis]) if d == axis else slice(None) for d in range(ndim)
    )
    array[region] = data
    return new_shape
