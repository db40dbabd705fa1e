"""A per-thread scratch chunk: where a chunk is decoded before its part is copied out.

A chunk whose place in the result is not one contiguous run (any chunk of a
2-d array narrower than the array) is decoded into a scratch buffer, then
copied into place. Allocating that buffer per call costs fresh pages each time
(a 1 MiB chunk is 256 page faults, zeroed by the kernel); a Dask read of
256 MiB in 4 MiB tasks would fault in 64 MiB of scratch that way. Each thread
keeps its last scratch buffer instead, up to :data:`KEPT_BYTES`.

A scratch buffer is only ever used between a decode and the copy that follows
it on the same thread, never across a call that could use it again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["KEPT_BYTES", "scratch_chunk"]

#: a thread keeps its scratch buffer when it is at most this large
KEPT_BYTES = 16 * 2**20

_local = threading.local()


def scratch_chunk(shape: Sequence[int], dtype: Any) -> np.ndarray:
    """A C-contiguous ``shape``/``dtype`` array for this thread's decodes (contents undefined).

    Examples
    --------
    >>> a = scratch_chunk((4, 4), "f4")
    >>> scratch_chunk((4, 4), "f4") is a, a.flags.c_contiguous
    (True, True)
    """
    shape, dtype = tuple(shape), np.dtype(dtype)
    kept = getattr(_local, "array", None)
    if kept is not None and kept.shape == shape and kept.dtype == dtype:
        return kept
    array = np.empty(shape, dtype)
    if array.nbytes <= KEPT_BYTES:
        _local.array = array
    return array
