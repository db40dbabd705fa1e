"""Whole-array statistics computed chunk by chunk with ``reduce_chunks``.

Each chunk contributes ``(count, mean, M2, min, max, nan_count)``; partial
results merge with Chan et al.'s parallel variance update, so the standard
deviation stays accurate over billions of elements and no chunk is kept.

Only stored chunks are read. Every element of a chunk never written reads as
the fill value, so those elements join the result as one constant summary,
computed, not read: a huge, sparsely written array costs what its stored
chunks cost. A chunk too large to hold in memory is refused up front.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from zarrflow.errors import ZarrflowError

__all__ = ["ChunkMoments", "array_statistics", "constant_moments"]


class ChunkMoments(NamedTuple):
    """Mergeable summary of some elements (NaNs counted, not included)."""

    count: int
    mean: float
    m2: float
    min: float
    max: float
    nan_count: int


def chunk_moments(_idx: tuple[int, ...], chunk: np.ndarray) -> ChunkMoments:
    """The summary of one chunk.

    Examples
    --------
    >>> chunk_moments((0,), np.array([1.0, 3.0, np.nan])).count
    2
    """
    values = np.asarray(chunk)
    nan_count = 0
    if values.dtype.kind in "fc":
        nans = np.isnan(values)
        nan_count = int(nans.sum())
        if nan_count:
            values = values[~nans]
    values = values.astype("float64", copy=False).ravel()
    if values.size == 0:
        return ChunkMoments(0, 0.0, 0.0, np.inf, -np.inf, nan_count)
    mean = float(values.mean())
    m2 = float(((values - mean) ** 2).sum())
    return ChunkMoments(values.size, mean, m2, float(values.min()), float(values.max()), nan_count)


def merge_moments(a: ChunkMoments, b: ChunkMoments) -> ChunkMoments:
    """Combine two summaries (Chan et al.'s parallel algorithm).

    Examples
    --------
    >>> a, b = chunk_moments((0,), np.array([1.0])), chunk_moments((1,), np.array([3.0]))
    >>> m = merge_moments(a, b)
    >>> m.mean, m.m2
    (2.0, 2.0)
    """
    n = a.count + b.count
    if n == 0:
        return ChunkMoments(0, 0.0, 0.0, np.inf, -np.inf, a.nan_count + b.nan_count)
    delta = b.mean - a.mean
    mean = a.mean + delta * b.count / n
    m2 = a.m2 + b.m2 + delta * delta * a.count * b.count / n
    return ChunkMoments(
        n, mean, m2, min(a.min, b.min), max(a.max, b.max), a.nan_count + b.nan_count
    )


def constant_moments(value: Any, n: int) -> ChunkMoments:
    """The summary of ``n`` elements all equal to ``value``.

    Examples
    --------
    >>> constant_moments(2.5, 4)
    ChunkMoments(count=4, mean=2.5, m2=0.0, min=2.5, max=2.5, nan_count=0)
    """
    v = float(value)
    if n == 0:
        return ChunkMoments(0, 0.0, 0.0, np.inf, -np.inf, 0)
    if np.isnan(v):
        return ChunkMoments(0, 0.0, 0.0, np.inf, -np.inf, n)
    return ChunkMoments(n, v, 0.0, v, v, 0)


def _fill_element(array) -> Any:
    """What an element of a chunk never written reads as (a null v2 fill value reads as 0)."""
    fill = array.fill_value
    return np.zeros((), dtype=array.dtype)[()] if fill is None else fill


def array_statistics(
    array,
    scheduler: Any = None,
    progress_callback: Callable[[int, int], None] | None = None,
    max_concurrency: int | None = None,
) -> dict[str, Any]:
    """Min, max, mean, standard deviation, element and NaN counts of an array.

    Parameters
    ----------
    array
        A numeric :class:`~zarrflow.Array`.
    scheduler
        Where the chunk tasks run (as for ``parallel_chunk_map``).
    progress_callback
        ``progress_callback(done, total)`` over the stored chunks read.
    max_concurrency
        Chunks in flight at once.

    Returns
    -------
    dict
        ``count`` (non-NaN elements), ``min``, ``max``, ``mean``, ``std``
        (None when there is no element), ``nan_count``, and ``chunks_read``.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-stats", shape=(4,), chunks=(2,), dtype="f8")
    >>> a[:] = [1.0, 2.0, 3.0, np.nan]
    >>> array_statistics(a)["nan_count"]
    1
    >>> huge = zf.create("memory://doc-stats-huge", shape=(10**15,), chunks=(10**6,),
    ...                  dtype="i1", fill_value=3)
    >>> huge[:4] = [1, 2, 3, 4]
    >>> r = array_statistics(huge)
    >>> r["count"], r["min"], r["max"], r["chunks_read"]
    (1000000000000000, 1.0, 4.0, 1)
    """
    from zarrflow.integrations.limits import check_chunk_memory

    try:
        check_chunk_memory(array, array.chunks, "read")
    except ZarrflowError:
        if array.nchunks_initialized:
            raise
    chunks_read = 0

    def merge(a: ChunkMoments, b: ChunkMoments) -> ChunkMoments:
        nonlocal chunks_read
        chunks_read += 1
        return merge_moments(a, b)

    m = array.reduce_chunks(
        chunk_moments,
        merge,
        ChunkMoments(0, 0.0, 0.0, np.inf, -np.inf, 0),
        scheduler=scheduler,
        progress_callback=progress_callback,
        max_concurrency=max_concurrency,
        skip_missing=True,
    )
    unread = math.prod(array.shape) - m.count - m.nan_count
    if unread:
        m = merge_moments(m, constant_moments(_fill_element(array), unread))
    empty = m.count == 0
    return {
        "count": m.count,
        "min": None if empty else m.min,
        "max": None if empty else m.max,
        "mean": None if empty else m.mean,
        "std": None if empty else float(np.sqrt(m.m2 / m.count)),
        "nan_count": m.nan_count,
        "chunks_read": chunks_read,
    }
