"""``ObstoreStore``: S3, GCS, Azure and HTTP(S) through obstore, the Rust object-store client.

The default backend for ``s3://``, ``gs://``, ``az://`` and ``http(s)://`` URLs
when obstore is installed (``zarrflow.object_store``, see
:func:`~zarrflow.storage.url.store_from_url`). Against the same server it
spends a fraction of s3fs's client CPU per request (see
``benchmarks/bench_remote.py``), and on a machine with few cores client CPU
is what caps a remote read.

Every request is an obstore coroutine run on fsspec's I/O event loop (one
thread for the whole process); a batch (``get_many``, ``get_ranges``,
``set_many`` ...) sends all its requests at once, each under the process-wide
budget ``zarrflow.io_concurrency`` (:func:`~zarrflow.storage.retry.io_budget`)
and retried per ``zarrflow.retries`` by
:func:`~zarrflow.storage.retry.call_async` — obstore's own retries are off,
so exactly one layer retries. Failures are sorted as for
:class:`~zarrflow.storage.FsspecStore`: a missing object reads as None; a
transient failure that outlasts its retries raises :class:`TransientStoreError`,
anything else :class:`StoreError` at once, naming the URL and the key.

Every object has a generation, its ETag: reads can return it
(:meth:`ObstoreStore.get_versioned`), ranged reads can require it (``If-Match``)
and writes can be conditional (:meth:`ObstoreStore.set_if`: ``If-Match`` or
``If-None-Match: *``), failing with :class:`GenerationConflictError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from fsspec.asyn import get_loop, sync

from zarrflow.errors import GenerationConflictError, StoreError
from zarrflow.storage.base import (
    NOT_MODIFIED,
    ByteRequest,
    Condition,
    IfGeneration,
    NotModified,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
    Versioned,
    check_byte_request,
    check_condition,
    check_generation,
    slice_bytes,
)
from zarrflow.storage.fsspec_store import FsspecStore
from zarrflow.storage.keys import is_valid_key, validate_key, validate_prefix
from zarrflow.storage.obstore_client import (
    PreconditionFailed,
    RangeRefused,
    claim_runtime,
    client_config,
    describe,
    make_client,
    translate_error,
    uses_native_options,
)
from zarrflow.storage.retry import (
    Failure,
    RetryPolicy,
    call_async,
    failures_by_key,
    io_budget,
    raise_first_failure,
    request_error,
)

__all__ = ["ObstoreStore"]

Request = Callable[[], Awaitable[Any]]

#: values up to this size go in one PUT (one request, retried whole); obstore's default
#: would split anything above 5 MiB into a multipart upload (3 requests at least)
_MULTIPART_BYTES = 256 * 2**20


def _obstore() -> Any:
    import obstore

    return obstore


def _range_option(request: ByteRequest) -> Any:
    """obstore's ``range`` option for a non-empty byte request."""
    if type(request) is RangeByteRequest:
        return (request.start, request.end)
    if type(request) is OffsetByteRequest:
        return {"offset": request.offset}
    return {"suffix": request.suffix}


def _is_empty(request: ByteRequest) -> bool:
    """True for a request of no bytes (obstore refuses those: only existence is told)."""
    if type(request) is RangeByteRequest:
        return request.start == request.end
    return type(request) is SuffixByteRequest and request.suffix == 0


