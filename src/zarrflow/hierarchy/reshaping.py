"""Shape changes of an array: ``resize`` and ``append``, compare-and-swaps on the stored shape.

:class:`~zarrflow.Array` inherits them from :class:`ShapeChanges`. They use
the array's public ``store``, ``path``, ``zarr_format``, ``name``,
``read_only``, ``shape``, ``engine`` and ``chunk_cache``, plus two hooks of
the array: ``_metadata_changed`` (the node's, after new metadata is stored)
and ``_prepare_value`` (the dtype check of a written value).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from zarrflow.chunks import open_engine
from zarrflow.chunks.resize import append_shape, resize_chunks
from zarrflow.errors import ReadOnlyError, StoreError
from zarrflow.hierarchy.metadata_update import update_metadata
from zarrflow.metadata.load import load_node

__all__ = ["ShapeChanges"]


class ShapeChanges:
    """``resize`` and ``append`` for an array, safe between handles, threads and processes.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-shape-changes", shape=(2,), chunks=(2,), dtype="i8")
    >>> a.append([1, 2, 3]), isinstance(a, ShapeChanges)
    ((5,), True)
    """

    def resize(self, *shape: int | Sequence[int]) -> None:
        """Change the shape; chunks wholly outside the new shape are deleted.

        Chunks cut by the new edge keep their in-bounds part; the part beyond is
        reset to the fill value so growing the array later shows no stale data.
        The new shape is written by compare-and-swap on the stored metadata
        (:func:`~zarrflow.hierarchy.metadata_update.update_metadata`): the
        attributes stored now are kept, whatever this handle had cached.

        Parameters
        ----------
        *shape
            The new shape: one size per dimension, or one sequence of them.

        Examples
        --------
        >>> import zarrflow as zf
        >>> a = zf.create("memory://doc-resize-array", shape=(4,), chunks=(2,), dtype="u1")
        >>> a.resize(6)
        >>> a.shape
        (6,)
        """
        new_shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
        if self.read_only:
            raise ReadOnlyError(f"array {self.name!r} is read-only: cannot resize")
        for _ in range(_MAX_SHAPE_MOVES):
            fresh = load_node(self.store, self.path, self.zarr_format, node_type="array")
            engine = open_engine(self.store, self.path, fresh, chunk_cache=self.chunk_cache)
            new_shape = resize_chunks(engine, new_shape)  # validates, then cleans up
            try:
                meta = update_metadata(
                    self.store,
                    self.path,
                    self.zarr_format,
                    partial(_reshaped, seen=tuple(fresh.shape), new_shape=new_shape),
                    self.name,
                )
            except _ShapeMoved:  # another handle changed the shape: clean up for its shape
                continue
            self._metadata_changed(meta)
            return
        raise StoreError(
            f"array {self.name!r}: the stored shape kept changing during {_MAX_SHAPE_MOVES} "
            "attempts to resize it; not resized"
        )

    def append(self, data: Any, axis: int = 0) -> tuple[int, ...]:
        """Append ``data`` along ``axis``; returns the new shape.

        The append first claims its region: the stored shape grows by
        compare-and-swap, so two appenders (threads, processes) each get their
        own rows and neither is lost. Then the data is written into the
        claimed region; partial chunks shared with a neighbouring claim are
        conditional read-modify-writes. An append interrupted between the two
        steps (a crash) leaves its rows at the fill value, never garbage.

        Parameters
        ----------
        data
            The values to append: the array's shape on every axis but ``axis``.
        axis
            The axis to grow.

        Examples
        --------
        >>> import numpy as np, zarrflow as zf
        >>> a = zf.create("memory://doc-append", shape=(2, 2), chunks=(2, 2), dtype="i4")
        >>> a.append(np.ones((3, 2), "i4"))
        (5, 2)
        """
        data = np.asarray(data)
        append_shape(self.name, self.shape, data.shape, axis)  # bad input: nothing changes
        self._prepare_value(data, data.shape)  # dtype check before anything changes
        if self.read_only:
            raise ReadOnlyError(f"array {self.name!r} is read-only: cannot append")
        claim: list = []

        def grow(stored):
            new_shape, region = append_shape(self.name, stored.shape, data.shape, axis)
            claim[:] = [new_shape, region]
            return stored.replace(shape=new_shape)

        meta = update_metadata(self.store, self.path, self.zarr_format, grow, self.name)
        new_shape, region = claim
        self._metadata_changed(meta)
        # the region's last chunk may be shared with the next claim: write through a
        # grid ending on a chunk boundary, so that chunk is merged (read-modify-write)
        # rather than overwritten with fill values beyond this claim's edge
        ax = axis % len(new_shape)
        step = self.engine.chunk_shape[ax]
        padded = list(new_shape)
        padded[ax] = -(-new_shape[ax] // step) * step
        writer = type(self)(
            self.store,
            self.path,
            meta.replace(shape=tuple(padded)),
            write_empty_chunks=self.engine.write_empty_chunks,
        )
        writer[region] = data
        return new_shape


_MAX_SHAPE_MOVES = 50


class _ShapeMoved(Exception):
    """The stored shape is not the one a resize cleaned up for: clean up again."""


def _reshaped(stored, seen: tuple[int, ...], new_shape: tuple[int, ...]):
    if tuple(stored.shape) != seen:
        raise _ShapeMoved
    return stored.replace(shape=new_shape)
