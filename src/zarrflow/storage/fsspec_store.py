"""``FsspecStore``: any fsspec filesystem (S3, GCS, HTTP, memory, local, chained URLs).

On an async filesystem (s3fs, fsspec's HTTP, gcsfs ...) every batch method
(``get_many``, ``get_ranges``, ``set_many``) sends all its requests at once on
fsspec's event loop; each request waits for a slot of the process-wide budget
``zarrflow.io_concurrency`` (:func:`~zarrflow.storage.retry.io_budget`), so one
task reading a hundred chunks keeps up to that many requests in flight, and a
hundred tasks together never exceed it. Synchronous filesystems run the same
requests one after another.

Every request is retried per ``zarrflow.retries`` when it fails transiently.
Failures are sorted (:mod:`zarrflow.storage.failures`): "missing" reads as
None; a transient failure that outlasts its retries raises
:class:`TransientStoreError`, anything else :class:`StoreError` at once — both
naming the store URL and the key, with the original exception as
``__cause__``. A failed read never turns into fill values.

Generations (``supports_generations``) work on S3 through s3fs: the ETag is
the generation, conditional reads, writes and deletes send ``If-Match`` /
``If-None-Match: *`` (:mod:`zarrflow.storage.s3_conditional`). Other
filesystems (memory, local files, HTTP, GCS, Azure through fsspec) do not
support them and say so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.asyn import sync

from zarrflow.errors import (
    GenerationConflictError,
)
from zarrflow.storage import s3_conditional as s3
from zarrflow.storage.base import (
    NOT_MODIFIED,
    ByteRequest,
    Condition,
    IfGeneration,
    NotModified,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    Versioned,
    check_byte_request,
    check_condition,
    slice_bytes,
)
from zarrflow.storage.failures import is_missing_error, is_transient_error
from zarrflow.storage.keys import is_valid_key, validate_key, validate_prefix
from zarrflow.storage.local import is_lock_name, is_temp_name
from zarrflow.storage.remote import make_filesystem, prepare_async, whole_read_kwargs
from zarrflow.storage.retry import (
    Failure,
    RetryPolicy,
    call_async,
    call_sync,
    failures_by_key,
    io_budget,
    raise_first_failure,
    request_error,
)

__all__ = ["FsspecStore", "is_missing_error", "is_transient_error"]

Call = tuple[tuple[Any, ...], dict[str, Any]]


def _listable(key: str) -> bool:
    """True for a listed name that is a valid key, not a LocalStore temp or lock file."""
    name = key.rpartition("/")[2]
    return is_valid_key(key) and not is_temp_name(name) and not is_lock_name(name)


def _literal(path: str) -> bool:
    """True when fsspec will not treat ``path`` as a glob pattern."""
    return not any(c in path for c in "*?[")


class FsspecStore(Store):
    """A store on any fsspec filesystem.

    Parameters
    ----------
    url : str
        An fsspec URL such as ``"s3://bucket/data.zarr"``, ``"memory://x"`` or a
        chained URL (``"simplecache::s3://..."``).
    storage_options : dict, optional
        Passed to the filesystem (credentials, endpoint, ...).
    read_only : bool, default False
        Refuse every write with :class:`~zarrflow.errors.ReadOnlyError`.
    fs : fsspec.AbstractFileSystem, optional
        Use this filesystem instead of building one from ``url``.

    Examples
    --------
    >>> store = FsspecStore("memory://doc-fsspec-store")
    >>> store.set("a/zarr.json", b"{}")
    >>> store.get("a/zarr.json"), store.get_many(["a/zarr.json", "nope"])
    (b'{}', [b'{}', None])
    """

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        read_only: bool = False,
        fs: AbstractFileSystem | None = None,
    ) -> None:
        self.storage_options = dict(storage_options or {})
        self._given_fs = fs
        if fs is None:
            fs, root = make_filesystem(url, self.storage_options)
        else:
            root = fs._strip_protocol(url)
        self.fs = fs
        self.url = url
        self.read_only = bool(read_only)
        stripped = root.rstrip("/")
        self.root = stripped or fs.root_marker
        self._prefix = stripped + "/" if stripped else fs.root_marker
        self._async = bool(getattr(fs, "async_impl", False)) and not fs.asynchronous
        self._read_kwargs = whole_read_kwargs(fs)
        self._tuned = self._given_fs is None  # a filesystem zarrflow built may be tuned

    def __reduce__(self) -> tuple[type[FsspecStore], tuple[Any, ...]]:
        return (FsspecStore, (self.url, self.storage_options, self.read_only, self._given_fs))

    @property
    def is_remote(self) -> bool:
        protocols = self.fs.protocol
        protocols = {protocols} if isinstance(protocols, str) else set(protocols)
        return not protocols & {"file", "local", "memory"}

    @property
    def retries_requests(self) -> bool:
        """True: every request is retried here, per ``zarrflow.retries``."""
        return True

    def _path(self, key: str) -> str:
        return self._prefix + validate_key(key)

    # requests -------------------------------------------------------------------------
    def _call_many(self, method: str, calls: Sequence[Call]) -> list[Any]:
        """``fs.<method>(*args, **kwargs)`` for each call, retried; value or Failure each.

        On an async filesystem the calls run concurrently on fsspec's loop, each
        under the process-wide request budget, taken by at most as many workers
        as the budget allows (so a million keys never make a million coroutines).
        """
        if not self._async:
            policy = RetryPolicy.from_config()
            budget = io_budget() if self.is_remote else None
            fn = getattr(self.fs, method)
            return [call_sync(partial(fn, *a, **k), policy, budget) for a, k in calls]
        afn = getattr(self.fs, "_" + method)
        return self._run_many([partial(afn, *a, **k) for a, k in calls])

    def _run_many(self, requests: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
        """Await every request on fsspec's loop, retried, under the budget: value or Failure."""
        policy = RetryPolicy.from_config()
        budget = io_budget() if self.is_remote else None
        results: list[Any] = [None] * len(requests)
        pending = iter(enumerate(requests))

        async def worker() -> None:
            for i, request in pending:  # one iterator shared by the workers of this loop
                results[i] = await call_async(request, policy, budget)

        async def run_all() -> None:
            if self._tuned:
                with contextlib.suppress(Exception):  # the requests report any failure
                    await prepare_async(self.fs)
            workers = min(len(requests), budget.limit if budget is not None else 1024)
            await asyncio.gather(*(worker() for _ in range(workers)))

        sync(self.fs.loop, run_all)
        return results

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One retried call (see :meth:`_call_many`): its value or a Failure."""
        return self._call_many(method, [(args, kwargs)])[0]

    # reads ------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The object ``key``, or None when it does not exist."""
        return self._fetch([(key, None)])[0]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Many objects, requested concurrently on async filesystems; None for missing."""
        return self._fetch([(key, None) for key in keys])

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        """Part of object ``key``, or None."""
        return self._fetch([(key, request)])[0]

    def get_ranges(self, requests: Sequence[tuple[str, ByteRequest]]) -> list[bytes | None]:
        """Many byte ranges, requested concurrently on async filesystems."""
        return self._fetch(list(requests))

    def _fetch(self, requests: list[tuple[str, ByteRequest | None]]) -> list[bytes | None]:
        """Read whole values (request None) or byte ranges, in order, None for missing."""
        out: list[bytes | None] = [None] * len(requests)
        wanted: list[int] = []
        calls: list[Call] = []
        for i, (key, request) in enumerate(requests):
            path = self._path(key)
            start, end = self._bounds(key, request)
            if start is not None and start == end:  # nothing to fetch, only existence to tell
                out[i] = b"" if self.exists(key) else None
            else:
                wanted.append(i)
                calls.append(((path,), {"start": start, "end": end, **self._read_kwargs}))
        if not wanted:
            return out
        outcomes = self._call_many("cat_file", calls)
        for n, (i, outcome) in enumerate(zip(wanted, outcomes, strict=True)):
            key, request = requests[i]
            if not isinstance(outcome, Failure):
                out[i] = outcome if type(outcome) is bytes else bytes(outcome)
            elif outcome.kind == "missing" or isinstance(outcome.exception, IsADirectoryError):
                out[i] = None
            elif request is not None and outcome.kind == "permanent":
                out[i] = self._slice_whole(key, request, outcome)
            else:
                others = sum(isinstance(o, Failure) for o in outcomes[n + 1 :])
                raise request_error(self.url, "read", key, outcome, others) from outcome.exception
        return out

    @staticmethod
    def _bounds(key: str, request: ByteRequest | None) -> tuple[int | None, int | None]:
        """fsspec's (start, end) for a request; start == end marks an empty range."""
        if request is None:
            return None, None
        check_byte_request(key, request)
        if type(request) is RangeByteRequest:
            return request.start, request.end
        if type(request) is OffsetByteRequest:
            return request.offset, None
        return (-request.suffix, None) if request.suffix else (0, 0)

    def _slice_whole(self, key: str, request: ByteRequest, failure: Failure) -> bytes | None:
        """Serve a range the backend refused (HTTP 416 past the end) from the whole value.

        Only a refusal the whole value explains (a start at or past its end, or a
        suffix longer than it) is served; any other refusal is raised.
        """
        value = self.get(key)
        if value is None:
            return None
        start = getattr(request, "start", getattr(request, "offset", None))
        if start is not None and start < len(value):
            error = request_error(self.url, "read a byte range of", key, failure)
            raise error from failure.exception
        return slice_bytes(value, request)

    def exists(self, key: str) -> bool:
        """True when object ``key`` exists (``fs.isfile``)."""
        outcome = self._call("isfile", self._path(key))
        if isinstance(outcome, Failure):
            if outcome.kind == "missing":
                return False
            raise request_error(self.url, "check", key, outcome) from outcome.exception
        return bool(outcome)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Keys starting with ``prefix``, from ``fs.find`` below its directory."""
        validate_prefix(prefix)
        directory = prefix.rpartition("/")[0]
        base = self._prefix + directory if directory else self.root
        outcome = self._call("find", base)
        if isinstance(outcome, Failure):
            if outcome.kind == "missing":
                return iter([])
            raise request_error(self.url, "list", prefix, outcome) from outcome.exception
        n = len(self._prefix)
        keys = [p[n:] for p in outcome if p.startswith(self._prefix)]
        return iter([k for k in keys if k.startswith(prefix) and _listable(k)])

    # writes -----------------------------------------------------------------------
    def set(self, key: str, value: bytes) -> None:
        """Write object ``key`` (parents made only where the filesystem needs them)."""
        self.set_many({key: value})

    def set_many(self, items: Mapping[str, bytes]) -> None:
        """Write many objects; concurrent PUTs on async filesystems.

        Every key is validated first, so an invalid key means nothing is written.
        """
        raise_first_failure(self.url, "write", *self._put(items))

    def try_set_many(self, items: Mapping[str, bytes]) -> dict[str, Exception]:
        """Write many objects concurrently, trying every one: the keys that failed, and why."""
        return failures_by_key(self.url, "write", *self._put(items))

    def _put(self, items: Mapping[str, bytes]) -> tuple[list[str], list[Any]]:
        """PUT every item (keys validated first): the keys, and each one's outcome."""
        for key in items:
            self._check_writable(key)
        keys = list(items)
        paths = [self._path(k) for k in keys]
        data = [v if type(v) is bytes else bytes(v) for v in items.values()]
        if not keys:
            return [], []
        calls: list[Call] = [((p, d), {}) for p, d in zip(paths, data, strict=True)]
        outcomes = self._call_many("pipe_file", calls)
        retry = [i for i, o in enumerate(outcomes) if self._needs_parents(o)]
        if retry:  # a local-like filesystem without the parent directories
            for parent in {self.fs._parent(paths[i]) for i in retry}:
                self.fs.makedirs(parent, exist_ok=True)
            again = self._call_many("pipe_file", [((paths[i], data[i]), {}) for i in retry])
            for i, outcome in zip(retry, again, strict=True):
                outcomes[i] = outcome
        return keys, outcomes

    def _needs_parents(self, outcome: Any) -> bool:
        return (
            isinstance(outcome, Failure)
            and not self.is_remote
            and isinstance(outcome.exception, FileNotFoundError)
        )

    def delete(self, key: str) -> None:
        """Remove object ``key``; a missing key is ignored."""
        self._check_writable(key)
        outcome = self._call("rm_file", self._path(key))
        if isinstance(outcome, Failure) and not _ignorable(outcome):
            raise request_error(self.url, "delete", key, outcome) from outcome.exception

    def try_delete_many(self, keys: Iterable[str]) -> dict[str, Exception]:
        """Remove many objects concurrently, trying every one: the keys that failed, and why."""
        keys = list(keys)
        return failures_by_key(self.url, "delete", keys, self._rm_each(self._writable_paths(keys)))

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove many objects; one batched ``fs.rm`` on remote filesystems."""
        keys = list(keys)
        paths = self._writable_paths(keys)
        if self.is_remote and paths and all(_literal(p) for p in paths):
            outcome = self._call("rm", paths)
            if not isinstance(outcome, Failure) or outcome.kind == "missing":
                return
            if outcome.kind == "transient":
                raise request_error(self.url, "delete", keys[0], outcome) from outcome.exception
        raise_first_failure(self.url, "delete", keys, self._rm_each(paths))

    def _writable_paths(self, keys: list[str]) -> list[str]:
        """The paths of ``keys``, once every one is known writable (nothing deleted before)."""
        for key in keys:
            self._check_writable(key)
        return [self._path(k) for k in keys]

    def _rm_each(self, paths: list[str]) -> list[Any]:
        """``rm_file`` for every path, concurrently: None where it went (or was never there)."""
        outcomes = self._call_many("rm_file", [((p,), {}) for p in paths])
        return [o if not _ignorable(o) else None for o in outcomes]

    # generations (S3 only; see the module docstring) -----------------------------------
    @property
    def supports_generations(self) -> bool:
        """True on S3 through s3fs, where the ETag is the generation."""
        return self._async and s3.is_s3_filesystem(self.fs)

    def _pinned(self, key: str, what: str) -> str:
        if not self.supports_generations:
            raise self._unsupported(f"{what} of key {key!r}")
        return self._path(key)

    def _outcome(self, action: str, key: str, outcome: Any) -> Any:
        """The value of a request, None when missing; conflicts and failures raised."""
        if not isinstance(outcome, Failure):
            return outcome
        if isinstance(outcome.exception, GenerationConflictError):
            raise outcome.exception
        if outcome.kind == "missing":
            return None
        raise request_error(self.url, action, key, outcome) from outcome.exception

    def get_versioned(self, key: str) -> Versioned | None:
        """The object ``key`` and its ETag (one GET), or None."""
        path = self._pinned(key, "a versioned read")
        found = self._outcome(
            "read", key, self._run_many([partial(s3.get_object, self.fs, path)])[0]
        )
        return None if found is None else Versioned(*found)

    def get_if_changed(self, key: str, generation: str) -> Versioned | NotModified | None:
        """One GET with ``If-None-Match``: NOT_MODIFIED (HTTP 304, no bytes), or the new version."""
        return self.get_many_if_changed([(key, generation)])[0]

    def get_many_if_changed(
        self, requests: Sequence[tuple[str, str | None]]
    ) -> list[Versioned | NotModified | None]:
        """Conditional GETs (``If-None-Match``; plain where the generation is None), overlapped."""
        calls = []
        for key, generation in requests:
            path = self._pinned(key, "a conditional read")
            if generation is None:
                calls.append(partial(s3.get_object, self.fs, path))
            else:
                calls.append(partial(s3.get_object_if_changed, self.fs, path, generation))
        out: list[Versioned | NotModified | None] = []
        for (key, _), outcome in zip(requests, self._run_many(calls), strict=True):
            found = self._outcome("read", key, outcome)
            out.append(found if found is None or found is NOT_MODIFIED else Versioned(*found))
        return out

    def get_range_versioned(
        self, key: str, request: ByteRequest, generation: str | None = None
    ) -> Versioned | None:
        """Part of one version of object ``key``: a ranged GET, with ``If-Match`` if pinned."""
        check_byte_request(key, request)
        found = self._ranges_versioned(key, [request], generation)
        return None if found is None else Versioned(found[0][0], found[1])

    def get_ranges_versioned(
        self, key: str, requests: Sequence[ByteRequest], generation: str | None = None
    ) -> list[bytes] | None:
        """Ranges of one version of object ``key``: concurrent ranged GETs of one ETag.

        Pinned to ``generation``, every GET carries ``If-Match``. Unpinned, the
        GETs go out at once and their ETags are compared; if they differ (a
        write landed in between) they are sent again, up to 3 times, then once
        more pinned to the current ETag (a HEAD), which raises
        :class:`~zarrflow.errors.GenerationConflictError` if writes still land.
        """
        for request in requests:
            check_byte_request(key, request)
        found = self._ranges_versioned(key, requests, generation)
        return None if found is None else found[0]

    def _ranges_versioned(
        self, key: str, requests: Sequence[ByteRequest], generation: str | None
    ) -> tuple[list[bytes], str] | None:
        path = self._pinned(key, "a versioned read")
        headers = [s3.range_header(r) for r in requests]
        wanted = [i for i, h in enumerate(headers) if h is not None]
        if not wanted:  # only empty ranges: the object's existence and ETag
            etag = self._etag(key, path, generation)
            return None if etag is None else ([b""] * len(requests), etag)
        for _ in range(_UNPINNED_TRIES if generation is None else 1):
            results = self._get_ranges(key, path, [headers[i] for i in wanted], generation)
            if generation is not None:
                break
            etags = {r[1] for r in results if type(r) is tuple}
            if not etags and all(r is None for r in results):
                return None
            if len(etags) == 1 and all(type(r) is tuple for r in results):
                generation = etags.pop()
                break
        else:  # writes kept landing in between: pin every GET to the current version
            generation = self._etag(key, path, None)
            if generation is None:
                return None
            results = self._get_ranges(key, path, [headers[i] for i in wanted], generation)
        out = [b""] * len(requests)
        for i, result in zip(wanted, results, strict=True):
            out[i] = b"" if result is _PAST_END else result[0]
        return out, generation

    def _get_ranges(
        self, key: str, path: str, headers: list[str], generation: str | None
    ) -> list[Any]:
        """Ranged GETs, concurrently: (bytes, ETag), None (missing) or _PAST_END each."""
        calls = [self._get_call(key, path, h, generation) for h in headers]
        return [
            _PAST_END
            if isinstance(o, Failure) and s3.is_invalid_range(o.exception)
            else self._outcome("read", key, o)
            for o in self._run_many(calls)
        ]

    def _get_call(
        self, key: str, path: str, header: str | None, generation: str | None
    ) -> Callable[[], Awaitable[Any]]:
        get = partial(s3.get_object, self.fs, path, header, generation)
        return partial(s3.conditional, get, self.url, key, generation)

    def _etag(self, key: str, path: str, generation: str | None) -> str | None:
        """The ETag of object ``key`` now (a HEAD, pinned if given), None when missing."""
        head = partial(s3.head_object, self.fs, path, generation)
        call = partial(s3.conditional, head, self.url, key, generation)
        found = self._outcome("check", key, self._run_many([call])[0])
        return None if found is None else found[1]

    def set_if(self, key: str, value: bytes, condition: Condition) -> str:
        """PUT object ``key`` with ``If-Match`` / ``If-None-Match: *``; its new ETag."""
        self._check_writable(key)
        check_condition(key, condition)
        path = self._pinned(key, "a conditional write")
        data = value if type(value) is bytes else bytes(value)
        if type(condition) is IfGeneration:
            put = partial(s3.put_object, self.fs, path, data, if_match=condition.generation)
            expected = condition.generation
        else:
            put = partial(s3.put_object, self.fs, path, data, if_none_match=True)
            expected = None
        call = partial(s3.conditional, put, self.url, key, expected)
        outcome = self._run_many([call])[0]
        if isinstance(outcome, Failure) and outcome.kind == "missing":
            raise request_error(self.url, "write", key, outcome) from outcome.exception
        return self._outcome("write", key, outcome)

    def delete_if(self, key: str, condition: IfGeneration) -> None:
        """DELETE object ``key`` with ``If-Match``; a missing key is a conflict."""
        self._check_writable(key)
        check_condition(key, condition, absent=False)
        path = self._pinned(key, "a conditional delete")
        delete = partial(s3.delete_object, self.fs, path, condition.generation)
        call = partial(s3.conditional, delete, self.url, key, condition.generation)
        self._outcome("delete", key, self._run_many([call])[0])


_PAST_END = object()  # a ranged GET that began past the end of the object (HTTP 416)
_UNPINNED_TRIES = 3  # unpinned ranged reads compared by ETag before pinning to a HEAD


def _ignorable(outcome: Any) -> bool:
    """True for a delete that failed only because there was nothing to delete."""
    return isinstance(outcome, Failure) and (
        outcome.kind == "missing" or isinstance(outcome.exception, IsADirectoryError)
    )
