"""``zarrflow.profile()``: gather telemetry events into a table of where the time went.

In this process the profile registers a hook (:mod:`.events`) and sums the
events by operation and phase. With a ``distributed`` client (the active one,
or the one passed in) it also registers a hook on every worker when it
starts, and collects the workers' sums when it ends, so work done on the
cluster counts too. Only sums travel back, never the events themselves.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from zarrflow.telemetry.events import Event, add_hook, remove_hook

__all__ = ["PhaseTotal", "Profile", "profile"]

Totals = dict[tuple[str, str, str], list[float]]  # (operation, phase, detail) -> count, s, bytes
_worker_profiles: dict[str, _Collector] = {}


@dataclass(frozen=True)
class PhaseTotal:
    """The sum of one operation's phase: chunks, seconds and bytes."""

    operation: str
    phase: str
    detail: str
    count: int
    seconds: float
    nbytes: int

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / self.seconds / 1e6 if self.seconds > 0 and self.nbytes else 0.0


class _Collector:
    """A thread-safe hook that sums events by (operation, phase, detail)."""

    def __init__(self) -> None:
        self.totals: Totals = {}
        self._lock = threading.Lock()

    def __call__(self, e: Event) -> None:
        k = (e.operation, e.phase, e.detail)
        with self._lock:
            t = self.totals.get(k)
            if t is None:
                self.totals[k] = [e.count, e.seconds, e.nbytes]
            else:
                t[0] += e.count
                t[1] += e.seconds
                t[2] += e.nbytes

    def snapshot(self) -> Totals:
        with self._lock:
            return {k: list(v) for k, v in self.totals.items()}


def _merge(into: Totals, more: Totals) -> None:
    for k, (c, s, b) in more.items():
        t = into.setdefault(k, [0, 0.0, 0])
        t[0] += c
        t[1] += s
        t[2] += b


def start_worker_profile(token: str) -> None:
    """Register a collecting hook in this (worker) process under ``token``.

    Parameters
    ----------
    token
        Names the profile; :func:`stop_worker_profile` returns its sums.

    Examples
    --------
    >>> start_worker_profile("doc"); stop_worker_profile("doc")
    {}
    """
    collector = _Collector()
    _worker_profiles[token] = collector
    add_hook(collector)


def stop_worker_profile(token: str) -> Totals:
    """Unregister the hook of :func:`start_worker_profile` and return its sums.

    Parameters
    ----------
    token
        The name given to :func:`start_worker_profile`.

    Examples
    --------
    >>> stop_worker_profile("never-started")
    {}
    """
    collector = _worker_profiles.pop(token, None)
    if collector is None:
        return {}
    remove_hook(collector)
    return collector.snapshot()


def _active_client(client: Any) -> Any:
    if client is not None:
        return client
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:  # no client in this process
        return None


