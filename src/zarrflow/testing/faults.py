"""``FaultyStore``: a Store wrapper that fails, slows down and records operations.

Reliability tests need a store that misbehaves on purpose, reproducibly. A
:class:`FaultyStore` wraps any :class:`~zarrflow.storage.Store` and, for the
operations and keys chosen, injects:

* **transient faults** — :class:`~zarrflow.errors.TransientStoreError`, on a
  share ``transient`` of calls; never more than ``max_transient_run`` in a
  row for one key, so a caller retrying ``max_transient_run`` times always
  gets through;
* **permanent faults** — :class:`~zarrflow.errors.StoreError` on every call
  for a share ``permanent`` of keys (the same keys every time);
* **latency spikes** — ``time.sleep(latency)`` on a share ``latency_rate`` of
  targeted calls, as load (never as a way to order events in a test).

Every decision is a hash of ``(seed, operation, key, attempt number for that
key)``, never a shared random stream, so which calls fail does not depend on
thread scheduling: a test can compute the expected failures in advance with
:meth:`FaultyStore.fails_permanently`. Every call is counted (:attr:`calls`)
and every injected fault recorded (:attr:`faults`), which also makes the
wrapper a spy: ``FaultyStore(store, read_only=True)`` with no fault rates
counts write attempts on a store that zarrflow must treat as read-only, and
:attr:`written` / :attr:`deleted` name the keys whose writes went through.

A FaultyStore pickles as its inner store and its settings (counters start
afresh in each process), so it works on process pools and cluster workers.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from zarrflow.errors import ReadOnlyError, StoreError, TransientStoreError
from zarrflow.storage.base import (
    ByteRequest,
    Condition,
    IfGeneration,
    NotModified,
    Store,
    Versioned,
)
from zarrflow.storage.keys import validate_key
from zarrflow.storage.wrapper import StoreWrapper

__all__ = ["OPERATIONS", "FaultyStore", "InjectedFault", "is_metadata_key"]

#: the operation groups faults can target (``get`` covers get, get_range, get_many, exists
#: and the versioned reads; ``set`` covers set_if; ``delete`` covers delete_if)
OPERATIONS = ("get", "set", "delete", "list")
_METADATA_NAMES = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})
_SCALE = float(1 << 64)


def is_metadata_key(key: str) -> bool:
    """True for a metadata document key (``zarr.json``, ``.zarray``, ``.zattrs`` ...).

    Examples
    --------
    >>> is_metadata_key("a/zarr.json"), is_metadata_key("a/c/0/0"), is_metadata_key(".zattrs")
    (True, False, True)
    """
    return key.rpartition("/")[2] in _METADATA_NAMES


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One fault a :class:`FaultyStore` injected: which operation, key, attempt and kind."""

    op: str
    key: str
    attempt: int
    kind: Literal["transient", "permanent"]


def _draw(seed: int, what: str, op: str, key: str, attempt: int = 0) -> float:
    """A reproducible number in [0, 1) for one decision."""
    text = f"{seed}\0{what}\0{op}\0{key}\0{attempt}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "little") / _SCALE


