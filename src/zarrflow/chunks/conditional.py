"""Read-modify-write that loses nothing: read with the generation, merge, write if unchanged.

A write covering part of a chunk (or of a shard) must merge into what is
stored. Locks make that safe only among writers that share them (one process,
one Dask cluster). On a store with generations (``Store.supports_generations``:
local files, memory, S3 through fsspec) :func:`read_modify_write` makes it safe
among *any* writers — independent processes, a client thread beside cluster
tasks, a worker that outlived its lock lease:

1. read the stored bytes with their generation (``get_versioned``);
2. merge the change into them (``merge``, a pure function of the old bytes);
3. store the result only if the generation is unchanged (``set_if`` with
   :class:`~zarrflow.storage.IfGeneration`, :class:`~zarrflow.storage.IfAbsent`
   when nothing was stored; ``delete_if`` when the result is not to be stored);
4. on :class:`~zarrflow.errors.GenerationConflictError` someone wrote in
   between: wait a short, jittered, growing time and start again from 1 with
   fresh bytes. After ``_MAX_ATTEMPTS`` conflicts in a row the write fails
   with a :class:`~zarrflow.errors.StoreError` naming the key (nothing of it stored).

Stores without generations (zip, plain HTTP) fall back to a plain read and
write; the caller's lock is then the only protection (see docs/reliability.md).
``dask.config.set({"zarrflow.conditional_writes": False})`` forces that
fallback everywhere: it exists to show, in tests and benchmarks, what the
conditional write prevents, never for production use.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from time import perf_counter

import dask

from zarrflow.errors import GenerationConflictError, StoreError
from zarrflow.storage import IfAbsent, IfGeneration, Store
from zarrflow.telemetry.events import HOOKS, emit_since, report_conflict

__all__ = ["conditional_writes", "read_modify_write"]

#: conflicts in a row before a read-modify-write gives up
_MAX_ATTEMPTS = 100
#: backoff after the n-th conflict: uniform in [0, min(_MAX_BACKOFF, _BACKOFF * 2**n)] seconds
_BACKOFF = 0.0005
_MAX_BACKOFF = 0.05


def conditional_writes(store: Store) -> bool:
    """True when partial writes to ``store`` are conditional (generation-checked).

    That is when the store supports generations and ``zarrflow.conditional_writes``
    is on (the default).

    Parameters
    ----------
    store
        The store the chunks live in.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> conditional_writes(MemoryStore())
    True
    >>> with dask.config.set({"zarrflow.conditional_writes": False}):
    ...     conditional_writes(MemoryStore())
    False
    """
    return bool(dask.config.get("zarrflow.conditional_writes", True)) and bool(
        store.supports_generations
    )


def read_modify_write(
    store: Store,
    key: str,
    merge: Callable[[bytes | None], bytes | None],
    name: str = "",
) -> None:
    """Replace the value at ``key`` by ``merge(old)``, losing no concurrent write.

    ``merge`` receives the stored bytes (None when nothing is stored) and
    returns the new bytes, or None for "store nothing" (the key is then
    deleted, if it held something). On a store with generations the write is
    conditional and retried against fresh bytes on conflict (see the module
    notes); elsewhere it is a plain read and write.

    Parameters
    ----------
    store
        Where the value lives.
    key
        Its key.
    merge
        Old bytes (or None) -> new bytes (or None). Called once per attempt:
        it must not have side effects beyond its result.
    name
        The array's name, for the error raised after too many conflicts.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = MemoryStore()
    >>> read_modify_write(store, "n", lambda old: b"1" if old is None else old + b"1")
    >>> read_modify_write(store, "n", lambda old: b"1" if old is None else old + b"1")
    >>> store.get("n")
    b'11'
    """
    if not conditional_writes(store):
        t0 = perf_counter() if HOOKS else 0.0
        old = store.get(key)
        if t0:
            emit_since(t0, "write", "storage", len(old or b""))
        new = merge(old)
        t0 = perf_counter() if HOOKS else 0.0
        if new is not None:
            store.set(key, new)
        elif old is not None:
            store.delete(key)
        if t0:
            emit_since(t0, "write", "storage", len(new or b""))
        return
    last: GenerationConflictError | None = None
    for attempt in range(_MAX_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(_MAX_BACKOFF, _BACKOFF * 2**attempt)))
        started = t0 = perf_counter() if HOOKS else 0.0
        stored = store.get_versioned(key)
        if t0:
            emit_since(t0, "write", "storage", 0 if stored is None else len(stored.data))
        new = merge(None if stored is None else stored.data)
        t0 = perf_counter() if HOOKS else 0.0
        try:
            if new is not None:
                condition = IfAbsent() if stored is None else IfGeneration(stored.generation)
                store.set_if(key, new, condition)
            elif stored is not None:
                store.delete_if(key, IfGeneration(stored.generation))
            if t0:
                emit_since(t0, "write", "storage", len(new or b""))
            return
        except GenerationConflictError as e:  # written in between: merge into the new bytes
            last = e
            if started:
                report_conflict(perf_counter() - started, "chunk")
    raise StoreError(
        f"array {name!r}: chunk key {key!r} changed under {_MAX_ATTEMPTS} read-modify-writes "
        f"in a row (other writers kept winning); nothing of this write was stored"
    ) from last
