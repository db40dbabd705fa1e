"""``to_dask().compute()`` without Dask's final copy: read tasks decode into one shared output.

A dask array's ``compute()`` runs one task per block, then one more that
concatenates the blocks into a new array: for a 256 MiB read that is another
256 MiB to allocate and copy on one thread, after the reading is done. The
dask array :func:`~zarrflow.parallel.to_dask` returns (a plain
:class:`dask.array.Array`, see :func:`share_output`) differs in two ways, both
used only when that array itself is computed or persisted (an expression
built on it, ``x + 1``, ``x[:10]``, is an ordinary dask array with the
ordinary graph):

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
from contextlib import nullcontext
from functools import partial
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.array.core import finalize as dask_finalize
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from zarrflow.parallel.scheduling import resolve_backend

__all__ = ["SharedOutput", "assemble", "share_output"]

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


class _SharedOutputGraph:  # the array's __dask_optimize__
    """The graph with the array's read tasks rewritten to decode into one :class:`SharedOutput`.

    Every other layer (Dask's finalisation task) is kept as it is. It holds the
    array's name, block sizes, dtype and reader only (never the dask array), so
    it pickles as an expression's optimiser does on a cluster.
    """

    def __init__(self, name: str, chunks: tuple, dtype: Any, read_region: Callable) -> None:
        self.name, self.chunks, self.dtype, self.read_region = name, chunks, dtype, read_region

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        if not isinstance(dsk, HighLevelGraph) or self.name not in dsk.layers:
            return da.Array.__dask_optimize__(dsk, keys, **kwargs)
        shape = tuple(sum(c) for c in self.chunks)
        numblocks = tuple(len(c) for c in self.chunks)
        output = SharedOutput(shape, self.dtype, math.prod(numblocks))
        edges = [np.cumsum((0, *c)).tolist() for c in self.chunks]
        tasks = {}
        for index in np.ndindex(*numblocks):
            region = tuple(slice(e[i], e[i + 1]) for e, i in zip(edges, index, strict=True))
            read = partial(_read_shared, self.read_region, output, index, region)
            tasks[(self.name, *index)] = (read,)
        layers = {**dsk.layers, self.name: MaterializedLayer(tasks)}
        return HighLevelGraph(layers, dict(dsk.dependencies))


def _postcompute() -> tuple[Callable, tuple]:
    return assemble, ()


def _compute(array: da.Array, read_all: Callable[[np.ndarray], None], **kwargs: Any) -> Any:
    if set(kwargs) <= {"scheduler"}:
        scheduler = kwargs.get("scheduler")
        if resolve_backend(scheduler).can_share_memory:
            out = np.empty(array.shape, array.dtype)
            with dask.config.set(scheduler=scheduler) if scheduler else nullcontext():
                read_all(out)
            return out
    return da.Array.compute(array, **kwargs)


def share_output(
    array: da.Array,
    read_region: Callable[[Region, np.ndarray], None],
    read_all: Callable[[np.ndarray], None],
) -> da.Array:
    """Give a read's dask array its shared-output ``compute`` and ``persist`` (module notes).

    ``read_region(region, block)`` fills ``block`` with the array's values in
    ``region`` (a tuple of slices); ``read_all(out)`` fills a whole-shape
    ``out`` the way ``a[...]`` does. ``array`` stays a plain
    :class:`dask.array.Array` (xarray, for one, refuses to mix array types):
    three attributes of this one object change, ``__dask_optimize__`` and
    ``__dask_postcompute__`` (the shared output) and ``compute``:

    ``x.compute()`` (no options but ``scheduler``) on an in-process scheduler
    is ``read_all`` into one new array: the same chunk reads, in batches of
    tasks on Dask's threaded scheduler (local callbacks such as a progress
    bar see them), without building and optimising a graph of every block.
    With any other option or scheduler it is Dask's own ``compute``. Nothing
    else changes: an expression on ``array``, a pickled copy, are ordinary.

    Examples
    --------
    >>> import dask.array as da
    >>> x = share_output(da.zeros(4, chunks=2), lambda r, b: b.fill(1), lambda o: o.fill(2))
    >>> x.compute().tolist(), dask.compute(x)[0].tolist(), type(x).__name__
    ([2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0], 'Array')
    """
    if 0 in array.shape:
        return array
    array.__dask_optimize__ = _SharedOutputGraph(array.name, array.chunks, array.dtype, read_region)
    array.__dask_postcompute__ = _postcompute
    array.compute = partial(_compute, array, read_all)
    return array