class ObstoreStore(Store):
    """A store on S3, GCS, Azure Blob Storage or an HTTP(S) server, through obstore.

    Parameters
    ----------
    url : str
        ``s3://bucket/path``, ``gs://bucket/path``, ``az://container/path`` or
        ``https://host/path``.
    storage_options : dict, optional
        fsspec-style options (``endpoint_url``, ``key``, ``secret``, ``token``,
        ``anon``, ``client_kwargs={"region_name": ...}`` ...) or obstore's own
        configuration keys; see :func:`~zarrflow.storage.obstore_client.client_config`.
    read_only : bool, default False
        Refuse every write with :class:`~zarrflow.errors.ReadOnlyError`.

    Raises
    ------
    StoreError
        If a storage option has no obstore equivalent (select the fsspec
        backend for it: ``zarrflow.object_store = "fsspec"``).

    Examples
    --------
    >>> store = ObstoreStore("s3://bucket/data.zarr", {"anon": True, "region": "us-east-1"})
    >>> store.is_remote, store.retries_requests, store.supports_generations
    (True, True, True)
    """

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        read_only: bool = False,
    ) -> None:
        self.url = url
        self.storage_options = dict(storage_options or {})
        self.read_only = bool(read_only)
        config = client_config(url, self.storage_options)
        if config.unmapped:
            raise StoreError(
                f"cannot open {url} with obstore: storage_options {config.unmapped} have no "
                "obstore equivalent; remove them, or select the fsspec backend with "
                "dask.config.set({'zarrflow.object_store': 'fsspec'})"
            )
        self._kind = config.kind
        self._twin: Store | bool | None = None  # see _conditional_deleter
        try:
            self._client = make_client(config)
        except Exception as exc:  # obstore's configuration errors
            raise StoreError(f"cannot open {url} with obstore: {describe(exc)}") from exc

    def __reduce__(self) -> tuple[type[ObstoreStore], tuple[Any, ...]]:
        return (ObstoreStore, (self.url, self.storage_options, self.read_only))

    # capabilities -------------------------------------------------------------------------
    @property
    def is_remote(self) -> bool:
        return True

    @property
    def retries_requests(self) -> bool:
        """True: every request is retried here, per ``zarrflow.retries``."""
        return True

    @property
    def supports_listing(self) -> bool:
        """False for plain HTTP(S) servers: they list nothing (obstore would need WebDAV)."""
        return self._kind != "http"

    @property
    def supports_generations(self) -> bool:
        """True where objects have ETags and writes can be conditional (not plain HTTP)."""
        return self._kind != "http"

    # requests -----------------------------------------------------------------------------
    def _run(self, requests: Sequence[Request]) -> list[Any]:
        """Each request (a coroutine factory), retried, concurrently: value or Failure each.

        At most as many workers as the budget allows take requests from one
        shared iterator, so a million keys never make a million coroutines.
        """
        if not requests:
            return []
        claim_runtime(self.url)
        policy = RetryPolicy.from_config()
        budget = io_budget()
        results: list[Any] = [None] * len(requests)
        pending = iter(enumerate(requests))

        async def worker() -> None:
            for i, request in pending:
                results[i] = await call_async(request, policy, budget)

        async def run_all() -> None:
            await asyncio.gather(*(worker() for _ in range(min(len(requests), budget.limit))))

        sync(get_loop(), run_all)
        return results

    def _one(self, request: Request) -> Any:
        return self._run([request])[0]

    @staticmethod
    def _translated(make: Callable[[], Awaitable[Any]]) -> Request:
        """``make`` with obstore's exceptions turned into ones the retry loop sorts."""

        async def request() -> Any:
            try:
                return await make()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = translate_error(exc)
                if error is exc:
                    raise
                if not isinstance(exc, FileNotFoundError):  # (that cause would read as missing)
                    error.__cause__ = exc
                raise error from None

        return request

    # reads ----------------------------------------------------------------------------------
    def _get_request(
        self, key: str, request: ByteRequest | None, generation: str | None = None
    ) -> Request:
        """A GET of ``key`` (a range of it), giving ``(bytes, etag)``."""
        obs = _obstore()
        path = validate_key(key)
        options: dict[str, Any] = {}
        if request is not None:
            options["range"] = _range_option(request)
        if generation is not None:
            options["if_match"] = generation

        async def get() -> tuple[bytes, str | None]:
            result = await obs.get_async(self._client, path, options=options or None)
            data = await result.bytes_async()
            return bytes(data), result.meta.get("e_tag")

        return self._translated(get)

    def _fetch(
        self, requests: Sequence[tuple[str, ByteRequest | None]], generation: str | None = None
    ) -> list[tuple[bytes, str | None] | None]:
        """(bytes, etag) of whole values or byte ranges, in order, None for missing."""
        out: list[tuple[bytes, str | None] | None] = [None] * len(requests)
        wanted: list[int] = []
        calls: list[Request] = []
        for i, (key, request) in enumerate(requests):
            if request is not None:
                check_byte_request(key, request)
                if _is_empty(request):
                    out[i] = self._empty(key, generation)
                    continue
            wanted.append(i)
            calls.append(self._get_request(key, request, generation))
        outcomes = self._run(calls)
        for n, (i, outcome) in enumerate(zip(wanted, outcomes, strict=True)):
            key, request = requests[i]
            if not isinstance(outcome, Failure):
                out[i] = outcome
            elif isinstance(outcome.exception, PreconditionFailed):
                raise GenerationConflictError(self.url, key, generation, "it has changed")
            elif outcome.kind == "missing":
                if generation is not None:
                    raise GenerationConflictError(self.url, key, generation, "nothing is stored")
                out[i] = None
            elif isinstance(outcome.exception, RangeRefused) and request is not None:
                out[i] = self._sliced(key, request, generation)
            else:
                others = sum(isinstance(o, Failure) for o in outcomes[n + 1 :])
                raise request_error(self.url, "read", key, outcome, others) from outcome.exception
        return out

    def _sliced(
        self, key: str, request: ByteRequest, generation: str | None
    ) -> tuple[bytes, str | None] | None:
        """A refused range served from the whole value (e.g. a start past the end: b"")."""
        whole = self._fetch([(key, None)], generation)[0]
        return None if whole is None else (slice_bytes(whole[0], request), whole[1])

    def _empty(self, key: str, generation: str | None) -> tuple[bytes, str | None] | None:
        """``(b"", etag)`` if ``key`` exists (at ``generation``, if given), else None."""
        meta = self._head(key)
        etag = None if meta is None else meta.get("e_tag")
        if generation is not None:
            check_generation(self.url, key, IfGeneration(generation), etag)
        return None if meta is None else (b"", etag)

    def _head(self, key: str) -> dict[str, Any] | None:
        obs = _obstore()
        path = validate_key(key)
        outcome = self._one(self._translated(lambda: obs.head_async(self._client, path)))
        if isinstance(outcome, Failure):
            if outcome.kind == "missing":
                return None
            raise request_error(self.url, "check", key, outcome) from outcome.exception
        return dict(outcome)

    def get(self, key: str) -> bytes | None:
        """The object ``key``, or None when it does not exist."""
        got = self._fetch([(key, None)])[0]
        return None if got is None else got[0]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Many objects, requested concurrently; None for the missing ones."""
        return [None if g is None else g[0] for g in self._fetch([(k, None) for k in keys])]

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        """Part of object ``key``, or None when it does not exist."""
        got = self._fetch([(key, request)])[0]
        return None if got is None else got[0]

    def get_ranges(self, requests: Sequence[tuple[str, ByteRequest]]) -> list[bytes | None]:
        """Many byte ranges, requested concurrently, in order."""
        return [None if g is None else g[0] for g in self._fetch(list(requests))]

    def exists(self, key: str) -> bool:
        """True when object ``key`` exists (one HEAD request)."""
        return self._head(key) is not None

    # generations ------------------------------------------------------------------------------
    def _pinned(self, key: str, what: str) -> None:
        if not self.supports_generations:
            raise self._unsupported(f"{what} of key {key!r}")

    def get_versioned(self, key: str) -> Versioned | None:
        """The object ``key`` and its generation (ETag), or None when it does not exist.

        Examples
        --------
        >>> ObstoreStore("s3://bucket/a", {"anon": True}).supports_generations
        True
        """
        self._pinned(key, "a versioned read")
        got = self._fetch([(key, None)])[0]
        return None if got is None else self._versioned(key, got)

    def get_if_changed(self, key: str, generation: str) -> Versioned | NotModified | None:
        """One GET with ``If-None-Match``: NOT_MODIFIED (HTTP 304, no bytes), or the new version."""
        return self.get_many_if_changed([(key, generation)])[0]

    def get_many_if_changed(
        self, requests: Sequence[tuple[str, str | None]]
    ) -> list[Versioned | NotModified | None]:
        """Conditional GETs (``If-None-Match``; plain where the generation is None), overlapped."""
        for key, _ in requests:
            self._pinned(key, "a conditional read")
        outcomes = self._run([self._if_changed_request(k, g) for k, g in requests])
        out: list[Versioned | NotModified | None] = []
        for (key, _), outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, Failure):
                if outcome.kind == "missing":
                    out.append(None)
                    continue
                others = sum(isinstance(o, Failure) for o in outcomes) - 1
                raise request_error(self.url, "read", key, outcome, others) from outcome.exception
            out.append(outcome if outcome is NOT_MODIFIED else self._versioned(key, outcome))
        return out

    def _if_changed_request(self, key: str, generation: str | None) -> Request:
        """A GET of ``key`` giving ``(bytes, etag)``, or NOT_MODIFIED when it has ``generation``."""
        obs = _obstore()
        path = validate_key(key)
        options = None if generation is None else {"if_none_match": generation}

        async def get() -> tuple[bytes, str | None] | NotModified:
            try:
                result = await obs.get_async(self._client, path, options=options)
            except Exception as exc:
                if type(exc).__name__ == "NotModifiedError":  # HTTP 304: unchanged
                    return NOT_MODIFIED
                raise
            data = await result.bytes_async()
            return bytes(data), result.meta.get("e_tag")

        return self._translated(get)

    def _versioned(self, key: str, got: tuple[bytes, str | None]) -> Versioned:
        data, etag = got
        if etag is None:
            raise StoreError(
                f"could not read key {key!r} in {self.url} with its generation: the server "
                "sent no ETag"
            )
        return Versioned(data, etag)

    def get_range_versioned(
        self, key: str, request: ByteRequest, generation: str | None = None
    ) -> Versioned | None:
        """Part of one version of object ``key``: a ranged GET, with ``If-Match`` if pinned.

        Pinned to ``generation``, another version or none stored raises
        :class:`~zarrflow.errors.GenerationConflictError`.
        """
        self._pinned(key, "a versioned read")
        check_byte_request(key, request)
        got = self._fetch([(key, request)], generation)[0]
        return None if got is None else self._versioned(key, got)

    def get_ranges_versioned(
        self, key: str, requests: Sequence[ByteRequest], generation: str | None = None
    ) -> list[bytes] | None:
        """Ranges of one version of object ``key``: concurrent ranged GETs of one ETag.

        Pinned to ``generation``, every GET carries ``If-Match``. Unpinned, the
        GETs go out at once and their ETags are compared; if a write landed in
        between they are sent again pinned to the first answer's ETag, which
        raises :class:`~zarrflow.errors.GenerationConflictError` if the object
        changed again. Never a mix of versions.
        """
        self._pinned(key, "a versioned read")
        requests = list(requests)
        for request in requests:
            check_byte_request(key, request)
        if not requests:
            return None if self._empty(key, generation) is None else []
        got = self._fetch([(key, r) for r in requests], generation)
        if generation is None:
            present = [g for g in got if g is not None]
            if not present:
                return None
            if len(present) < len(got) or len({g[1] for g in present}) != 1:
                got = self._fetch([(key, r) for r in requests], present[0][1])
        return [g[0] for g in got]

    def set_if(self, key: str, value: bytes, condition: Condition) -> str:
        """PUT object ``key`` with ``If-Match`` / ``If-None-Match: *``; its new ETag.

        ``IfGeneration(g)`` writes only over generation ``g``, ``IfAbsent()``
        only where nothing is stored; otherwise
        :class:`~zarrflow.errors.GenerationConflictError`, and nothing is
        written. A write retried after a lost answer may conflict with itself:
        callers re-read and retry, as for any conflict.
        """
        self._check_writable(key)
        check_condition(key, condition)
        self._pinned(key, "a conditional write")
        if type(condition) is IfGeneration:
            mode: Any = {"e_tag": condition.generation}
            expected: str | None = condition.generation
        else:
            mode, expected = "create", None
        outcome = self._put([(key, value)], mode)[1][0]
        if isinstance(outcome, Failure):
            if isinstance(outcome.exception, PreconditionFailed):
                found = "an object is stored there" if expected is None else "it has changed"
                raise GenerationConflictError(self.url, key, expected, found)
            raise request_error(self.url, "write", key, outcome) from outcome.exception
        if outcome is None:
            raise StoreError(f"wrote key {key!r} in {self.url}, but the server sent no ETag")
        return outcome

    def delete_if(self, key: str, condition: IfGeneration) -> None:
        """Delete object ``key`` only if it still has ``condition.generation``.

        A missing key is a conflict. obstore has no conditional DELETE: on S3,
        with s3fs installed, it is sent through s3fs with ``If-Match``
        (atomic); elsewhere the ETag is checked with a HEAD right before the
        DELETE, so a write landing between the two would be lost.
        """
        self._check_writable(key)
        check_condition(key, condition, absent=False)
        self._pinned(key, "a conditional delete")
        twin = self._conditional_deleter()
        if twin is not None:
            twin.delete_if(key, condition)
            return
        meta = self._head(key)
        check_generation(self.url, key, condition, None if meta is None else meta.get("e_tag"))
        self.delete(key)

    def _conditional_deleter(self) -> Store | None:
        """An s3fs store over the same objects (DELETE with If-Match), or None."""
        if self._twin is None:
            self._twin = False
            if self._kind == "s3" and not uses_native_options(self.storage_options):
                try:
                    twin = FsspecStore(self.url, self.storage_options)
                except Exception:  # s3fs not installed, or options it cannot take
                    twin = None
                if twin is not None and twin.supports_generations:
                    self._twin = twin
        return self._twin or None

    # listing ----------------------------------------------------------------------------------
    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Keys starting with ``prefix``, from one listing of its directory."""
        validate_prefix(prefix)
        if not self.supports_listing:
            return iter([])  # a plain HTTP server cannot list (as with fsspec's HTTP)
        obs = _obstore()
        directory = prefix.rpartition("/")[0] or None

        async def listing() -> list[str]:
            metas = await obs.list(self._client, directory).collect_async()
            return [m["path"] for m in metas]

        outcome = self._one(self._translated(listing))
        if isinstance(outcome, Failure):
            if outcome.kind == "missing":
                return iter([])
            raise request_error(self.url, "list", prefix, outcome) from outcome.exception
        return iter(sorted(k for k in outcome if k.startswith(prefix) and is_valid_key(k)))

    def list_dir(self, prefix: str) -> list[str]:
        """Names of the immediate children below ``prefix`` (one delimited listing)."""
        validate_prefix(prefix)
        if not self.supports_listing:
            return super().list_dir(prefix)
        obs = _obstore()
        directory = prefix.rstrip("/") or None

        async def listing() -> list[str]:
            result = await obs.list_with_delimiter_async(self._client, directory)
            paths = [m["path"] for m in result["objects"]] + list(result["common_prefixes"])
            return paths

        outcome = self._one(self._translated(listing))
        if isinstance(outcome, Failure):
            if outcome.kind == "missing":
                return []
            raise request_error(self.url, "list", prefix, outcome) from outcome.exception
        return sorted({p.rstrip("/").rpartition("/")[2] for p in outcome} - {""})

    # writes -----------------------------------------------------------------------------------
    def _put(self, items: Iterable[tuple[str, Any]], mode: Any = None) -> tuple[list[str], list]:
        """PUT every item (keys validated first): the keys, and each one's outcome (ETag)."""
        obs = _obstore()
        items = list(items)
        for key, _ in items:
            validate_key(key)
            self._check_writable(key)
        calls = []
        for key, value in items:
            data = value if type(value) is bytes else bytes(value)

            async def put(path: str = key, data: bytes = data) -> str | None:
                multipart = len(data) > _MULTIPART_BYTES and mode is None
                result = await obs.put_async(
                    self._client, path, data, mode=mode, use_multipart=multipart
                )
                return result.get("e_tag")

            calls.append(self._translated(put))
        return [k for k, _ in items], self._run(calls)

    def set(self, key: str, value: bytes) -> None:
        """Write object ``key`` (unconditionally: the last writer wins)."""
        raise_first_failure(self.url, "write", *self._put([(key, value)]))

    def set_many(self, items: Mapping[str, bytes]) -> None:
        """Write many objects with concurrent PUTs; an invalid key means nothing is written."""
        raise_first_failure(self.url, "write", *self._put(items.items()))

    def try_set_many(self, items: Mapping[str, bytes]) -> dict[str, Exception]:
        """Write many objects concurrently, trying every one: the keys that failed, and why."""
        return failures_by_key(self.url, "write", *self._put(items.items()))

    def _delete(self, keys: Sequence[str]) -> list[Any]:
        """DELETE each key concurrently: None where it went (or was never there), or Failure."""
        obs = _obstore()
        for key in keys:
            self._check_writable(key)
        paths = [validate_key(k) for k in keys]
        calls = [self._translated(lambda p=p: obs.delete_async(self._client, p)) for p in paths]
        outcomes = self._run(calls)
        return [None if isinstance(o, Failure) and o.kind == "missing" else o for o in outcomes]

    def delete(self, key: str) -> None:
        """Remove object ``key``; a missing key is ignored."""
        raise_first_failure(self.url, "delete", [key], self._delete([key]))

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove many objects with concurrent DELETEs."""
        keys = list(keys)
        raise_first_failure(self.url, "delete", keys, self._delete(keys))

    def try_delete_many(self, keys: Iterable[str]) -> dict[str, Exception]:
        """Remove many objects concurrently, trying every one: the keys that failed, and why."""
        keys = list(keys)
        return failures_by_key(self.url, "delete", keys, self._delete(keys))

    def close(self) -> None:
        """Nothing to release: connections are pooled by the client and closed with it."""
