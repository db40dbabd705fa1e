"""The storage layer: a flat mapping of string keys to bytes, over many backends.

Examples
--------
>>> from zarrflow.storage import store_from_url
>>> store = store_from_url("memory://doc-storage")
>>> store.set("a/zarr.json", b"{}")
>>> store.get("a/zarr.json"), store.get("a/missing")
(b'{}', None)
"""

from __future__ import annotations

from zarrflow.storage.base import (
    NOT_MODIFIED,
    ByteRequest,
    Condition,
    IfAbsent,
    IfGeneration,
    NotModified,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
    Versioned,
)
from zarrflow.storage.failures import is_missing_error, is_transient_error
from zarrflow.storage.fsspec_store import FsspecStore
from zarrflow.storage.keys import validate_key, validate_prefix
from zarrflow.storage.local import LocalStore
from zarrflow.storage.memory import MemoryStore
from zarrflow.storage.obstore_store import ObstoreStore
from zarrflow.storage.readonly import ReadOnlyStore
from zarrflow.storage.retry import RequestBudget, RetryPolicy, io_budget
from zarrflow.storage.url import store_from_url
from zarrflow.storage.zip import ZipStore

__all__ = [
    "NOT_MODIFIED",
    "ByteRequest",
    "Condition",
    "FsspecStore",
    "IfAbsent",
    "IfGeneration",
    "LocalStore",
    "MemoryStore",
    "NotModified",
    "ObstoreStore",
    "OffsetByteRequest",
    "RangeByteRequest",
    "ReadOnlyStore",
    "RequestBudget",
    "RetryPolicy",
    "Store",
    "SuffixByteRequest",
    "Versioned",
    "ZipStore",
    "io_budget",
    "is_missing_error",
    "is_transient_error",
    "store_from_url",
    "validate_key",
    "validate_prefix",
]
