"""Writing a dask array into a Zarr array, one task per block, never losing an update.

Every block is written by one task named ``zarrflow-write-<token>``. What makes
that safe depends on where the blocks fall (:func:`plan_write` decides, and
``to_zarr(..., strategy=)`` overrides):

``aligned``
    Every block boundary is on a chunk boundary: each chunk has one writer, and
    writes need no lock. (Chunks the *region* only partly covers are still
    read-modify-written under their lock, guarding against other jobs.)
``rechunk`` (the default for unaligned blocks)
    The dask array is rechunked so block boundaries fall on chunk boundaries —
    the "one writer per chunk" plan (ExZarr's batch-and-merge). Safe on every
    scheduler, the multiprocessing one included, and lock-free.
``lock``
    Blocks stay as they are; a chunk shared by several blocks is written by
    each under that chunk's lock — a thread lock on the threaded scheduler, a
    ``distributed.Lock`` named from the store URL and chunk key on a cluster.
    Refused on the multiprocessing scheduler, whose processes share no lock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask
import numpy as np

from zarrflow.errors import ReadOnlyError, ValueShapeError, ZarrflowError
from zarrflow.indexing import BasicIndexer
from zarrflow.parallel.dask_read import _TaskScope, block_shape
from zarrflow.parallel.scheduling import own_thread_pool, resolve_backend

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["WritePlan", "plan_write", "store_dask"]

logger = logging.getLogger("zarrflow")
_STRATEGIES = ("auto", "aligned", "rechunk", "lock")


@dataclass(frozen=True)
class WritePlan:
    """How a dask array's blocks will be written, and why.

    Attributes
    ----------
    strategy
        ``"aligned"``, ``"rechunk"`` or ``"lock"``.
    shared_chunks
        Chunks that more than one block touches under the original blocking.
    chunks
        The block sizes (per axis) the write will use.
    reason
        One sentence for logs and users.
    """

    strategy: str
    shared_chunks: int
    chunks: tuple[tuple[int, ...], ...]
    reason: str


def _region(array, region: Sequence[slice] | None, shape: tuple[int, ...]) -> tuple[slice, ...]:
    if region is None:
        region = tuple(slice(0, s) for s in array.shape)
    region = tuple(region) + tuple(slice(0, s) for s in array.shape[len(tuple(region)) :])
    out = []
    for sl, size in zip(region, array.shape, strict=True):
        start, stop, step = sl.indices(size)
        if step != 1:
            raise ValueShapeError(f"array {array.name!r}: region slices must have step 1")
        out.append(slice(start, stop))
    got = tuple(s.stop - s.start for s in out)
    if got != tuple(shape):
        raise ValueShapeError(
            f"array {array.name!r}: data of shape {tuple(shape)} does not fit region "
            f"{tuple(out)} of shape {got}"
        )
    return tuple(out)


def _shared_chunks(blocks: Sequence[int], start: int, chunk: int) -> int:
    """How many chunks along one axis are cut by a block boundary."""
    cuts = set()
    pos = start
    for b in blocks[:-1]:
        pos += b
        if pos % chunk:
            cuts.add(pos // chunk)
    return len(cuts)


def _aligned_blocks(blocks: Sequence[int], start: int, stop: int, chunk: int) -> tuple[int, ...]:
    """Block sizes of about the same size as ``blocks``, with boundaries on chunk edges."""
    typical = max(blocks) if blocks else chunk
    step = max(chunk, (typical // chunk) * chunk)
    sizes = []
    pos = start
    first_edge = min(stop, -(-start // chunk) * chunk)
    if first_edge > pos:
        sizes.append(first_edge - pos)
        pos = first_edge
    while pos < stop:
        nxt = min(stop, pos + step)
        sizes.append(nxt - pos)
        pos = nxt
    return tuple(sizes) or (0,)


def plan_write(
    x_chunks: Sequence[Sequence[int]],
    array,
    region: Sequence[slice],
    strategy: str = "auto",
    scheduler: Any = None,
) -> WritePlan:
    """Decide how to write blocks of sizes ``x_chunks`` into ``region`` of ``array``.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-plan", shape=(100,), chunks=(10,), dtype="i4")
    >>> plan_write(((25, 25, 50),), a, (slice(0, 100),)).strategy
    'rechunk'
    >>> plan_write(((20, 80),), a, (slice(0, 100),)).strategy
    'aligned'
    """
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy must be one of {_STRATEGIES}, not {strategy!r}")
    shared = 1
    counts = [
        _shared_chunks(b, r.start, c)
        for b, r, c in zip(x_chunks, region, array.shards or array.chunks, strict=True)
    ]
    shared = sum(counts)
    if shared == 0:
        return WritePlan("aligned", 0, tuple(map(tuple, x_chunks)), "blocks align with chunks")
    if strategy == "aligned":
        raise ZarrflowError(
            f"array {array.name!r}: strategy='aligned' but {shared} chunk boundaries are cut by "
            "blocks; use 'rechunk' or 'lock'"
        )
    if strategy == "lock":
        if resolve_backend(scheduler).kind == "processes":
            raise ZarrflowError(
                f"array {array.name!r}: strategy='lock' cannot work on the multiprocessing "
                "scheduler (its processes share no lock); use strategy='rechunk'"
            )
        return WritePlan(
            "lock", shared, tuple(map(tuple, x_chunks)), "shared chunks written under locks"
        )
    aligned = tuple(
        _aligned_blocks(b, r.start, r.stop, c)
        for b, r, c in zip(x_chunks, region, array.shards or array.chunks, strict=True)
    )
    return WritePlan("rechunk", shared, aligned, "rechunked so each chunk has one writer")


def _remote_blocks(
    plan: WritePlan, array, region: Sequence[slice], itemsize: int
) -> tuple[tuple[int, ...], ...] | None:
    """Blocks of several chunks for a remote target whose planned blocks are small.

    A write task stores its whole chunks in one concurrent batch, so on an
    object store a task of one chunk wastes the latency a batch would hide.
    Blocks grow, on chunk boundaries, to about ``zarrflow.task_target_bytes``
    (never fewer blocks than cores, as for reads); ``None`` keeps the plan.
    """
    if not array.store.is_remote or plan.strategy == "lock":
        return None
    block_bytes = math.prod(max(b) for b in plan.chunks if b) * itemsize
    if block_bytes * 2 > dask.config.get("zarrflow.task_target_bytes"):
        return None
    grid = [
        -(-(r.stop - r.start) // c)
        for r, c in zip(region, array.shards or array.chunks, strict=True)
    ]
    target = block_shape(array.shards or array.chunks, grid, itemsize)
    return tuple(
        _aligned_blocks([max(t, max(b))], r.start, r.stop, c)
        for t, b, r, c in zip(
            target, plan.chunks, region, array.shards or array.chunks, strict=True
        )
    )


def _store_block(
    block: np.ndarray, array, offset: tuple[int, ...], lock: str, block_info=None
) -> np.ndarray:
    """One write task: store ``block`` at its place in the region."""
    location = block_info[0]["array-location"]
    selection = tuple(
        slice(o + start, o + stop) for o, (start, stop) in zip(offset, location, strict=True)
    )
    indexer = BasicIndexer(selection, array.shape, array.shards or array.chunks)
    value = np.asarray(block)
    if value.dtype != array.dtype:
        value = value.astype(array.dtype)
    with _TaskScope():
        failures = array._io.write_from(value, indexer, lock=lock)
    out = np.empty((1,) * block.ndim, dtype=object)
    out.flat[0] = failures  # the task succeeds: every block is tried, failures reported at the end
    return out


def store_dask(
    x: da.Array,
    array,
    region: Sequence[slice] | None = None,
    *,
    strategy: str = "auto",
    compute: bool = True,
    scheduler: Any = None,
    progress_callback: Any = None,
):
    """Write dask array ``x`` into ``array`` (see :func:`zarrflow.to_zarr`)."""
    if array.read_only:
        raise ReadOnlyError(f"array {array.name!r} is read-only: cannot write")
    if not np.can_cast(x.dtype, array.dtype, "same_kind"):
        raise ValueShapeError(
            f"array {array.name!r}: cannot write {x.dtype} data into a {array.dtype} array"
        )
    if x.ndim != array.ndim:
        raise ValueShapeError(f"array {array.name!r}: {x.ndim}-d data into a {array.ndim}-d array")
    reg = _region(array, region, x.shape)
    plan = plan_write(x.chunks, array, reg, strategy, scheduler)
    logger.info("to_zarr %s: %s (%s)", array.name, plan.strategy, plan.reason)
    blocks = _remote_blocks(plan, array, reg, x.dtype.itemsize) or plan.chunks
    if blocks != x.chunks:
        x = x.rechunk(blocks)
    offset = tuple(r.start for r in reg)
    token = dask.base.tokenize(x.name, array.name, offset, plan.strategy)
    # the lock setting travels with the tasks: cluster workers do not see our config
    lock = dask.config.get("zarrflow.lock")
    stored = x.map_blocks(
        _store_block,
        array=array,
        offset=offset,
        lock=lock,
        dtype=object,
        chunks=tuple((1,) * n for n in x.numblocks),
        name=f"zarrflow-write-{token}",
        meta=np.empty((0,) * x.ndim, dtype=object),
    )
    if not compute:
        return dask.delayed(_written, pure=False)(stored, array, plan)
    from zarrflow.parallel.progress import compute_with_progress

    backend = resolve_backend(scheduler)
    with own_thread_pool() as pool:  # nothing of this call still runs once it has returned
        outcomes = compute_with_progress(
            stored, backend, progress_callback, prefix="zarrflow-write", pool=pool
        )
    return _written(outcomes, array, plan)


def _written(outcomes: np.ndarray, array, plan: WritePlan) -> WritePlan:
    """The plan, once every block is written; ParallelChunkError listing every failed chunk."""
    array._io.raise_failures([f for block in outcomes.flat for f in block])
    return plan


def chunks_from_dask(x: da.Array) -> tuple[int, ...]:
    """A regular chunk shape for a new array written from ``x`` (its largest block)."""
    return tuple(max(c) if c else 1 for c in x.chunks) or ()


def nblocks(x: da.Array) -> int:
    return math.prod(x.numblocks)
