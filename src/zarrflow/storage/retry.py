"""Retries with bounded backoff, and one process-wide budget of outstanding requests.

Two knobs, both under Dask's config namespace (see :mod:`zarrflow.config`):

``zarrflow.io_concurrency`` (default 64)
    The most storage requests this process has outstanding at once, over every
    remote store, Dask thread and call: a :class:`RequestBudget` shared by the
    whole process, not Dask threads × a per-call concurrency. CPU concurrency
    (how many chunks decode at once) stays with Dask's threads; a cloud store
    needs this one high while that one stays at the core count.
``zarrflow.retries`` (``attempts``, ``backoff``, ``max_backoff``, ``max_time``)
    How a request that failed transiently (:func:`~zarrflow.storage.failures.
    is_transient_error`) is retried: at most ``attempts`` tries; before try
    *n* + 1 a sleep of ``min(max_backoff, backoff * 2**(n-1))``, half of it
    fixed and half random ("equal jitter", so that throttled clients spread
    out but always back off); and never past ``max_time`` seconds after the
    first try began — each try is cancelled when the time is up. Missing
    objects and permanent errors are never retried. A request holds a slot of
    the budget only while it is on the wire, not while it sleeps.

The outcome of a request is its value or a :class:`Failure` (never an
exception escaping sideways), so a batch can tell each key's fate.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dask

from zarrflow.errors import StoreError, TransientStoreError
from zarrflow.storage.failures import failure_kind, hint
from zarrflow.telemetry.events import HOOKS, current_operation, emit

__all__ = [
    "Failure",
    "RequestBudget",
    "RetryPolicy",
    "call_async",
    "call_sync",
    "failures_by_key",
    "io_budget",
    "raise_first_failure",
    "report_retry",
    "request_error",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried (see the module docstring).

    Examples
    --------
    >>> policy = RetryPolicy(attempts=4, backoff=0.1, max_backoff=0.3, max_time=10)
    >>> [0.05 <= policy.delay(n) <= 0.1 for n in (1,)], 0.15 <= policy.delay(3) <= 0.3
    ([True], True)
    """

    attempts: int = 5
    backoff: float = 0.1
    max_backoff: float = 5.0
    max_time: float = 60.0

    def __post_init__(self) -> None:
        if int(self.attempts) < 1 or min(self.backoff, self.max_backoff) < 0 or self.max_time <= 0:
            raise ValueError(
                f"invalid retry settings {self}: expected attempts >= 1, backoff and "
                "max_backoff >= 0, max_time > 0"
            )

    @classmethod
    def from_config(cls) -> RetryPolicy:
        """The policy ``zarrflow.retries`` sets now.

        Examples
        --------
        >>> import dask
        >>> with dask.config.set({"zarrflow.retries.attempts": 2}):
        ...     RetryPolicy.from_config().attempts
        2
        """
        cfg = dask.config.get("zarrflow.retries", {}) or {}
        default = cls()
        return cls(
            attempts=int(cfg.get("attempts", default.attempts)),
            backoff=float(cfg.get("backoff", default.backoff)),
            max_backoff=float(cfg.get("max_backoff", default.max_backoff)),
            max_time=float(cfg.get("max_time", default.max_time)),
        )

    def delay(self, failures: int) -> float:
        """Seconds to sleep after ``failures`` failed tries (equal jitter)."""
        cap = min(self.max_backoff, self.backoff * 2 ** (failures - 1))
        return cap / 2 + random.uniform(0, cap / 2)


@dataclass(frozen=True, slots=True)
class Failure:
    """A request that did not succeed: why, and after how many tries and seconds."""

    exception: BaseException
    kind: str  # "missing", "transient" or "permanent"
    attempts: int
    elapsed: float

    def describe(self) -> str:
        """``"ExcType: message"`` plus how long it was tried, for error messages."""
        text = str(self.exception)
        what = f"{type(self.exception).__name__}: {text}" if text else type(self.exception).__name__
        if self.kind == "transient":
            return f"{what} (gave up after {self.attempts} attempt(s) in {self.elapsed:.2f} s)"
        return what