class FaultyStore(StoreWrapper):
    """Wrap ``inner`` and inject seeded transient faults, permanent faults and latency.

    Parameters
    ----------
    inner
        The store that holds the data.
    transient
        Share of calls (per targeted operation and key) that raise
        :class:`~zarrflow.errors.TransientStoreError`.
    permanent
        Share of keys on which every targeted call raises
        :class:`~zarrflow.errors.StoreError`.
    seed
        Chooses which calls and keys fail; the same seed, the same faults.
    ops
        Which operation groups are targeted (faults and latency), out of
        :data:`OPERATIONS`.
    chunks_only
        Target chunk keys only, never metadata documents.
    match
        A regular expression (``re.search``) a key must match to be targeted.
    max_transient_run
        At most this many transient faults in a row for one operation and key.
    latency, latency_rate
        Sleep ``latency`` seconds on a share ``latency_rate`` of the targeted
        calls.
    read_only
        Override the inner store's ``read_only`` flag. A read-only FaultyStore
        counts a write attempt, then refuses it with ReadOnlyError.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = FaultyStore(MemoryStore(), permanent=0.5, ops=("set",), seed=5)
    >>> [k for k in ("k0", "k1", "k2", "k3") if store.fails_permanently("set", k)]
    ['k1']
    >>> store.set("k0", b"ok")
    >>> store.set("k1", b"no")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    StoreError: injected permanent fault: set 'k1' ...
    >>> store.get("k0"), store.calls["set"], len(store.faults)
    (b'ok', 2, 1)
    """

    def __init__(
        self,
        inner: Store,
        *,
        transient: float = 0.0,
        permanent: float = 0.0,
        seed: int = 0,
        ops: Iterable[str] = OPERATIONS,
        chunks_only: bool = False,
        match: str | None = None,
        max_transient_run: int = 2,
        latency: float = 0.0,
        latency_rate: float = 0.0,
        read_only: bool | None = None,
    ) -> None:
        ops = tuple(ops)
        unknown = sorted(set(ops) - set(OPERATIONS))
        if unknown:
            raise ValueError(f"unknown operations {unknown}; expected some of {OPERATIONS}")
        for name, rate in (("transient", transient), ("permanent", permanent)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a share in [0, 1], got {rate!r}")
        self.inner = inner
        self.transient = float(transient)
        self.permanent = float(permanent)
        self.seed = int(seed)
        self.ops = frozenset(ops)
        self.chunks_only = bool(chunks_only)
        self.match = match
        self.max_transient_run = int(max_transient_run)
        self.latency = float(latency)
        self.latency_rate = float(latency_rate)
        self._read_only_override = read_only
        self.read_only = inner.read_only if read_only is None else bool(read_only)
        self.url = inner.url
        self.enabled = True
        self.calls: Counter[str] = Counter()
        self.faults: list[InjectedFault] = []
        self.written: set[str] = set()  # keys whose set() reached the inner store and returned
        self.deleted: set[str] = set()
        self._pattern = re.compile(match) if match is not None else None
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._run: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.inner, self.settings()))

    def settings(self) -> dict[str, Any]:
        """The constructor arguments (without ``inner``): what a pickle carries."""
        return {
            "transient": self.transient,
            "permanent": self.permanent,
            "seed": self.seed,
            "ops": tuple(sorted(self.ops)),
            "chunks_only": self.chunks_only,
            "match": self.match,
            "max_transient_run": self.max_transient_run,
            "latency": self.latency,
            "latency_rate": self.latency_rate,
            "read_only": self._read_only_override,
        }

    # capabilities follow the inner store (StoreWrapper), but for retries --------------
    @property
    def retries_requests(self) -> bool:
        return False  # its own faults reach the caller: the chunk layer retries them

    list_dir = Store.list_dir  # through list_prefix, where "list" faults are injected

    # the fault model ----------------------------------------------------------------------
    def targets(self, op: str, key: str) -> bool:
        """True when calls of operation group ``op`` on ``key`` may be faulted."""
        if op not in self.ops:
            return False
        if self.chunks_only and (op == "list" or is_metadata_key(key)):
            return False
        return self._pattern is None or self._pattern.search(key) is not None

    def fails_permanently(self, op: str, key: str) -> bool:
        """True when every call of ``op`` on ``key`` fails (a pure function of the settings)."""
        return (
            self.permanent > 0.0
            and self.targets(op, key)
            and _draw(self.seed, "permanent", op, key) < self.permanent
        )

    def _before(self, op: str, key: str) -> None:
        """Count the call, then maybe sleep, then maybe raise an injected fault.

        The attempt number and the fault decision are taken under one lock, so
        each key's sequence of decisions is the same whatever the thread order.
        """
        active = self.enabled and self.targets(op, key)
        with self._lock:
            self.calls[op] += 1
            attempt = self._attempts[op, key]
            self._attempts[op, key] = attempt + 1
            fault = self._decide(op, key, attempt) if active else None
            if fault is not None:
                self.faults.append(fault)
        spike = active and self.latency_rate > 0.0
        if spike and _draw(self.seed, "latency", op, key, attempt) < self.latency_rate:
            time.sleep(self.latency)
        if fault is None:
            return
        if fault.kind == "permanent":
            raise StoreError(f"injected permanent fault: {op} {key!r} in {self.url}")
        raise TransientStoreError(
            f"injected transient fault: {op} {key!r} in {self.url} (attempt {attempt})"
        )

    def _decide(self, op: str, key: str, attempt: int) -> InjectedFault | None:
        """The fault for one call (call with the lock held)."""
        if self.fails_permanently(op, key):
            return InjectedFault(op, key, attempt, "permanent")
        run = self._run[op, key]
        if (
            self.transient
            and run < self.max_transient_run
            and _draw(self.seed, "transient", op, key, attempt) < self.transient
        ):
            self._run[op, key] = run + 1
            return InjectedFault(op, key, attempt, "transient")
        self._run[op, key] = 0
        return None

    def _check_writable(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"cannot write key {key!r}: store {self.url} is read-only")

    @contextmanager
    def paused(self) -> Iterator[FaultyStore]:
        """Inject nothing inside the block (calls are still counted).

        Examples
        --------
        >>> from zarrflow.storage import MemoryStore
        >>> store = FaultyStore(MemoryStore(), permanent=1.0)
        >>> with store.paused():
        ...     store.set("k", b"v")
        >>> store.inner.get("k")
        b'v'
        """
        previous, self.enabled = self.enabled, False
        try:
            yield self
        finally:
            self.enabled = previous

    def faults_of(self, kind: str | None = None, op: str | None = None) -> list[InjectedFault]:
        """The injected faults, optionally of one kind and operation group."""
        with self._lock:
            return [
                f
                for f in self.faults
                if (kind is None or f.kind == kind) and (op is None or f.op == op)
            ]

    def reset(self) -> None:
        """Forget the counters, the attempt numbers and the recorded faults."""
        with self._lock:
            self.calls.clear()
            self.faults.clear()
            self.written.clear()
            self.deleted.clear()
            self._attempts.clear()
            self._run.clear()

    # the Store contract ---------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        self._before("get", validate_key(key))
        return self.inner.get(key)

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        self._before("get", validate_key(key))
        return self.inner.get_range(key, request)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        for key in keys:
            self._before("get", validate_key(key))
        return self.inner.get_many(keys)

    def get_ranges(self, requests: Sequence[tuple[str, ByteRequest]]) -> list[bytes | None]:
        for key, _ in requests:
            self._before("get", validate_key(key))
        return self.inner.get_ranges(requests)

    def get_versioned(self, key: str) -> Versioned | None:
        self._before("get", validate_key(key))
        return self.inner.get_versioned(key)

    def get_range_versioned(
        self, key: str, request: ByteRequest, generation: str | None = None
    ) -> Versioned | None:
        self._before("get", validate_key(key))
        return self.inner.get_range_versioned(key, request, generation)

    def get_ranges_versioned(
        self, key: str, requests: Sequence[ByteRequest], generation: str | None = None
    ) -> list[bytes] | None:
        self._before("get", validate_key(key))
        return self.inner.get_ranges_versioned(key, requests, generation)

    def get_if_changed(self, key: str, generation: str) -> Versioned | NotModified | None:
        self._before("get", validate_key(key))
        return self.inner.get_if_changed(key, generation)

    def get_many_if_changed(
        self, requests: Sequence[tuple[str, str | None]]
    ) -> list[Versioned | NotModified | None]:
        for key, _ in requests:
            self._before("get", validate_key(key))
        return self.inner.get_many_if_changed(requests)

    def exists(self, key: str) -> bool:
        self._before("get", validate_key(key))
        return self.inner.exists(key)

    def set(self, key: str, value: bytes) -> None:
        validate_key(key)
        self._before("set", key)
        self._check_writable(key)
        self.inner.set(key, value)
        with self._lock:
            self.written.add(key)

    def set_many(self, items: Mapping[str, bytes]) -> None:
        for key in items:
            validate_key(key)
        for key, value in items.items():
            self.set(key, value)

    def delete(self, key: str) -> None:
        validate_key(key)
        self._before("delete", key)
        self._check_writable(key)
        self.inner.delete(key)
        with self._lock:
            self.deleted.add(key)

    def set_if(self, key: str, value: bytes, condition: Condition) -> str:
        validate_key(key)
        self._before("set", key)
        self._check_writable(key)
        generation = self.inner.set_if(key, value, condition)
        with self._lock:
            self.written.add(key)
        return generation

    def delete_if(self, key: str, condition: IfGeneration) -> None:
        validate_key(key)
        self._before("delete", key)
        self._check_writable(key)
        self.inner.delete_if(key, condition)
        with self._lock:
            self.deleted.add(key)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        self._before("list", prefix)
        return self.inner.list_prefix(prefix)

    def __repr__(self) -> str:
        return (
            f"FaultyStore({self.inner!r}, transient={self.transient}, "
            f"permanent={self.permanent}, seed={self.seed})"
        )


def _rebuild(inner: Store, settings: dict[str, Any]) -> FaultyStore:
    return FaultyStore(inner, **settings)
