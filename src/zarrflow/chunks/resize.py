"""Changing an array's shape, on the chunk side: what a new shape leaves behind.

:func:`resize_chunks` clears the chunks a shrink leaves outside the array;
:func:`append_shape` works out the shape and region an ``append`` writes.
The metadata itself is the caller's (:meth:`zarrflow.Array.resize`): this
module knows an engine, never an Array.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zarrflow.chunks.cached import CachedChunkIO
from zarrflow.chunks.engine import ChunkEngine
from zarrflow.errors import ReadOnlyError, ValueShapeError
from zarrflow.indexing import ChunkProjection

__all__ = ["append_shape", "resize_chunks"]


def resize_chunks(engine: ChunkEngine, new_shape: Sequence[int]) -> tuple[int, ...]:
    """Clean up the chunks a change to ``new_shape`` leaves behind; returns the new shape.

    Stored chunks wholly outside the new shape are deleted; a stored chunk cut
    by a new, smaller edge has its out-of-bounds part reset to the fill value,
    so that growing the array again never shows stale data. The caller then
    writes the new metadata.

    Parameters
    ----------
    engine
        The array's chunk engine (its current shape is the old one).
    new_shape
        One non-negative size per dimension.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-resize", shape=(4,), chunks=(3,), dtype="i2")
    >>> a[:] = 5
    >>> resize_chunks(a.engine, (2,))
    (2,)
    >>> a.engine.read_chunk((0,)).tolist(), a.nchunks_initialized
    ([5, 5, 0], 1)
    """
    name, old_shape = engine.name, engine.shape
    new_shape = tuple(int(s) for s in new_shape)
    if engine.store.read_only:
        raise ReadOnlyError(f"array {name!r} is read-only: cannot resize")
    if len(new_shape) != len(old_shape) or any(s < 0 for s in new_shape):
        raise ValueShapeError(
            f"array {name!r}: new shape {new_shape} must have {len(old_shape)} "
            "non-negative dimensions"
        )
    chunks = engine.chunk_shape
    for coords in engine.stored_chunk_coords():
        starts = [c * n for c, n in zip(coords, chunks, strict=True)]
        if any(start >= s for start, s in zip(starts, new_shape, strict=True)):
            key = engine.key(coords)
            engine.store.delete(key)
            if isinstance(engine, CachedChunkIO):  # not even a max_age cache keeps it
                engine.cache.drop(engine.store.url, key)
            continue
        cut = tuple(
            slice(s - start, None) if start + n > s and s < old else None
            for start, n, s, old in zip(starts, chunks, new_shape, old_shape, strict=True)
        )
        if any(c is not None for c in cut):
            _reset_beyond(engine, coords, cut)
    return new_shape


def _reset_beyond(engine: ChunkEngine, coords: tuple[int, ...], cut: tuple) -> None:
    """Set the part of one chunk past the new edge (per axis) to the fill value.

    One partial write per cut axis, through the engine's own read-modify-write.
    """
    ndim = len(cut)
    value = np.full(engine.chunk_shape, engine.fill, dtype=engine.dtype)
    projections = [
        ChunkProjection(coords, sel, sel, False)
        for axis, sl in enumerate(cut)
        if sl is not None
        for sel in [(slice(None),) * axis + (sl,) + (slice(None),) * (ndim - axis - 1)]
    ]
    engine.raise_failures(engine.write_from(value, projections))


def append_shape(
    name: str, shape: Sequence[int], data_shape: Sequence[int], axis: int = 0
) -> tuple[tuple[int, ...], tuple[slice, ...]]:
    """The shape after appending ``data_shape`` along ``axis``, and the region it fills.

    Examples
    --------
    >>> append_shape("a", (2, 2), (3, 2))
    ((5, 2), (slice(2, 5, None), slice(None, None, None)))
    """
    shape, data_shape = tuple(shape), tuple(data_shape)
    ndim = len(shape)
    if not -ndim <= axis < ndim:
        raise ValueShapeError(f"array {name!r}: axis {axis} is out of range for {ndim}-d")
    axis %= ndim
    expected = shape[:axis] + shape[axis + 1 :]
    got = data_shape[:axis] + data_shape[axis + 1 :]
    if len(data_shape) != ndim or got != expected:
        raise ValueShapeError(
            f"array {name!r}: cannot append data of shape {data_shape} along axis "
            f"{axis} to an array of shape {shape}"
        )
    new_shape = (*shape[:axis], shape[axis] + data_shape[axis], *shape[axis + 1 :])
    region = tuple(
        slice(shape[axis], new_shape[axis]) if d == axis else slice(None) for d in range(ndim)
    )
    return new_shape, region
