"""``MemoryStore``: a dict of bytes, shared by name within one process.

``MemoryStore("x")`` and ``store_from_url("memory://x")`` see one dict, and a
store pickled and unpickled in the same process sees it too (a pickle holds
the name, never the data). Named stores live until the process ends, like
files; an anonymous store (``MemoryStore()``) is forgotten once no store
object refers to it any more.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Iterator, Mapping

from zarrflow.errors import ReadOnlyError
from zarrflow.storage.base import ByteRequest, Store, check_byte_request, slice_bytes
from zarrflow.storage.keys import validate_key, validate_prefix

__all__ = ["MemoryStore"]


class _Shared:
    """The data of one named store, and the lock that guards changes to it."""

    __slots__ = ("__weakref__", "data", "lock")

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.lock = threading.Lock()


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

    def _check_writable(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"cannot write key {key!r}: store {self.url} is read-only")

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
            self._data[key] = value

    def set_many(self, items: Mapping[str, bytes]) -> None:
        """Store every item; all become visible together."""
        for key in items:
            self._check_writable(key)
            validate_key(key)
        values = {k: _to_bytes(v) for k, v in items.items()}
        with self._shared.lock:
            self._data.update(values)

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is ignored."""
        self._check_writable(key)
        validate_key(key)
        with self._shared.lock:
            self._data.pop(key, None)

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
