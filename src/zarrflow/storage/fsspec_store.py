"""``FsspecStore``: any fsspec filesystem (S3, GCS, HTTP, memory, local, chained URLs).

Batch methods go through fsspec's batched calls (``cat_ranges``, ``pipe``,
``rm``), which overlap requests on async filesystems such as s3fs. Errors are
sorted into three kinds: "missing" (read as None), transient (connection
errors, timeouts, throttling and 5xx answers: :class:`TransientStoreError`, so
the caller may retry) and everything else (:class:`StoreError`). The original
exception is always kept as ``__cause__``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from zarrflow.errors import ReadOnlyError, StoreError, TransientStoreError
from zarrflow.storage.base import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    check_byte_request,
    slice_bytes,
)
from zarrflow.storage.keys import is_valid_key, validate_key, validate_prefix
from zarrflow.storage.local import is_temp_name

__all__ = ["FsspecStore"]

_MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "NotFound", "404"}
_TRANSIENT_ERRNOS = {
    errno.EAGAIN, errno.EBUSY, errno.ECONNABORTED, errno.ECONNREFUSED, errno.ECONNRESET,
    errno.EHOSTUNREACH, errno.ENETDOWN, errno.ENETUNREACH, errno.EPIPE, errno.ETIMEDOUT,
    getattr(errno, "EREMOTEIO", 121),
}  # fmt: skip
_TRANSIENT_NAMES = {
    "ClientConnectionError", "ClientOSError", "ClientPayloadError", "ConnectionClosedError",
    "ConnectTimeoutError", "EndpointConnectionError", "IncompleteReadError", "ReadTimeoutError",
    "ResponseStreamingError", "ServerDisconnectedError", "ServerTimeoutError",
}  # fmt: skip
_TRANSIENT_CODES = {
    "InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown", "Throttling",
}  # fmt: skip


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def _http_status_and_code(exc: BaseException) -> tuple[int | None, str | None]:
    """The HTTP status and service error code an exception carries, if any."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        error = response.get("Error") or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return (status if isinstance(status, int) else None), error.get("Code")
    for attr in ("status", "status_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value, None
    return None, None


def is_missing_error(exc: BaseException) -> bool:
    """True when ``exc`` says the object does not exist (so a read gives None).

    Examples
    --------
    >>> is_missing_error(FileNotFoundError("s3://bucket/a")), is_missing_error(OSError())
    (True, False)
    """
    for e in _causes(exc):
        if isinstance(e, FileNotFoundError | NotADirectoryError | KeyError):
            return True
        status, code = _http_status_and_code(e)
        if status == 404 or code in _MISSING_CODES:
            return True
    return False


def is_transient_error(exc: BaseException) -> bool:
    """True for a failure that may succeed on retry (connection, timeout, throttle, 5xx).

    Examples
    --------
    >>> is_transient_error(TimeoutError()), is_transient_error(PermissionError())
    (True, False)
    """
    for e in _causes(exc):
        if isinstance(e, TimeoutError | ConnectionError):
            return True
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            return True
        if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(e).__mro__):
            return True
        status, code = _http_status_and_code(e)
        if (status is not None and (status >= 500 or status == 429)) or code in _TRANSIENT_CODES:
            return True
    return False