class Profile:
    """The result of :func:`profile`: sums per operation and phase.

    Attributes
    ----------
    wall_seconds
        Wall-clock time of the ``with`` block.
    workers
        How many cluster workers reported (0 without a cluster).
    """

    def __init__(self, client: Any = None) -> None:
        self._client = client
        self._collector = _Collector()
        self._token = f"zarrflow-profile-{uuid.uuid4().hex}"
        self._worker_totals: Totals = {}
        self.workers = 0
        self.wall_seconds = 0.0
        self._t0 = 0.0

    def __enter__(self) -> Profile:
        self._client = _active_client(self._client)
        if self._client is not None:
            replies = self._client.run(start_worker_profile, self._token)
            self.workers = len(replies)
        add_hook(self._collector)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall_seconds = time.perf_counter() - self._t0
        remove_hook(self._collector)
        if self._client is not None:
            for totals in self._client.run(stop_worker_profile, self._token).values():
                _merge(self._worker_totals, totals)

    def totals(self) -> list[PhaseTotal]:
        """Every (operation, phase, detail) with its sums, this process and the workers'.

        Examples
        --------
        >>> from zarrflow.telemetry.events import emit
        >>> with Profile() as p:
        ...     emit("read", "decode", 0.5, nbytes=10**6, count=4, detail="zstd")
        >>> [(t.phase, t.count, t.nbytes) for t in p.totals()]
        [('decode', 4, 1000000)]
        """
        merged: Totals = self._collector.snapshot()
        _merge(merged, self._worker_totals)
        return [
            PhaseTotal(op, phase, detail, int(c), float(s), int(b))
            for (op, phase, detail), (c, s, b) in sorted(merged.items())
        ]

    def summary(self) -> str:
        """A markdown table: per operation and phase, chunks, seconds, share, MB and MB/s.

        ``share`` is the phase's part of its operation's summed phase time
        (phases of parallel work add up to more than the wall clock).

        Examples
        --------
        >>> from zarrflow.telemetry.events import emit
        >>> with Profile() as p:
        ...     emit("read", "storage", 0.3, nbytes=2_000_000)
        ...     emit("read", "decode", 0.1, nbytes=8_000_000)
        >>> print(p.summary().splitlines()[3])
        | read | storage |  | 1 | 0.300 | 75% | 2.0 | 7 |
        """
        rows = self.totals()
        per_op: dict[str, float] = {}
        for t in rows:
            per_op[t.operation] = per_op.get(t.operation, 0.0) + t.seconds
        lines = [
            "| operation | phase | detail | chunks | seconds | share | MB | MB/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in rows:
            share = t.seconds / per_op[t.operation] if per_op[t.operation] else 0.0
            lines.append(
                f"| {t.operation} | {t.phase} | {t.detail} | {t.count} | {t.seconds:.3f} "
                f"| {share:.0%} | {t.nbytes / 1e6:.1f} | {t.mb_per_s:.0f} |"
            )
        return "\n".join(lines)

    def to_dataframe(self):
        """The sums as a pandas DataFrame, one row per (operation, phase, detail).

        Examples
        --------
        >>> from zarrflow.telemetry.events import emit
        >>> with Profile() as p:
        ...     emit("read", "storage", 0.2, nbytes=100)
        >>> list(p.to_dataframe().columns)
        ['operation', 'phase', 'detail', 'count', 'seconds', 'nbytes', 'mb_per_s']
        """
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "operation": t.operation,
                    "phase": t.phase,
                    "detail": t.detail,
                    "count": t.count,
                    "seconds": t.seconds,
                    "nbytes": t.nbytes,
                    "mb_per_s": t.mb_per_s,
                }
                for t in self.totals()
            ],
            columns=["operation", "phase", "detail", "count", "seconds", "nbytes", "mb_per_s"],
        )

    def seconds(self, phase: str, operations: Iterable[str] | None = None) -> float:
        """Summed seconds of ``phase`` (over ``operations``, or all of them).

        Examples
        --------
        >>> from zarrflow.telemetry.events import emit
        >>> with Profile() as p:
        ...     emit("read", "decode", 0.25); emit("write", "decode", 0.5)
        >>> p.seconds("decode"), p.seconds("decode", ["read"])
        (0.75, 0.25)
        """
        ops = None if operations is None else set(operations)
        return sum(
            t.seconds
            for t in self.totals()
            if t.phase == phase and (ops is None or t.operation in ops)
        )


def profile(client: Any = None) -> Profile:
    """Gather where zarrflow's time goes inside a ``with`` block.

    Parameters
    ----------
    client
        A ``distributed.Client`` whose workers also report; by default the
        active client, if any.

    Returns
    -------
    Profile
        Use it as a context manager; afterwards ``summary()``, ``totals()``,
        ``to_dataframe()``.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-profile", shape=(100,), chunks=(10,), dtype="f8")
    >>> with zf.profile() as p:
    ...     a[:] = 1.0
    ...     _ = a[:]
    >>> {"decode", "encode", "storage"} <= {t.phase for t in p.totals()}
    True
    """
    return Profile(client)
