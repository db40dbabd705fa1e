"""The ``Store`` contract: a flat mapping of string keys to bytes.

A store knows nothing of Zarr. Keys are ``/``-separated relative paths such as
``"a/zarr.json"`` or ``"a/c/0/1"``; values are ``bytes``. A missing key reads as
``None`` (never an exception), so callers can tell "not written" from "failed".
Byte ranges are plain values (:data:`ByteRequest`), and what a store can do is
said by its capability properties, not discovered by catching exceptions.

Generations and conditional writes
----------------------------------
A store whose ``supports_generations`` is True gives every stored object a
**generation**: an opaque string, equal for two reads exactly when they saw
the same stored version (a local file's inode/size/mtime, an S3 ETag, a
counter in memory). Six methods use it; all take and return plain values:

``get_versioned(key) -> Versioned | None``
    The bytes and the generation they belong to.
``get_range_versioned(key, request, generation=None) -> Versioned | None``
    Part of one version; with ``generation``, only of that version (a missing
    key then is a conflict too, not ``None``).
``get_ranges_versioned(key, requests, generation=None) -> list[bytes] | None``
    Several ranges of one object, all from one version (a shard's index and
    its inner chunks), never a mix.
``set_if(key, value, condition) -> str``
    Write only if ``condition`` holds (:class:`IfGeneration` or
    :class:`IfAbsent`); returns the new generation.
``delete_if(key, condition)``
    Delete only if the object still has that generation.
``get_if_changed(key, generation) -> Versioned | None | NOT_MODIFIED``
    Revalidate a cached copy: :data:`NOT_MODIFIED` when the object still has
    ``generation`` (a local ``stat``, an S3 ``If-None-Match`` GET: no bytes
    move), else what :meth:`get_versioned` returns. ``get_many_if_changed``
    asks for many keys at once (overlapped by remote stores).

Whenever the stored object is not the expected version, these raise
:class:`~zarrflow.errors.GenerationConflictError` and change nothing. That
error is not an ``OSError``: no retry layer retries it, the caller re-reads
and tries again. Read-modify-write is therefore::

    while True:
        old = store.get_versioned(key)
        new = merge(old)
        try:
            store.set_if(key, new, IfAbsent() if old is None else IfGeneration(old.generation))
            break
        except GenerationConflictError:
            continue  # someone else wrote in between: merge into what is stored now

A store without generations (zip, plain HTTP) raises
:class:`~zarrflow.errors.UnsupportedOperationError` from all six.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from zarrflow.errors import (
    GenerationConflictError,
    ReadOnlyError,
    StoreError,
    UnsupportedOperationError,
)
from zarrflow.storage.keys import validate_key

__all__ = [
    "NOT_MODIFIED",
    "ByteRequest",
    "Condition",
    "IfAbsent",
    "IfGeneration",
    "NotModified",
    "OffsetByteRequest",
    "RangeByteRequest",
    "Store",
    "SuffixByteRequest",
    "Versioned",
]


@dataclass(frozen=True, slots=True)
class RangeByteRequest:
    """Bytes ``[start, end)`` of a value."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class OffsetByteRequest:
    """Bytes from ``offset`` to the end of a value."""

    offset: int


@dataclass(frozen=True, slots=True)
class SuffixByteRequest:
    """The last ``suffix`` bytes of a value."""

    suffix: int


ByteRequest = RangeByteRequest | OffsetByteRequest | SuffixByteRequest


@dataclass(frozen=True, slots=True)
class Versioned:
    """Bytes read from a store, and the generation of the stored object they came from.

    ``generation`` is opaque: two reads saw the same stored version exactly
    when their generations are equal strings.
    """

    data: bytes
    generation: str


@dataclass(frozen=True, slots=True)
class IfGeneration:
    """Condition: the stored object has ``generation`` (so it exists)."""

    generation: str


@dataclass(frozen=True, slots=True)
class IfAbsent:
    """Condition: nothing is stored at the key."""


Condition = IfGeneration | IfAbsent