def _listable(key: str) -> bool:
    """True for a listed name that is a valid key and not a LocalStore temp file."""
    return is_valid_key(key) and not is_temp_name(key.rpartition("/")[2])


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
            fs, root = fsspec.core.url_to_fs(url, **self.storage_options)
        else:
            root = fs._strip_protocol(url)
        self.fs = fs
        self.url = url
        self.read_only = bool(read_only)
        stripped = root.rstrip("/")
        self.root = stripped or fs.root_marker
        self._prefix = stripped + "/" if stripped else fs.root_marker

    def __reduce__(self) -> tuple[type[FsspecStore], tuple[Any, ...]]:
        return (FsspecStore, (self.url, self.storage_options, self.read_only, self._given_fs))

    @property
    def is_remote(self) -> bool:
        protocols = self.fs.protocol
        protocols = {protocols} if isinstance(protocols, str) else set(protocols)
        return not protocols & {"file", "local", "memory"}

    def _path(self, key: str) -> str:
        return self._prefix + validate_key(key)

    def _error(self, action: str, key: str, exc: BaseException) -> StoreError:
        """The StoreError (TransientStoreError when retrying may help) to raise from ``exc``."""
        cls = TransientStoreError if is_transient_error(exc) else StoreError
        return cls(f"could not {action} key {key!r} in {self.url}: {type(exc).__name__}: {exc}")

    def _check_writable(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"cannot write key {key!r}: store {self.url} is read-only")

    # reads ------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The object ``key`` (``fs.cat_file``), or None when it does not exist."""
        path = self._path(key)
        try:
            return self.fs.cat_file(path)
        except IsADirectoryError:
            return None
        except Exception as exc:
            if is_missing_error(exc):
                return None
            raise self._error("read", key, exc) from exc

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Many objects in one ``fs.cat_ranges`` call (overlapped on async filesystems)."""
        return self._fetch([(key, None) for key in keys])

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        """Part of object ``key`` (``fs.cat_file(path, start, end)``), or None."""
        return self._fetch([(key, request)])[0]

    def get_ranges(self, requests: Sequence[tuple[str, ByteRequest]]) -> list[bytes | None]:
        """Many byte ranges in one ``fs.cat_ranges`` call."""
        return self._fetch(list(requests))

    def _fetch(self, requests: list[tuple[str, ByteRequest | None]]) -> list[bytes | None]:
        """Read whole values (request None) or byte ranges, in order, None for missing."""
        out: list[bytes | None] = [None] * len(requests)
        wanted, paths, starts, ends = [], [], [], []
        for i, (key, request) in enumerate(requests):
            path = self._path(key)
            start, end = self._bounds(key, request)
            if start is not None and start == end:  # nothing to fetch, only existence to tell
                out[i] = b"" if self.exists(key) else None
            else:
                wanted.append(i)
                paths.append(path)
                starts.append(start)
                ends.append(end)
        if not wanted:
            return out
        try:
            results = self.fs.cat_ranges(paths, starts, ends, on_error="return")
        except Exception as exc:
            raise self._error("read", requests[wanted[0]][0], exc) from exc
        for i, result in zip(wanted, results, strict=True):
            key, request = requests[i]
            if not isinstance(result, BaseException):
                out[i] = bytes(result)
            elif isinstance(result, IsADirectoryError) or is_missing_error(result):
                out[i] = None
            elif request is not None and not is_transient_error(result):
                out[i] = self._slice_whole(key, request, result)
            else:
                raise self._error("read", key, result) from result
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

    def _slice_whole(self, key: str, request: ByteRequest, failure: BaseException) -> bytes | None:
        """Serve a range the backend refused (HTTP 416 past the end) from the whole value.

        Only a refusal the whole value explains (a start at or past its end, or a
        suffix longer than it) is served; any other refusal is raised.
        """
        value = self.get(key)
        if value is None:
            return None
        start = getattr(request, "start", getattr(request, "offset", None))
        if start is not None and start < len(value):
            raise self._error("read a byte range of", key, failure) from failure
        return slice_bytes(value, request)

    def exists(self, key: str) -> bool:
        """True when object ``key`` exists (``fs.isfile``)."""
        path = self._path(key)
        try:
            return bool(self.fs.isfile(path))
        except Exception as exc:
            if is_missing_error(exc):
                return False
            raise self._error("check", key, exc) from exc

    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Keys starting with ``prefix``, from ``fs.find`` below its directory."""
        validate_prefix(prefix)
        directory = prefix.rpartition("/")[0]
        base = self._prefix + directory if directory else self.root
        try:
            paths = self.fs.find(base)
        except Exception as exc:
            if is_missing_error(exc):
                return iter([])
            raise self._error("list", prefix, exc) from exc
        n = len(self._prefix)
        keys = [p[n:] for p in paths if p.startswith(self._prefix)]
        return iter([k for k in keys if k.startswith(prefix) and _listable(k)])

    # writes -----------------------------------------------------------------------
    def set(self, key: str, value: bytes) -> None:
        """Write object ``key`` (``fs.pipe_file``; parents made only if the write needs them)."""
        self._check_writable(key)
        path = self._path(key)
        data = value if type(value) is bytes else bytes(value)
        self._write(key, [path], lambda: self.fs.pipe_file(path, data))

    def set_many(self, items: Mapping[str, bytes]) -> None:
        """Write many objects in one ``fs.pipe`` call (overlapped on async filesystems)."""
        for key in items:
            self._check_writable(key)
        data = {self._path(k): v if type(v) is bytes else bytes(v) for k, v in items.items()}
        if data:
            self._write(next(iter(items)), list(data), lambda: self.fs.pipe(data))

    def _write(self, key: str, paths: list[str], write: Callable[[], object]) -> None:
        """Run ``write``; on FileNotFoundError make the parent directories and run it again."""
        try:
            try:
                write()
            except FileNotFoundError:  # a local-like filesystem without the parent directories
                for parent in {self.fs._parent(p) for p in paths}:
                    self.fs.makedirs(parent, exist_ok=True)
                write()
        except Exception as exc:
            raise self._error("write", key, exc) from exc

    def delete(self, key: str) -> None:
        """Remove object ``key``; a missing key is ignored."""
        self._check_writable(key)
        path = self._path(key)
        try:
            self.fs.rm_file(path)
        except Exception as exc:
            if not (is_missing_error(exc) or isinstance(exc, IsADirectoryError)):
                raise self._error("delete", key, exc) from exc

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove many objects; one batched ``fs.rm`` on remote filesystems."""
        keys = list(keys)
        for key in keys:
            self._check_writable(key)
        paths = [self._path(k) for k in keys]
        if self.is_remote and paths and all(_literal(p) for p in paths):
            try:
                self.fs.rm(paths)
                return
            except Exception as exc:
                if not is_missing_error(exc):
                    raise self._error("delete", keys[0], exc) from exc
        for key in keys:
            self.delete(key)
