"""``to_dask().compute()`` without Dask's final copy: read tasks decode into one shared output.

A dask array's ``compute()`` runs one task per block, then one more that
concatenates the blocks into a new array: for a 256 MiB read that is another
256 MiB to allocate and copy on one thread, after the reading is done.
:class:`ReadArray` (what :func:`~zarrflow.parallel.to_dask` returns) is a plain
:class:`dask.array.Array` in every respect but two, both used only when the
array itself is computed or persisted (an expression built on it, ``x + 1``,
``x[:10]``, is an ordinary dask array with the ordinary graph):

- its graph optimisation gives the read tasks one :class:`SharedOutput`, so that
  on an in-process scheduler (threads, sync) each task decodes its chunks
  straight into its region of one array of the whole shape and returns that
  region (a view);
- its finalisation returns that array when the blocks are views tiling it,
  and concatenates them otherwise (Dask's own ``finalize``).

Safety. Each region of an output array is handed to one task only; a task
asking for a region already handed out (the same graph computed twice at
once, or again after an error) gets an array of its own, and the
finalisation then copies as usual. An output array whose regions have all
been handed out is forgotten by its :class:`SharedOutput`, so no later task
writes into an array a ``compute()`` has returned. Pickled (a process pool,
a cluster), a :class:`SharedOutput` becomes a detached one: every task there
allocates its own block, as any dask array's tasks do.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
from dask.array.core import finalize as dask_finalize
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

__all__ = ["ReadArray", "SharedOutput", "assemble"]

Region = tuple[slice, ...]


class SharedOutput:
    """One output array of a whole shape, handed out region by region to read tasks.

    Parameters
    ----------
    shape, dtype
        The whole array's.
    nblocks
        How many regions tile it: once all are handed out, the array is forgotten.

    Examples
    --------
    >>> out = SharedOutput((4,), "i2", nblocks=2)
    >>> a, b = out.claim(0, (slice(0, 2),)), out.claim(1, (slice(2, 4),))
    >>> a.base is b.base, a.base.shape
    (True, (4,))
    >>> out.claim(0, (slice(0, 2),)).base is a.base  # a new array, never the returned one
    False
    """

    def __init__(self, shape: Sequence[int], dtype: Any, nblocks: int) -> None:
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.nblocks = nblocks
        self._lock = threading.Lock()
        self._buffer: np.ndarray | None = None
        self._claimed: set[tuple[int, ...] | int] = set()

    def claim(self, index: tuple[int, ...] | int, region: Region) -> np.ndarray:
        """The writable view of ``region`` in the output array (or a new array if taken)."""
        with self._lock:
            if self._buffer is None:
                self._buffer = np.empty(self.shape, self.dtype)  # pages come as tasks write
                self._claimed = set()
            if index in self._claimed:
                return _own_block(region, self.dtype)
            self._claimed.add(index)
            buffer = self._buffer
            if len(self._claimed) == self.nblocks:
                self._buffer = None  # complete: no later task may write into it
        return buffer[(*region, Ellipsis)]

    def __reduce__(self):
        # in another process the blocks cannot land in this one's array
        return (DetachedOutput, (self.dtype,))


class DetachedOutput:
    """A :class:`SharedOutput` after pickling: every block is an array of its own."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)

    def claim(self, index: tuple[int, ...] | int, region: Region) -> np.ndarray:
        """A new array of the region's shape."""
        return _own_block(region, self.dtype)


def _own_block(region: Region, dtype: np.dtype) -> np.ndarray:
    return np.empty(tuple(s.stop - s.start for s in region), dtype)


def _flatten(results: Any) -> list:
    if isinstance(results, list | tuple):
        return [b for r in results for b in _flatten(r)]
    return [results]


def _grid(results: Any, ndim: int) -> list[int] | None:
    """The block grid's shape, from the nesting of the result lists."""
    grid, level = [], results
    for _ in range(ndim):
        if not isinstance(level, list | tuple) or not level:
            return None
        grid.append(len(level))
        level = level[0]
    return grid