class NotModified:
    """The answer of :meth:`Store.get_if_changed` when the stored object is unchanged."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_MODIFIED"

    def __reduce__(self) -> str:
        return "NOT_MODIFIED"


#: the one :class:`NotModified` value
NOT_MODIFIED = NotModified()


def check_condition(key: str, condition: object, absent: bool = True) -> None:
    """Raise :class:`StoreError` unless ``condition`` is an :class:`IfGeneration`
    (or an :class:`IfAbsent`, when ``absent``).

    Examples
    --------
    >>> check_condition("a/c/0", IfGeneration("1"))
    >>> check_condition("a/c/0", "1")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    StoreError: invalid condition '1' for key 'a/c/0' ...
    """
    cls = type(condition)
    if (cls is IfAbsent and absent) or (
        cls is IfGeneration and isinstance(condition.generation, str)
    ):
        return
    expected = "IfGeneration(str) or IfAbsent()" if absent else "IfGeneration(str)"
    raise StoreError(f"invalid condition {condition!r} for key {key!r}: expected {expected}")


def check_generation(url: str, key: str, condition: Condition, current: str | None) -> None:
    """Raise :class:`GenerationConflictError` unless ``current`` satisfies ``condition``.

    ``current`` is the stored generation, None when nothing is stored.

    Examples
    --------
    >>> check_generation("memory://x", "k", IfAbsent(), None)
    >>> check_generation("memory://x", "k", IfGeneration("2"), "3")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    zarrflow.errors.GenerationConflictError: generation conflict on key 'k' in memory://x: ...
    """
    if type(condition) is IfAbsent:
        if current is not None:
            raise GenerationConflictError(url, key, None, f"generation {current!r} is stored there")
    elif current != condition.generation:
        found = "nothing is stored" if current is None else f"generation {current!r} is stored"
        raise GenerationConflictError(url, key, condition.generation, found)


def slice_bytes(value: bytes, request: ByteRequest | None) -> bytes:
    """Apply a byte request to an in-memory value.

    Examples
    --------
    >>> slice_bytes(b"abcdef", RangeByteRequest(1, 3))
    b'bc'
    >>> slice_bytes(b"abcdef", SuffixByteRequest(2))
    b'ef'
    """
    if request is None:
        return value
    if isinstance(request, RangeByteRequest):
        return value[request.start : request.end]
    if isinstance(request, OffsetByteRequest):
        return value[request.offset :]
    return value[-request.suffix :] if request.suffix else b""


def check_byte_request(key: str, request: object) -> None:
    """Raise :class:`StoreError` unless ``request`` is a well-formed :data:`ByteRequest`.

    Well-formed means integer fields, ``start``/``offset``/``suffix`` >= 0 and
    ``end >= start``, so every backend serves the same bytes for it.

    Examples
    --------
    >>> check_byte_request("a/c/0", RangeByteRequest(0, 10))
    >>> check_byte_request("a/c/0", OffsetByteRequest(-1))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    StoreError: invalid byte request OffsetByteRequest(offset=-1) for key 'a/c/0'
    """
    cls = type(request)
    if cls is RangeByteRequest:
        ok = _is_size(request.start) and _is_size(request.end) and request.end >= request.start
    elif cls is OffsetByteRequest:
        ok = _is_size(request.offset)
    elif cls is SuffixByteRequest:
        ok = _is_size(request.suffix)
    else:
        ok = False
    if not ok:
        raise StoreError(
            f"invalid byte request {request!r} for key {key!r}: expected a RangeByteRequest "
            f"(0 <= start <= end), OffsetByteRequest (offset >= 0) or SuffixByteRequest "
            f"(suffix >= 0) with integer fields"
        )


def _each(call, calls: Iterable[Sequence]) -> dict[str, Exception]:
    """``call(*args)`` for each args, collecting failures by their first argument (the key)."""
    failed: dict[str, Exception] = {}
    for args in calls:
        try:
            call(*args)
        except ReadOnlyError:
            raise  # a refusal of the whole batch, not one key's failure
        except OSError as e:  # StoreError included
            failed[args[0]] = e
    return failed


def _is_size(n: object) -> bool:
    """True for a non-negative integer (numpy integers included, bools excluded)."""
    if isinstance(n, bool) or not hasattr(type(n), "__index__"):
        return False
    return operator.index(n) >= 0


class Store(ABC):
    """A key/value store of bytes; the bottom layer of zarrflow.

    Subclasses implement ``get``, ``get_range``, ``set``, ``delete`` and
    ``list_prefix``; the batch methods have sequential defaults that fast
    backends override.
    """

    #: the URL this store was opened from (for messages and pickling)
    url: str = ""
    #: True when opened read-only; writes raise ReadOnlyError
    read_only: bool = False

    # capabilities -----------------------------------------------------------
    @property
    def supports_writes(self) -> bool:
        return not self.read_only

    @property
    def supports_deletes(self) -> bool:
        return self.supports_writes

    @property
    def supports_listing(self) -> bool:
        return True

    @property
    def supports_partial_reads(self) -> bool:
        return True

    @property
    def is_remote(self) -> bool:
        """True when each request has network latency (batch and overlap requests)."""
        return False

    @property
    def supports_generations(self) -> bool:
        """True when the versioned reads and conditional writes (``set_if``...) work here."""
        return False

    @property
    def retries_requests(self) -> bool:
        """True when the store retries its own transient failures (``zarrflow.retries``).

        A store that does not is given retries one layer up, per chunk (see
        :class:`~zarrflow.storage.retrying.RetryingStore`), so that no request
        is retried by two layers at once.
        """
        return False

    # the contract -------------------------------------------------------------
    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None if it does not exist."""

    @abstractmethod
    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        """Part of the value at ``key``, or None if it does not exist."""

    @abstractmethod
    def set(self, key: str, value: bytes) -> None:
        """Store ``value`` at ``key`` (atomically where the backend allows)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""

    @abstractmethod
    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Every key that starts with ``prefix`` (full keys, any depth)."""

    # derived, overridable -----------------------------------------------------
    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values of many keys, in order, None for the missing ones."""
        return [self.get(k) for k in keys]

    def get_ranges(self, requests: Sequence[tuple[str, ByteRequest]]) -> list[bytes | None]:
        """Many byte ranges, in order (overlapped by remote backends)."""
        return [self.get_range(k, r) for k, r in requests]

    def set_many(self, items: Mapping[str, bytes]) -> None:
        """Store many values (overlapped by remote backends).

        Every key is validated first, so an invalid key means nothing is written.
        """
        for k in items:
            validate_key(k)
        for k, v in items.items():
            self.set(k, v)

    def delete_many(self, keys: Iterable[str]) -> None:
        for k in keys:
            self.delete(k)

    def try_set_many(self, items: Mapping[str, bytes]) -> dict[str, Exception]:
        """Store many values, trying every one: the keys that failed, and why.

        Unlike :meth:`set_many`, one failed key does not stop the others; an
        empty dict means every value was stored. Invalid keys still refuse the
        whole batch before anything is written.

        Examples
        --------
        >>> from zarrflow.storage import MemoryStore
        >>> MemoryStore().try_set_many({"a": b"1", "b": b"2"})
        {}
        """
        for k in items:
            validate_key(k)
        return _each(self.set, items.items())

    def try_delete_many(self, keys: Iterable[str]) -> dict[str, Exception]:
        """Delete many keys, trying every one: the keys that failed, and why.

        Examples
        --------
        >>> from zarrflow.storage import MemoryStore
        >>> MemoryStore().try_delete_many(["never/written"])
        {}
        """
        return _each(self.delete, ((k,) for k in keys))

    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def _check_writable(self, key: str) -> None:
        """Raise ReadOnlyError for a write of ``key`` when this store is read-only."""
        if self.read_only:
            raise ReadOnlyError(f"cannot write key {key!r}: store {self.url} is read-only")

    # generations (see the module docstring) -------------------------------------
    def _unsupported(self, what: str) -> UnsupportedOperationError:
        return UnsupportedOperationError(
            f"{what} needs generations, which {type(self).__name__} {self.url!r} does not "
            f"support (supports_generations is False)"
        )

    def get_versioned(self, key: str) -> Versioned | None:
        """The value at ``key`` and its generation, or None if it does not exist.

        Examples
        --------
        >>> from zarrflow.storage import MemoryStore
        >>> store = MemoryStore()
        >>> store.set("k", b"v")
        >>> store.get_versioned("k").data, store.get_versioned("missing")
        (b'v', None)
        """
        raise self._unsupported(f"a versioned read of key {key!r}")

    def get_range_versioned(
        self, key: str, request: ByteRequest, generation: str | None = None
    ) -> Versioned | None:
        """Part of one version of ``key`` (None if missing).

        With ``generation``, only of that version: another one stored, or none,
        raises :class:`~zarrflow.errors.GenerationConflictError`. The default slices
        :meth:`get_versioned`; backends override it to read only the range.

        Examples
        --------
        >>> from zarrflow.storage import MemoryStore
        >>> store = MemoryStore()
        >>> store.set("k", b"abcdef")
        >>> part = store.get_range_versioned("k", RangeByteRequest(1, 3))
        >>> part.data, part.generation == store.get_versioned("k").generation
        (b'bc', True)
        """
        check_byte_request(key, request)
        whole = self.get_versioned(key)
        if whole is None:
            if generation is not None:
                check_generation(self.url, key, IfGeneration(generation), None)
            return None
        if generation is not None:
            check_generation(self.url, key, IfGeneration(generation), whole.generation)
        return Versioned(slice_bytes(whole.data, request), whole.generation)

    def get_ranges_versioned(
        self, key: str, requests: Sequence[ByteRequest], generation: str | None = None
    ) -> list[bytes] | None:
        """Several ranges of ``key``, all from one version; None if it does not exist.

        The default reads the first range, then the others pinned to its
        generation; a change in between raises
        :class:`~zarrflow.errors.GenerationConflictError` (never a mix).

        Examples
        --------
        >>> from zarrflow.storage import MemoryStore
        >>> store = MemoryStore()
        >>> store.set("k", b"abcdef")
        >>> store.get_ranges_versioned("k", [RangeByteRequest(0, 2), SuffixByteRequest(2)])
        [b'ab', b'ef']
        """
        head = requests[0] if requests else RangeByteRequest(0, 0)
        first = self.get_range_versioned(key, head, generation)
        if first is None:
            return None
        if not requests:
            return []
        out = [first.data]
        for request in requests[1:]:
            part = self.get_range_versioned(key, request, first.generation)
            if part is None:  # deleted in between: a conflict, not "missing"
                check_generation(self.url, key, IfGeneration(first.generation), None)
            out.append(part.data)
        return out

    def set_if(self, key: str, value: bytes, condition: Condition) -> str:
        """Store ``value`` at ``key`` only if ``condition`` holds; the new generation.

        Raises :class:`~zarrflow.errors.GenerationConflictError` (nothing
        written) when the stored object is not the one ``condition`` names.

        Examples
        --------
        >>> from zarrflow.storage import MemoryStore
        >>> store = MemoryStore()
        >>> generation = store.set_if("k", b"v1", IfAbsent())
        >>> store.set_if("k", b"v2", IfGeneration(generation)) != generation
        True
        """
        raise self._unsupported(f"a conditional write of key {key!r}")

    def delete_if(self, key: str, condition: IfGeneration) -> None:
        """Delete ``key`` only if it still has ``condition.generation``.

        A missing key is a conflict (it no longer has that generation).

        Examples
        --------
        >>> from zarrflow.storage import MemoryStore
        >>> store = MemoryStore()
        >>> store.delete_if("k", IfGeneration(store.set_if("k", b"v", IfAbsent())))
        >>> store.exists("k")
        False
        """
        raise self._unsupported(f"a conditional delete of key {key!r}")

    def get_if_changed(self, key: str, generation: str) -> Versioned | NotModified | None:
        """:data:`NOT_MODIFIED` if ``key`` still has ``generation``, else :meth:`get_versioned`.

        The default reads the object and compares; backends override it to
        check without moving the bytes.

        Examples
        --------
        >>> from zarrflow.storage import MemoryStore
        >>> store = MemoryStore()
        >>> generation = store.set_if("k", b"v", IfAbsent())
        >>> store.get_if_changed("k", generation)
        NOT_MODIFIED
        >>> store.get_if_changed("k", "other").data
        b'v'
        """
        found = self.get_versioned(key)
        if found is not None and found.generation == generation:
            return NOT_MODIFIED
        return found

    def get_many_if_changed(
        self, requests: Sequence[tuple[str, str | None]]
    ) -> list[Versioned | NotModified | None]:
        """:meth:`get_if_changed` for each ``(key, generation)``; a None generation reads.

        Examples
        --------
        >>> from zarrflow.storage import MemoryStore
        >>> store = MemoryStore()
        >>> generation = store.set_if("k", b"v", IfAbsent())
        >>> [type(r).__name__ for r in store.get_many_if_changed([("k", generation),
        ...                                                      ("k", None), ("no", None)])]
        ['NotModified', 'Versioned', 'NoneType']
        """
        return [
            self.get_versioned(k) if g is None else self.get_if_changed(k, g) for k, g in requests
        ]

    def list_dir(self, prefix: str) -> list[str]:
        """Names of the immediate children (keys and "directories") below ``prefix``."""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        names = set()
        for key in self.list_prefix(prefix):
            rest = key[len(prefix) :]
            if rest:
                names.add(rest.split("/", 1)[0])
        return sorted(names)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key below ``prefix``."""
        self.delete_many(list(self.list_prefix(prefix)))

    def close(self) -> None:  # noqa: B027 - an optional hook, a no-op by default
        """Release resources (file handles, zip archives)."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "r" if self.read_only else "rw"
        return f"{type(self).__name__}({self.url!r}, mode={mode!r})"
