"""Telemetry events: what a chunk operation spent its time on, sent to registered hooks.

Any layer may report a phase of its work (a storage request, a decode, a
copy into place, a lock wait, a retry) as an :class:`Event`. Events go to the
callbacks registered with :func:`add_hook` / :class:`hook` and nowhere else:
with no hook registered, reporting costs one truth test of :data:`HOOKS` at
each reporting site, and nothing is timed::

    from zarrflow.telemetry.events import HOOKS, emit

    if HOOKS:
        t0 = time.perf_counter()
    data = store.get(key)
    if HOOKS:
        emit("read", "storage", time.perf_counter() - t0, nbytes=len(data), count=1)

Hooks are process-wide (every thread's work reaches them), called in the
thread that did the work; a hook must be quick and thread-safe. A hook that
raises is removed, so telemetry never breaks a read or a write.

Phases used by zarrflow: ``storage`` (requests; bytes transferred),
``decode`` / ``encode`` (detail: the codecs; bytes decoded or encoded),
``place`` (copies into the result or the chunk), ``lock_wait`` (waiting for
a chunk lock), ``conflict`` (a conditional write that found another
version and will retry), ``retry`` (a transient storage failure retried),
``cache_hit`` / ``cache_miss``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = [
    "HOOKS",
    "Event",
    "add_hook",
    "current_operation",
    "emit",
    "emit_since",
    "hook",
    "operation",
    "remove_hook",
    "report_conflict",
]


@dataclass(frozen=True, slots=True)
class Event:
    """One phase of one operation, over ``count`` chunks (a batch reports once).

    Attributes
    ----------
    operation
        What the caller asked for: ``read``, ``write``, ``stream``, ``map``, ...
    phase
        Where the time went (see the module docstring).
    seconds
        Wall-clock time of the phase.
    nbytes
        Bytes moved or processed (0 when not meaningful).
    count
        Chunks (or requests) the event covers.
    detail
        Free text: the codec names, the store kind.
    """

    operation: str
    phase: str
    seconds: float
    nbytes: int = 0
    count: int = 1
    detail: str = ""


#: the registered callbacks; reporting sites test it before timing anything
HOOKS: list[Callable[[Event], None]] = []
_lock = threading.Lock()
#: the operation the current thread's chunk work belongs to (set by the parallel layer)
_OPERATION: ContextVar[str | None] = ContextVar("zarrflow_operation", default=None)


def add_hook(fn: Callable[[Event], None]) -> None:
    """Send every event to ``fn`` from now on.

    Parameters
    ----------
    fn
        Called with each :class:`Event`, in the thread that did the work.

    Examples
    --------
    >>> seen = []
    >>> add_hook(seen.append)
    >>> emit("read", "decode", 0.001, nbytes=10)
    >>> remove_hook(seen.append); seen[0].phase
    'decode'
    """
    with _lock:
        HOOKS.append(fn)


def remove_hook(fn: Callable[[Event], None]) -> None:
    """Stop sending events to ``fn`` (no error if it was not registered).

    Parameters
    ----------
    fn
        A callback given to :func:`add_hook`.

    Examples
    --------
    >>> remove_hook(print)
    """
    with _lock:
        for i, registered in enumerate(HOOKS):
            if registered == fn:
                del HOOKS[i]
                break


def emit(
    operation: str,
    phase: str,
    seconds: float,
    nbytes: int = 0,
    count: int = 1,
    detail: str = "",
) -> None:
    """Report one phase to every hook (call it only when :data:`HOOKS` is non-empty).

    Parameters
    ----------
    operation, phase, seconds, nbytes, count, detail
        The fields of the :class:`Event`.

    Examples
    --------
    >>> with hook(lambda e: print(e.operation, e.phase, e.nbytes)):
    ...     emit("write", "encode", 0.002, nbytes=4096)
    write encode 4096
    """
    event = Event(operation, phase, seconds, nbytes, count, detail)
    for fn in tuple(HOOKS):
        try:
            fn(event)
        except Exception:  # a broken hook goes; the read or write it watched goes on
            remove_hook(fn)


def current_operation(default: str) -> str:
    """The operation :class:`operation` set in this thread, else ``default``.

    Parameters
    ----------
    default
        What the caller does when nobody named the operation (``read``, ``write``).

    Examples
    --------
    >>> current_operation("read")
    'read'
    >>> with operation("stream"):
    ...     current_operation("read")
    'stream'
    """
    return _OPERATION.get() or default


def emit_since(
    started: float,
    default_operation: str,
    phase: str,
    nbytes: int = 0,
    count: int = 1,
    detail: str = "",
) -> None:
    """Report a phase that began at ``started`` (``time.perf_counter()``) and ends now.

    The operation is the one :class:`operation` set in this thread, else
    ``default_operation`` (what the reporting site does: ``read`` or ``write``).
    A reporting site times only when :data:`HOOKS` is non-empty::

        t0 = time.perf_counter() if HOOKS else 0.0
        values = store.get_many(keys)
        if t0:
            emit_since(t0, "read", "storage", nbytes=..., count=len(keys))

    Parameters
    ----------
    started
        ``time.perf_counter()`` when the phase began.
    default_operation
        The operation's name when no :class:`operation` is set.
    phase, nbytes, count, detail
        The fields of the :class:`Event`.

    Examples
    --------
    >>> with hook(lambda e: print(e.operation, e.phase)), operation("stream"):
    ...     emit_since(time.perf_counter(), "read", "decode")
    stream decode
    """
    emit(
        _OPERATION.get() or default_operation,
        phase,
        time.perf_counter() - started,
        nbytes,
        count,
        detail,
    )


def report_conflict(seconds: float = 0.0, detail: str = "") -> None:
    """Report that a conditional write found another version and will merge and retry.

    For the read-modify-write loops (``GenerationConflictError`` caught):
    phase ``conflict``, operation ``write`` unless one is set; ``seconds``
    the time the lost attempt cost. Free when no hook is registered.

    Parameters
    ----------
    seconds
        Time spent on the attempt that lost.
    detail
        What conflicted (e.g. ``chunk`` or ``shard``).

    Examples
    --------
    >>> with hook(lambda e: print(e.operation, e.phase, e.detail)):
    ...     report_conflict(0.01, "chunk")
    write conflict chunk
    """
    if HOOKS:
        emit(_OPERATION.get() or "write", "conflict", seconds, 0, 1, detail)


class operation:
    """Name the operation that chunk work in this ``with`` block (this thread) belongs to.

    The parallel layer sets it in each task (``stream``, ``map``); chunk work
    outside any (``a[...]``, ``to_dask``, writes) reports as ``read`` or
    ``write``. Setting it costs one context-variable write, hooks or not.

    Parameters
    ----------
    name
        The operation's name in events.

    Examples
    --------
    >>> with hook(lambda e: print(e.operation)), operation("map"):
    ...     emit_since(time.perf_counter(), "read", "storage")
    map
    """

    __slots__ = ("name", "token")

    def __init__(self, name: str) -> None:
        self.name = name
        self.token = None

    def __enter__(self) -> str:
        self.token = _OPERATION.set(self.name)
        return self.name

    def __exit__(self, *exc_info: object) -> None:
        _OPERATION.reset(self.token)


class hook:
    """Register ``fn`` for the duration of a ``with`` block.

    Parameters
    ----------
    fn
        Called with each :class:`Event`.

    Examples
    --------
    >>> events = []
    >>> with hook(events.append):
    ...     emit("read", "storage", 0.01, nbytes=100)
    >>> len(events), HOOKS == []
    (1, True)
    """

    def __init__(self, fn: Callable[[Event], None]) -> None:
        self.fn = fn

    def __enter__(self) -> Callable[[Event], None]:
        add_hook(self.fn)
        return self.fn

    def __exit__(self, *exc_info: object) -> None:
        remove_hook(self.fn)