def _tile_of(results: Any) -> np.ndarray | None:
    """The array the blocks (nested lists, C order) are views tiling exactly, or None."""
    blocks = _flatten(results)
    base = getattr(blocks[0], "base", None)
    if not isinstance(base, np.ndarray) or not base.flags.c_contiguous:
        return None
    grid = _grid(results, base.ndim)
    if grid is None or math.prod(grid) != len(blocks):
        return None
    if any(type(b) is not np.ndarray or b.base is not base for b in blocks):
        return None
    # block edges along each axis, from the blocks of the first row, column, ...
    edges = []
    for ax, n in enumerate(grid):
        step = math.prod(grid[ax + 1 :])
        edges.append(np.cumsum([0] + [blocks[i * step].shape[ax] for i in range(n)]).tolist())
    if tuple(e[-1] for e in edges) != base.shape:
        return None
    origin = base.__array_interface__["data"][0]
    for block, index in zip(blocks, np.ndindex(*grid), strict=True):
        shape = tuple(e[i + 1] - e[i] for e, i in zip(edges, index, strict=True))
        offset = sum(e[i] * s for e, i, s in zip(edges, index, base.strides, strict=True))
        if (
            block.shape != shape
            or block.strides != base.strides
            or block.__array_interface__["data"][0] - origin != offset
        ):
            return None
    return base


def assemble(results: Any) -> Any:
    """The computed array from its blocks: their shared output when they tile one, else a copy.

    Examples
    --------
    >>> whole = np.zeros((2, 3))
    >>> assemble([[whole[:, :2], whole[:, 2:]]]) is whole
    True
    >>> assemble([[np.zeros((2, 2)), np.ones((2, 1))]]).tolist()
    [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    """
    if results and (whole := _tile_of(results)) is not None:
        return whole
    return dask_finalize(results)


def _read_shared(
    read: Callable[[Region, np.ndarray], None],
    output: SharedOutput,
    index: tuple[int, ...],
    region: Region,
) -> np.ndarray:
    block = output.claim(index, region)
    read(region, block)
    return block


class _Optimize:
    """``__dask_optimize__``: Dask's own on the class, the shared-output graph on an instance."""

    def __get__(self, array: ReadArray | None, owner: type) -> Callable:
        if array is None:
            return da.Array.__dask_optimize__
        return partial(_shared_output_graph, array)


def _shared_output_graph(array: ReadArray, dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """The graph with the array's read tasks rewritten to decode into one :class:`SharedOutput`.

    Every other layer (Dask's finalisation task) is kept as it is.
    """
    if not isinstance(dsk, HighLevelGraph) or array.name not in dsk.layers:
        return da.Array.__dask_optimize__(dsk, keys, **kwargs)
    output = SharedOutput(array.shape, array.dtype, array.npartitions)
    edges = [np.cumsum((0, *c)).tolist() for c in array.chunks]
    tasks = {}
    for index in np.ndindex(*array.numblocks):
        region = tuple(slice(e[i], e[i + 1]) for e, i in zip(edges, index, strict=True))
        key = (array.name, *index)
        tasks[key] = (partial(_read_shared, array.read_region, output, index, region),)
    layers = {**dsk.layers, array.name: MaterializedLayer(tasks)}
    return HighLevelGraph(layers, dict(dsk.dependencies))


class ReadArray(da.Array):
    """The dask array of a zarrflow array's chunks (see the module notes).

    ``read_region(region, block)`` fills ``block`` with the array's values in
    ``region`` (a tuple of slices); the graph is the one Dask built, used
    unchanged by everything but this array's own ``compute()`` and ``persist()``.
    """

    __dask_optimize__ = _Optimize()

    def __dask_postcompute__(self):
        return assemble, ()

    @classmethod
    def wrap(cls, array: da.Array, read_region: Callable[[Region, np.ndarray], None]) -> da.Array:
        """``array`` as a ReadArray (a plain dask array when some axis is empty)."""
        if 0 in array.shape:
            return array
        out = cls(array.dask, array.name, array.chunks, meta=array)
        out.read_region = read_region
        return out
