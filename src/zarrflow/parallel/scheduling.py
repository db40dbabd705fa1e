"""Which scheduler runs zarrflow's tasks: the ``scheduler=`` argument, resolved as Dask does.

``scheduler`` accepts what Dask accepts: ``None`` (Dask's current default, so an
active ``distributed.Client`` is used), ``"threads"``, ``"sync"``,
``"processes"``, a ``Client``, or a scheduler address.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import dask

__all__ = ["Backend", "default_parallelism", "own_thread_pool", "resolve_backend"]

Kind = Literal["sync", "threads", "processes", "distributed"]

_SYNC = {"sync", "synchronous", "single-threaded"}
_THREADS = {"threads", "threading"}
_PROCESSES = {"processes", "multiprocessing"}
_clients_by_address: dict[str, Any] = {}


@dataclass(frozen=True)
class Backend:
    """A resolved scheduler: its kind, and the ``Client`` when it is distributed."""

    kind: Kind
    client: Any = None

    @property
    def dask_scheduler(self) -> Any:
        """What to pass as ``scheduler=`` to ``dask.compute``."""
        if self.kind == "distributed":
            return self.client
        return {"sync": "sync", "threads": "threads", "processes": "processes"}[self.kind]

    @property
    def can_share_memory(self) -> bool:
        """Tasks run in this process (they may fill a shared output array)."""
        return self.kind in ("sync", "threads")


def default_parallelism() -> int:
    """``zarrflow.parallelism`` from Dask's config, or the number of usable cores.

    Examples
    --------
    >>> default_parallelism() >= 1
    True
    """
    value = dask.config.get("zarrflow.parallelism", None)
    if value:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _client_for_address(address: str):
    from distributed import Client

    client = _clients_by_address.get(address)
    if client is None or client.status in ("closed", "closing"):
        client = Client(address, set_as_default=False)
        _clients_by_address[address] = client
    return client


def _is_client(obj: Any) -> bool:
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Client)


def resolve_backend(scheduler: Any = None) -> Backend:
    """Turn a Dask-style ``scheduler`` argument into a :class:`Backend`.

    Examples
    --------
    >>> resolve_backend("sync").kind
    'sync'
    >>> resolve_backend().kind   # no client active: Dask's threaded default
    'threads'
    """
    if scheduler is None:
        scheduler = dask.config.get("scheduler", None)
    if scheduler is None:
        get = dask.base.get_scheduler()
        owner = getattr(get, "__self__", None)
        if _is_client(owner):
            return Backend("distributed", owner)
        if get is dask.local.get_sync:
            return Backend("sync")
        module = getattr(get, "__module__", "")
        return Backend("processes" if "multiprocessing" in module else "threads")
    if _is_client(scheduler):
        return Backend("distributed", scheduler)
    if isinstance(scheduler, str):
        name = scheduler.lower()
        if name in _SYNC:
            return Backend("sync")
        if name in _THREADS:
            return Backend("threads")
        if name in _PROCESSES:
            return Backend("processes")
        if name in ("distributed", "dask.distributed"):
            from distributed import default_client

            return Backend("distributed", default_client())
        if "://" in name or ":" in name:
            return Backend("distributed", _client_for_address(scheduler))
    raise ValueError(
        "scheduler must be None, 'threads', 'sync', 'processes', a distributed Client or a "
        f"scheduler address, not {scheduler!r}"
    )


@contextmanager
def own_thread_pool(workers: int | None = None) -> Iterator[ThreadPoolExecutor]:
    """A thread pool for one graph execution, pass it to Dask as ``pool=``.

    When the block ends, error or not, tasks not yet started are cancelled and
    the running ones are waited for: after a failed write returns, none of its
    tasks is still writing. ``workers`` defaults to Dask's ``num_workers``, else
    :func:`default_parallelism`.

    Examples
    --------
    >>> import dask
    >>> with own_thread_pool(2) as pool:
    ...     dask.threaded.get({"x": (sum, [1, 2])}, "x", pool=pool)
    3
    """
    n = workers or dask.config.get("num_workers", None) or default_parallelism()
    pool = ThreadPoolExecutor(int(n), thread_name_prefix="zarrflow")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
