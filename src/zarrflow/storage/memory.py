"""``MemoryStore``: a dict of bytes, shared by name within one process.

``MemoryStore("x")`` and ``store_from_url("memory://x")`` see one dict, and a
store pickled and unpickled in the same process sees it too (a pickle holds
the name, never the data). Named stores live until the process ends, like
files; an anonymous store (``MemoryStore()``) is forgotten once no store
object refers to it any more.

Generations: every write of a key gives it the next number of its store's
counter (in hex), under the store's lock, so a conditional write
(``set_if``) is an in-process compare-and-set and a generation is never
reused while the process lives.
"""

from __future__ import annotations

import itertools
import threading
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence

from zarrflow.storage.base import (
    NOT_MODIFIED,
    ByteRequest,
    Condition,
    IfGeneration,
    NotModified,
    Store,
    Versioned,
    check_byte_request,
    check_condition,
    check_generation,
    slice_bytes,
)
from zarrflow.storage.keys import validate_key, validate_prefix

__all__ = ["MemoryStore"]


class _Shared:
    """The data of one named store, and the lock that guards changes to it."""

    __slots__ = ("__weakref__", "counter", "data", "generations", "lock")

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.generations: dict[str, str] = {}  # changed with data, under the lock
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    def put(self, key: str, value: bytes) -> str:
        """Store ``value`` with a new generation (call with the lock held)."""
        self.data[key] = value
        generation = self.generations[key] = format(next(self.counter), "x")
        return generation

    def pop(self, key: str) -> None:
        """Forget ``key`` (call with the lock held)."""
        self.data.pop(key, None)
        self.generations.pop(key, None)


_registry_lock = threading.Lock()
_alive: weakref.WeakValueDictionary[str, _Shared] = weakref.WeakValueDictionary()
_pinned: dict[str, _Shared] = {}


def _attach(name: str, pin: bool) -> _Shared:
    """The shared data for ``name``, created if new; ``pin`` keeps it for the process."""
    with _registry_lock:
        shared = _alive.get(name)
        if shared is None:
            shared = _alive[name] = _Shared()
        if pin:
            _pinned[name] = shared
        return shared


def _to_bytes(value: bytes) -> bytes:
    return value if type(value) is bytes else memoryview(value).cast("B").tobytes()


