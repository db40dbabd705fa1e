"""Per-chunk write locks: a thread lock in-process, a ``distributed`` lock on a cluster.

A write that covers only part of a chunk is a read-modify-write, and two of
them racing on one chunk would lose an update. Such a write holds the chunk's
lock. Locks are named from the store URL and the chunk key, so every writer of
one chunk, in any thread or worker, agrees on the lock.

In-process locks come from a fixed pool of striped locks (hash of the name), so
the number of lock objects stays bounded however many chunks an array has; two
chunks sharing a stripe only ever wait for each other, never deadlock, because
a writer holds one chunk lock at a time.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter
from typing import Literal

import dask

from zarrflow.telemetry.events import HOOKS, emit_since

__all__ = ["LockKind", "chunk_lock", "lock_name", "resolve_lock_kind"]

LockKind = Literal["thread", "distributed", "none"]

_N_STRIPES = 1024
_STRIPES = [threading.Lock() for _ in range(_N_STRIPES)]


def lock_name(store_url: str, key: str) -> str:
    """The cluster-wide name of the lock guarding one stored object.

    A local store's URL names its files by their real path
    (``os.path.realpath``): a symlinked root and the path it points to
    share their locks. (The lock is only contention avoidance where the store
    has generations: partial writes there are conditional anyway.)

    Parameters
    ----------
    store_url
        The store's URL (``Store.url``).
    key
        The chunk's (or shard's) key.

    Examples
    --------
    >>> lock_name("memory://data/a.zarr", "c/0/1")
    'zarrflow-lock-memory://data/a.zarr/c/0/1'
    """
    if store_url.startswith("file://"):
        store_url = "file://" + _real(store_url[len("file://") :])
    return f"zarrflow-lock-{store_url.rstrip('/')}/{key}"


@functools.lru_cache(maxsize=256)
def _real(path: str) -> str:
    """``os.path.realpath`` of a store root, cached (a root is resolved once per process).

    A cached root that is later re-pointed (a symlink swapped while writers run)
    keeps its old lock name; the conditional writes keep such writers safe.
    """
    return os.path.realpath(path)


def _in_distributed_worker() -> bool:
    try:
        from distributed import get_worker
    except ImportError:  # pragma: no cover - distributed is a dependency
        return False
    try:
        get_worker()
    except ValueError:
        return False
    return True


def resolve_lock_kind(kind: LockKind | None = None) -> LockKind:
    """Choose the lock kind for the current context.

    ``None`` reads ``zarrflow.lock`` from Dask's config (default ``"auto"``):
    a ``distributed`` lock inside a cluster worker, a thread lock otherwise.

    Examples
    --------
    >>> resolve_lock_kind()
    'thread'
    """
    if kind is None:
        kind = dask.config.get("zarrflow.lock", "auto")
    if kind == "auto":
        return "distributed" if _in_distributed_worker() else "thread"
    if kind not in ("thread", "distributed", "none"):
        raise ValueError(f"zarrflow.lock must be auto, thread, distributed or none, not {kind!r}")
    return kind


@contextmanager
def chunk_lock(store_url: str, key: str, kind: LockKind | None = None) -> Iterator[None]:
    """Hold the lock of one chunk (or shard) for a read-modify-write.

    Examples
    --------
    >>> with chunk_lock("memory://x", "c/0/0"):
    ...     pass
    """
    kind = resolve_lock_kind(kind)
    if kind == "none":
        yield
        return
    name = lock_name(store_url, key)
    t0 = perf_counter() if HOOKS else 0.0
    if kind == "thread":
        lock = _STRIPES[hash(name) % _N_STRIPES]
        with lock:
            if t0:
                emit_since(t0, "write", "lock_wait", detail="thread")
            yield
        return
    from distributed import Lock

    dlock = Lock(name)
    dlock.acquire()
    if t0:
        emit_since(t0, "write", "lock_wait", detail="distributed")
    try:
        yield
    finally:
        dlock.release()