class RequestBudget:
    """A process-wide limit on outstanding requests, usable from threads and event loops.

    The limit is read from ``zarrflow.io_concurrency`` at every acquisition
    (or fixed with ``limit=``), so it can be changed at any time. A slot freed
    by one request is handed straight to the oldest waiter, whether it waits
    in a thread or in a coroutine on any event loop.

    Examples
    --------
    >>> budget = RequestBudget(limit=2)
    >>> with budget:
    ...     budget.in_use
    1
    """

    def __init__(self, limit: int | None = None) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._waiters: deque[Any] = deque()
        self.in_use = 0

    @property
    def limit(self) -> int:
        value = self._limit
        if value is None:
            value = dask.config.get("zarrflow.io_concurrency", 64)
        return max(1, int(value or 1))

    def _try_take(self) -> bool:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return True
        return False

    def acquire(self) -> None:
        """Take a slot, blocking the calling thread until one is free."""
        with self._lock:
            if self._try_take():
                return
            event = threading.Event()
            self._waiters.append(event)
        event.wait()

    async def acquire_async(self) -> None:
        """Take a slot, suspending the calling coroutine until one is free."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._try_take():
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted, but cancelled before it could be used
            raise

    def release(self) -> None:
        """Give a slot back (to the oldest waiter, if any)."""
        with self._lock:
            self.in_use -= 1
            while self._waiters and self.in_use < self.limit:
                waiter = self._waiters.popleft()
                if isinstance(waiter, threading.Event):
                    self.in_use += 1
                    waiter.set()
                    continue
                loop, future = waiter
                if future.cancelled():
                    continue
                self.in_use += 1
                loop.call_soon_threadsafe(self._grant, future)

    def _grant(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            self.release()
        else:
            future.set_result(None)

    def __enter__(self) -> RequestBudget:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_BUDGET = RequestBudget()


def io_budget() -> RequestBudget:
    """The process-wide :class:`RequestBudget` every remote store shares.

    Examples
    --------
    >>> io_budget() is io_budget()
    True
    """
    return _BUDGET


def _failure(exc: BaseException, attempt: int, started: float, now: float) -> Failure:
    return Failure(exc, failure_kind(exc), attempt, now - started)


def report_retry(failure: Failure, pause: float) -> None:
    """Tell telemetry hooks that a transient failure is retried after ``pause`` seconds.

    The event's phase is ``retry``, its seconds the pause, its detail the
    exception's type; the operation is the caller's (``read`` by default).

    Parameters
    ----------
    failure
        The failed try.
    pause
        The backoff before the next try.

    Examples
    --------
    >>> from zarrflow.telemetry import hook
    >>> with hook(lambda e: print(e.phase, e.detail)):
    ...     report_retry(Failure(TimeoutError(), "transient", 1, 0.0), 0.1)
    retry TimeoutError
    """
    if HOOKS:
        operation = current_operation("read")
        emit(operation, "retry", pause, 0, 1, type(failure.exception).__name__)


async def call_async(
    request: Callable[[], Awaitable[T]],
    policy: RetryPolicy | None = None,
    budget: RequestBudget | None = None,
) -> T | Failure:
    """Await ``request()`` under ``budget``, retrying transient failures per ``policy``.

    ``policy=None`` reads ``zarrflow.retries``; ``budget=None`` takes no slot.
    Returns the result, or a :class:`Failure` for a missing object, a permanent
    error, or a transient one that outlasted the attempts or the time.

    Examples
    --------
    >>> import asyncio
    >>> tries = []
    >>> async def flaky():
    ...     tries.append(1)
    ...     if len(tries) < 3:
    ...         raise ConnectionResetError("reset by peer")
    ...     return b"ok"
    >>> asyncio.run(call_async(flaky, RetryPolicy(backoff=0.001))), len(tries)
    (b'ok', 3)
    """
    policy = policy or RetryPolicy.from_config()
    loop = asyncio.get_running_loop()
    started = deadline = 0.0
    for attempt in range(1, policy.attempts + 1):
        if budget is not None:
            await budget.acquire_async()
        try:
            if attempt == 1:  # time spent queueing for the budget is not failure time
                started = loop.time()
                deadline = started + policy.max_time
            async with asyncio.timeout_at(deadline):  # no extra task, unlike wait_for
                return await request()
        except Exception as exc:  # the deadline's TimeoutError included
            failure = _failure(exc, attempt, started, loop.time())
        finally:
            if budget is not None:
                budget.release()
        pause = policy.delay(attempt)
        if failure.kind != "transient" or attempt == policy.attempts:
            return failure
        if loop.time() + pause >= deadline:
            return failure
        report_retry(failure, pause)
        await asyncio.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def call_sync(
    request: Callable[[], T],
    policy: RetryPolicy | None = None,
    budget: RequestBudget | None = None,
    *,
    failed: BaseException | None = None,
) -> T | Failure:
    """``request()`` with the retries of :func:`call_async`, in the calling thread.

    A try that hangs cannot be cancelled here; the filesystem's own timeouts
    bound it. ``budget=None`` takes no budget slot (for local filesystems).
    ``failed``: the caller already made the first try, which raised this; the
    retries follow as if this call had made it (the hot path of
    :class:`~zarrflow.storage.retrying.RetryingStore` tries once, plainly,
    and only then asks here).

    Examples
    --------
    >>> call_sync(lambda: 1 / 0).kind, call_sync(lambda: 42)
    ('permanent', 42)
    >>> call_sync(lambda: 42, RetryPolicy(backoff=0.001), failed=TimeoutError("slow"))
    42
    """
    policy = policy or RetryPolicy.from_config()
    started = time.monotonic()
    deadline = started + policy.max_time
    failure = None if failed is None else _failure(failed, 1, started, started)
    for attempt in range(1 if failure is None else 2, policy.attempts + 1):
        if failure is not None:  # a try failed: retry a transient failure after a pause
            pause = policy.delay(attempt - 1)
            if failure.kind != "transient" or time.monotonic() + pause >= deadline:
                return failure
            report_retry(failure, pause)
            time.sleep(pause)
        if budget is not None:
            budget.acquire()
        try:
            return request()
        except Exception as exc:
            failure = _failure(exc, attempt, started, time.monotonic())
        finally:
            if budget is not None:
                budget.release()
    assert failure is not None
    return failure


def request_error(url: str, action: str, key: str, failure: Failure, others: int = 0) -> StoreError:
    """The StoreError (TransientStoreError after retries) for a failed request.

    Parameters
    ----------
    url
        The store's URL.
    action
        What was attempted, as in "could not <action> key ...".
    key
        The key of the failed request.
    failure
        How it failed.
    others
        How many more keys of the same batch failed.

    Examples
    --------
    >>> failure = Failure(TimeoutError("slow"), "transient", 3, 1.5)
    >>> print(request_error("s3://b", "read", "a/c/0", failure))
    could not read key 'a/c/0' in s3://b: TimeoutError: slow (gave up after 3 attempt(s) in 1.50 s)
    """
    cls = TransientStoreError if failure.kind == "transient" else StoreError
    advice = hint(failure.exception)
    more = f"; {others} more key(s) failed too" if others else ""
    return cls(
        f"could not {action} key {key!r} in {url}: {failure.describe()}"
        + (f" — {advice}" if advice else "")
        + more
    )


def raise_first_failure(
    url: str, action: str, keys: Sequence[str], outcomes: Sequence[Any]
) -> None:
    """Raise :func:`request_error` for the first Failure in ``outcomes`` (the key at its index).

    Parameters
    ----------
    url
        The store's URL.
    action
        What was attempted.
    keys, outcomes
        The batch's keys and, at the same indexes, their values or Failures.

    Examples
    --------
    >>> raise_first_failure("memory://x", "write", ["a", "b"], [None, None])
    >>> failed = Failure(PermissionError("denied"), "permanent", 1, 0.0)
    >>> raise_first_failure("memory://x", "write", ["a", "b"], [None, failed])
    Traceback (most recent call last):
    ...
    zarrflow.errors.StoreError: could not write key 'b' in memory://x: PermissionError: denied...
    """
    failed = [i for i, o in enumerate(outcomes) if isinstance(o, Failure)]
    if failed:
        failure = outcomes[failed[0]]
        error = request_error(url, action, keys[failed[0]], failure, len(failed) - 1)
        raise error from failure.exception


def failures_by_key(
    url: str, action: str, keys: Sequence[str], outcomes: Sequence[Any]
) -> dict[str, Exception]:
    """The :func:`request_error` of each key whose outcome is a Failure, caused by its exception.

    Parameters
    ----------
    url
        The store's URL.
    action
        What was attempted.
    keys, outcomes
        The batch's keys and, at the same indexes, their values or Failures.

    Examples
    --------
    >>> failed = Failure(PermissionError("denied"), "permanent", 1, 0.0)
    >>> errors = failures_by_key("memory://x", "write", ["a", "b"], [None, failed])
    >>> list(errors), type(errors["b"].__cause__).__name__
    (['b'], 'PermissionError')
    """
    failed: dict[str, Exception] = {}
    for key, outcome in zip(keys, outcomes, strict=True):
        if isinstance(outcome, Failure):
            error = request_error(url, action, key, outcome)
            error.__cause__ = outcome.exception
            failed[key] = error
    return failed
