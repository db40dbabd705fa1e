"""Whole-array statistics computed chunk by chunk with ``reduce_chunks``.

Each chunk contributes ``(count, mean, M2, min, max, nan_count)``; partial
results merge with Chan et al.'s parallel variance update, so the standard
deviation stays accurate over billions of elements and no chunk is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

__all__ = ["ChunkMoments", "array_statistics"]


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


def array_statistics(
    array,
    scheduler: Any = None,
    progress_callback: Callable[[int, int], None] | None = None,
    max_concurrency: int | None = None,
) -> dict[str, Any]:
    """Min, max, mean, standard deviation, element and NaN counts of an array.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-stats", shape=(4,), chunks=(2,), dtype="f8")
    >>> a[:] = [1.0, 2.0, 3.0, np.nan]
    >>> array_statistics(a)["nan_count"]
    1
    """
    m = array.reduce_chunks(
        chunk_moments,
        merge_moments,
        scheduler=scheduler,
        progress_callback=progress_callback,
        max_concurrency=max_concurrency,
    )
    empty = m.count == 0
    return {
        "count": m.count,
        "min": None if empty else m.min,
        "max": None if empty else m.max,
        "mean": None if empty else m.mean,
        "std": None if empty else float(np.sqrt(m.m2 / m.count)),
        "nan_count": m.nan_count,
    }
