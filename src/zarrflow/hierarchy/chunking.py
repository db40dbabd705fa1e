"""What ``chunks=`` and ``shards=`` mean at creation: sizes, ``-1``, ``"auto"``, ``None``.

========================  ==============================================================
``chunks=``               chunk shape
========================  ==============================================================
``None`` (the default)    zarrflow's rule: about 4 MiB per chunk (Dask's ``"auto"``
                          rule at ``zarrflow``'s task size), good Dask tasks
``"auto"`` or ``True``    zarr-python's rule of thumb (:func:`guess_chunks`); when
                          sharded, capped at 1 MiB per inner chunk as zarr-python does
``False``                 one chunk: the whole array
an int                    that size on every axis (``-1``: the whole axis)
a sequence                one per axis (as zarr-python's ``create_array``, a
                          wrong count is refused); ``-1`` or ``None`` is the
                          whole axis; dask-style block sizes
                          ``((10, 10, 5), ...)`` take their first size
========================  ==============================================================

``shards=`` takes an int or a sequence the same way; ``-1`` there is the whole
axis rounded up to a multiple of the chunk.

Examples
--------
>>> normalize_chunks((-1, 10), (7, 100), 8)
(7, 10)
>>> normalize_chunks("auto", (10_000, 10_000), 8)
(313, 625)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from zarrflow.errors import MetadataError

__all__ = ["guess_chunks", "normalize_chunks", "normalize_shards"]

KiB, MiB = 1024, 1024 * 1024


def guess_chunks(
    shape: Sequence[int],
    itemsize: int,
    *,
    increment_bytes: int = 256 * KiB,
    min_bytes: int = 128 * KiB,
    max_bytes: int = 64 * MiB,
) -> tuple[int, ...]:
    """zarr-python's (and h5py's) rule of thumb for a chunk shape.

    The target chunk size grows with the array: ``increment_bytes × 2 **
    log10(array bytes / 1 MiB)``, held between ``min_bytes`` and
    ``max_bytes`` (256 KiB for a 1 MiB array, 512 KiB for 10 MiB, 1 MiB for
    100 MiB, 2 MiB for 1 GiB, ...). Starting from the whole array, the axes are
    halved in turn (first axis first, rounding up) until the chunk is under the
    target, or within 50 % of it, and under ``max_bytes``.

    Parameters
    ----------
    shape
        The array's shape (zero-length axes count as 1).
    itemsize
        Bytes per element.
    increment_bytes, min_bytes, max_bytes
        The rule's constants (zarr-python's defaults).

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> guess_chunks((1000, 1000), 8)
    (250, 250)
    >>> guess_chunks((100,), 4)
    (100,)
    """
    if min_bytes >= max_bytes:
        raise ValueError(f"min_bytes ({min_bytes}) must be less than max_bytes ({max_bytes})")
    chunks = [max(1, int(s)) for s in shape]
    if not chunks or itemsize <= 0:
        return tuple(chunks)
    array_bytes = math.prod(chunks) * itemsize
    target = increment_bytes * 2 ** math.log10(array_bytes / MiB)
    target = min(max(target, min_bytes), max_bytes)
    axis = 0
    while True:
        nbytes = math.prod(chunks) * itemsize
        close = nbytes < target or abs(nbytes - target) / target < 0.5
        if (close and nbytes < max_bytes) or math.prod(chunks) == 1:
            return tuple(chunks)
        chunks[axis % len(chunks)] = math.ceil(chunks[axis % len(chunks)] / 2)
        axis += 1


def _per_axis(value: Any, shape: tuple[int, ...], what: str) -> list[Any]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value] * len(shape)
    try:
        items = list(value)
    except TypeError:
        raise MetadataError(f"{what} must be an int or a sequence of ints, not {value!r}") from None
    if len(items) != len(shape):
        raise MetadataError(
            f"{what} {value!r} must have {len(shape)} positive sizes, one per axis of "
            f"the shape {shape}"
        )
    # dask-style block sizes per axis: the first block is the chunk
    return [i[0] if isinstance(i, tuple | list) and i else i for i in items]


def normalize_chunks(
    chunks: Any,
    shape: Sequence[int],
    itemsize: int,
    *,
    sharded: bool = False,
    target_bytes: int = 4 * MiB,
) -> tuple[int, ...]:
    """The chunk shape ``chunks=`` asks for (see the module table).

    Parameters
    ----------
    chunks
        What the user passed.
    shape
        The array's shape.
    itemsize
        Bytes per element (for ``None`` and ``"auto"``).
    sharded
        True when ``shards=`` is given: ``"auto"`` then aims at 1 MiB inner chunks.
    target_bytes
        The size ``None`` aims at.

    Returns
    -------
    tuple of int

    Raises
    ------
    MetadataError
        For a size that is not a positive int (or ``-1``/``None``).

    Examples
    --------
    >>> normalize_chunks(None, (100, 100), 8)
    (100, 100)
    >>> normalize_chunks(-1, (3, 4), 1), normalize_chunks([2, None], (3, 4), 1)
    ((3, 4), (2, 4))
    """
    shape = tuple(int(s) for s in shape)
    itemsize = max(1, int(itemsize))
    if chunks is None:
        return _dask_auto(shape, itemsize, target_bytes)
    if chunks is True or (isinstance(chunks, str) and chunks == "auto"):
        return guess_chunks(shape, itemsize, max_bytes=MiB if sharded else 64 * MiB)
    if chunks is False:
        return tuple(max(1, s) for s in shape)
    if isinstance(chunks, str):
        raise MetadataError(f"chunks must be 'auto', an int or a sequence, not {chunks!r}")
    out = []
    for c, s in zip(_per_axis(chunks, shape, "chunks"), shape, strict=True):
        if c is None or c == -1:
            c = max(1, s)
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise MetadataError(
                f"chunks {chunks!r}: each size must be a positive int, -1 or None, not {c!r}"
            )
        out.append(int(c))
    return tuple(out)


def normalize_shards(
    shards: Any, shape: Sequence[int], chunks: Sequence[int]
) -> tuple[int, ...] | None:
    """The shard shape ``shards=`` asks for; ``-1`` is the whole axis, rounded up to whole chunks.

    Examples
    --------
    >>> normalize_shards((-1, 4), (10, 10), (3, 2))
    (12, 4)
    >>> normalize_shards(None, (10,), (2,)) is None
    True
    """
    if shards is None:
        return None
    shape = tuple(int(s) for s in shape)
    out = []
    for s, n, c in zip(_per_axis(shards, shape, "shards"), shape, chunks, strict=True):
        if s is None or s == -1:
            s = max(1, math.ceil(n / c)) * c
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise MetadataError(
                f"shards {shards!r}: each size must be a positive int, -1 or None, not {s!r}"
            )
        out.append(int(s))
    return tuple(out)


def _dask_auto(shape: tuple[int, ...], itemsize: int, target_bytes: int) -> tuple[int, ...]:
    """Regular chunks of about ``target_bytes`` (Dask's ``"auto"`` rule), at least 1 each."""
    if not shape:
        return ()
    import numpy as np
    from dask.array.core import normalize_chunks as dask_normalize

    blocks = dask_normalize("auto", shape, limit=target_bytes, dtype=np.dtype(f"V{itemsize}"))
    return tuple(max(1, b[0]) if b else 1 for b in blocks)