class MemoryStore(Store):
    """A thread-safe in-memory store; stores of one ``name`` share their data.

    Parameters
    ----------
    name : str, optional
        Stores created with the same name in one process share one dict. The
        default is a fresh anonymous name, freed with the last store using it.
    read_only : bool, default False
        Refuse every write with :class:`~zarrflow.errors.ReadOnlyError`.

    Examples
    --------
    >>> a = MemoryStore("doc-memory")
    >>> a.set("x/zarr.json", b"{}")
    >>> MemoryStore("doc-memory").get("x/zarr.json")
    b'{}'
    >>> a.url
    'memory://doc-memory'
    """

    def __init__(self, name: str | None = None, read_only: bool = False) -> None:
        self._pinned = name is not None and name != ""
        self.name = name if self._pinned else f"anonymous-{uuid.uuid4().hex}"
        self.read_only = bool(read_only)
        self.url = f"memory://{self.name}"
        self._shared = _attach(self.name, pin=self._pinned)
        self._data = self._shared.data

    def __reduce__(self) -> tuple[object, tuple[str, bool, bool]]:
        return (_unpickle, (self.name, self.read_only, self._pinned))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MemoryStore)
            and other._shared is self._shared
            and other.read_only == self.read_only
        )

    def __hash__(self) -> int:
        return hash((MemoryStore, self.name, self.read_only))

    def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None."""
        return self._data.get(validate_key(key))

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        """A slice of the value at ``key``, or None."""
        check_byte_request(key, request)
        value = self._data.get(validate_key(key))
        return None if value is None else slice_bytes(value, request)

    def exists(self, key: str) -> bool:
        """True when ``key`` holds a value."""
        return validate_key(key) in self._data

    def set(self, key: str, value: bytes) -> None:
        """Store a copy of ``value`` (as immutable ``bytes``) at ``key``."""
        self._check_writable(key)
        validate_key(key)
        value = _to_bytes(value)
        with self._shared.lock:
            self._shared.put(key, value)

    def set_many(self, items: Mapping[str, bytes]) -> None:
        """Store every item; all become visible together."""
        for key in items:
            self._check_writable(key)
            validate_key(key)
        values = {k: _to_bytes(v) for k, v in items.items()}
        with self._shared.lock:
            for key, value in values.items():
                self._shared.put(key, value)

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is ignored."""
        self._check_writable(key)
        validate_key(key)
        with self._shared.lock:
            self._shared.pop(key)

    # generations -------------------------------------------------------------------
    @property
    def supports_generations(self) -> bool:
        return True

    def get_versioned(self, key: str) -> Versioned | None:
        """The value at ``key`` and its generation, or None.

        Examples
        --------
        >>> from zarrflow.storage import IfAbsent
        >>> store = MemoryStore()
        >>> generation = store.set_if("k", b"v1", IfAbsent())
        >>> store.get_versioned("k") == Versioned(b"v1", generation)
        True
        """
        validate_key(key)
        shared = self._shared
        with shared.lock:
            value = shared.data.get(key)
            return None if value is None else Versioned(value, shared.generations[key])

    def get_if_changed(self, key: str, generation: str) -> Versioned | NotModified | None:
        """:data:`NOT_MODIFIED` when ``key`` still has ``generation`` (a compare), else its value.

        Examples
        --------
        >>> from zarrflow.storage import IfAbsent
        >>> store = MemoryStore()
        >>> store.get_if_changed("k", store.set_if("k", b"v", IfAbsent()))
        NOT_MODIFIED
        """
        validate_key(key)
        shared = self._shared
        with shared.lock:
            value = shared.data.get(key)
            if value is None:
                return None
            found = shared.generations[key]
            return NOT_MODIFIED if found == generation else Versioned(value, found)

    def get_range_versioned(
        self, key: str, request: ByteRequest, generation: str | None = None
    ) -> Versioned | None:
        """A slice of one version of ``key`` (see :meth:`Store.get_range_versioned`)."""
        check_byte_request(key, request)
        parts = self._ranges(key, [request], generation)
        return None if parts is None else Versioned(parts[0][0], parts[1])

    def get_ranges_versioned(
        self, key: str, requests: Sequence[ByteRequest], generation: str | None = None
    ) -> list[bytes] | None:
        """Slices of one snapshot of ``key`` (see :meth:`Store.get_ranges_versioned`)."""
        for request in requests:
            check_byte_request(key, request)
        parts = self._ranges(key, requests, generation)
        return None if parts is None else parts[0]

    def _ranges(
        self, key: str, requests: Sequence[ByteRequest], generation: str | None
    ) -> tuple[list[bytes], str] | None:
        found = self.get_versioned(key)
        if generation is not None:
            check_generation(self.url, key, IfGeneration(generation), found and found.generation)
        if found is None:
            return None
        return [slice_bytes(found.data, r) for r in requests], found.generation

    def set_if(self, key: str, value: bytes, condition: Condition) -> str:
        """Compare-and-set under the store's lock; the new generation.

        Examples
        --------
        >>> from zarrflow.errors import GenerationConflictError
        >>> from zarrflow.storage import IfAbsent
        >>> store = MemoryStore()
        >>> g1 = store.set_if("k", b"v1", IfAbsent())
        >>> g2 = store.set_if("k", b"v2", IfGeneration(g1))
        >>> try:
        ...     store.set_if("k", b"stale", IfGeneration(g1))
        ... except GenerationConflictError:
        ...     print("conflict:", store.get("k"))
        conflict: b'v2'
        """
        self._check_writable(key)
        validate_key(key)
        check_condition(key, condition)
        value = _to_bytes(value)
        shared = self._shared
        with shared.lock:
            check_generation(self.url, key, condition, shared.generations.get(key))
            return shared.put(key, value)

    def delete_if(self, key: str, condition: IfGeneration) -> None:
        """Delete ``key`` only if it still has ``condition.generation``.

        Examples
        --------
        >>> from zarrflow.storage import IfAbsent
        >>> store = MemoryStore()
        >>> store.delete_if("k", IfGeneration(store.set_if("k", b"v", IfAbsent())))
        >>> store.get("k") is None
        True
        """
        self._check_writable(key)
        validate_key(key)
        check_condition(key, condition, absent=False)
        shared = self._shared
        with shared.lock:
            check_generation(self.url, key, condition, shared.generations.get(key))
            shared.pop(key)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Keys starting with ``prefix``, from a snapshot taken when called."""
        validate_prefix(prefix)
        with self._shared.lock:
            keys = list(self._data)
        return iter([k for k in keys if k.startswith(prefix)])


def _unpickle(name: str, read_only: bool, pinned: bool) -> MemoryStore:
    """Rebuild a pickled store onto the data of its name in this process."""
    store = MemoryStore.__new__(MemoryStore)
    store._pinned = pinned
    store.name = name
    store.read_only = read_only
    store.url = f"memory://{name}"
    store._shared = _attach(name, pin=pinned)
    store._data = store._shared.data
    return store
