"""Sizes a command can handle: a chunk held whole must fit in memory.

Commands that read or write whole chunks (``copy``, ``stats``) check the
declared chunk size against the machine's memory up front, so a huge array
gives one clear message instead of a failed allocation deep in a task.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from zarrflow.errors import ZarrflowError

__all__ = ["check_chunk_memory", "human_bytes"]


def _memory_bytes() -> int | None:
    """This machine's physical memory, when the OS says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(nbytes: float) -> str:
    """A byte count with a binary prefix.

    Examples
    --------
    >>> human_bytes(512), human_bytes(3 * 2**40)
    ('512 B', '3.0 TiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1024
    return f"{nbytes:.1f} PiB"  # pragma: no cover


def check_chunk_memory(array: Any, chunks: Sequence[int], what: str) -> None:
    """Raise :class:`ZarrflowError` when one chunk of ``chunks`` cannot fit in half the memory.

    Parameters
    ----------
    array
        The array (named in the message).
    chunks
        The chunk (or shard) shape that is held in memory whole.
    what
        What would be held, e.g. ``"read"``.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-chunk-memory", shape=(10**15,), chunks=(10**15,))
    >>> check_chunk_memory(a, a.chunks, "read")
    Traceback (most recent call last):
    ...
    zarrflow.errors.ZarrflowError: array 'memory://doc-chunk-memory': one chunk ...
    """
    nbytes = math.prod(min(c, s) for c, s in zip(chunks, array.shape, strict=True))
    nbytes *= array.dtype.itemsize
    memory = _memory_bytes()
    if memory is not None and nbytes > memory // 2:
        raise ZarrflowError(
            f"array {array.name!r}: one chunk {tuple(chunks)} is {human_bytes(nbytes)} "
            "uncompressed, "
            f"more than half of this machine's memory ({human_bytes(memory)}); it cannot be {what} "
            "whole: rechunk it into smaller chunks first"
        )
