"""Conditional S3 requests through s3fs: the ETag as the generation.

The generation of an S3 object is its ``ETag`` (a digest of its content, as
S3 returns it, quotes included). Reads pin it with ``If-Match``, writes are
conditional with ``If-Match: <etag>`` or ``If-None-Match: *``, deletes with
``If-Match``; S3 answers a condition that does not hold with HTTP 412
``PreconditionFailed`` (or 409 ``ConditionalRequestConflict`` when another
conditional write of the key is in flight), which these functions raise as
:class:`~zarrflow.errors.GenerationConflictError`. A 404 answer to a request
pinned to a generation is a conflict too: the object no longer has it.

Two writes of identical bytes give the same ETag, so a generation can repeat
across writes of the same content. That is harmless for read-modify-write:
equal ETags mean equal bytes, so a merge computed from them is still right.

Each function is one request, awaited on s3fs's event loop; retries and the
request budget are the caller's (:func:`~zarrflow.storage.retry.call_async`).
:class:`~zarrflow.storage.FsspecStore` drives them; the example shows the
store methods and, below them, the requests themselves.

Examples
--------
>>> from fsspec.asyn import sync
>>> from zarrflow.errors import GenerationConflictError
>>> from zarrflow.storage import FsspecStore, IfAbsent, IfGeneration
>>> from zarrflow.testing.s3_server import S3Server
>>> with S3Server() as server:
...     server.create_bucket("doc-cond")
...     store = FsspecStore("s3://doc-cond/a", server.storage_options())
...     etag = store.set_if("k", b"v1", IfAbsent())
...     assert store.get_versioned("k").generation == etag
...     try:
...         store.set_if("k", b"v2", IfGeneration('"stale"'))
...     except GenerationConflictError:
...         print("stale If-Match refused")
...     fs = store.fs
...     new = sync(fs.loop, put_object, fs, "doc-cond/a/k", b"v2", if_match=etag)
...     data, same = sync(fs.loop, get_object, fs, "doc-cond/a/k", "bytes=0-0", new)
...     size, _ = sync(fs.loop, head_object, fs, "doc-cond/a/k", new)
...     sync(fs.loop, delete_object, fs, "doc-cond/a/k", new)
...     print(data, same == new, size, store.get("k"))
stale If-Match refused
b'v' True 2 None
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fsspec import AbstractFileSystem

from zarrflow.errors import GenerationConflictError, StoreError
from zarrflow.storage.base import (
    NOT_MODIFIED,
    ByteRequest,
    NotModified,
    OffsetByteRequest,
    RangeByteRequest,
)
from zarrflow.storage.failures import http_status, is_conflict_error, is_missing_error

__all__ = [
    "conditional",
    "delete_object",
    "get_object",
    "get_object_if_changed",
    "head_object",
    "is_invalid_range",
    "is_s3_filesystem",
    "put_object",
    "range_header",
]

T = TypeVar("T")


def is_s3_filesystem(fs: AbstractFileSystem) -> bool:
    """True for an s3fs filesystem (conditional requests through its botocore client).

    Examples
    --------
    >>> import fsspec
    >>> is_s3_filesystem(fsspec.filesystem("memory"))
    False
    """
    protocols = fs.protocol
    protocols = {protocols} if isinstance(protocols, str) else set(protocols)
    return bool(protocols & {"s3", "s3a"}) and hasattr(fs, "_call_s3")


def range_header(request: ByteRequest) -> str | None:
    """The HTTP ``Range`` of a request, or None for an empty range (nothing to fetch).

    Examples
    --------
    >>> range_header(RangeByteRequest(2, 5)), range_header(OffsetByteRequest(7))
    ('bytes=2-4', 'bytes=7-')
    >>> from zarrflow.storage import SuffixByteRequest
    >>> range_header(SuffixByteRequest(4)), range_header(SuffixByteRequest(0))
    ('bytes=-4', None)
    """
    if type(request) is RangeByteRequest:
        return f"bytes={request.start}-{request.end - 1}" if request.end > request.start else None
    if type(request) is OffsetByteRequest:
        return f"bytes={request.offset}-"
    return f"bytes=-{request.suffix}" if request.suffix else None


async def conditional(
    request: Callable[[], Awaitable[T]], url: str, key: str, expected: str | None
) -> T:
    """``await request()``, turning a failed condition into GenerationConflictError.

    ``expected`` is the generation the request was pinned to (None: "absent").
    A 404 answer counts as a conflict only when a generation was expected.

    Examples
    --------
    >>> import asyncio
    >>> async def gone():
    ...     raise FileNotFoundError("s3://b/k")
    >>> try:
    ...     asyncio.run(conditional(gone, "s3://b", "k", '"etag"'))
    ... except GenerationConflictError as exc:
    ...     print(exc.expected)
    "etag"
    """
    try:
        return await request()
    except Exception as exc:
        if is_conflict_error(exc) or (expected is not None and is_missing_error(exc)):
            found = "nothing is stored" if is_missing_error(exc) else "the object has changed"
            raise GenerationConflictError(url, key, expected, found) from exc
        raise


def _split(fs: Any, path: str) -> tuple[str, str]:
    bucket, key, _ = fs.split_path(path)
    return bucket, key


async def get_object(
    fs: Any, path: str, range_: str | None = None, if_match: str | None = None
) -> tuple[bytes, str]:
    """GET the object at ``path`` (a ``range_`` of it), only if its ETag is ``if_match``.

    Returns the bytes and the object's ETag. A range that starts past the end
    of the object raises (HTTP 416; see :func:`http_status`).
    """
    bucket, key = _split(fs, path)
    extra: dict[str, str] = {}
    if range_ is not None:
        extra["Range"] = range_
    if if_match is not None:
        extra["IfMatch"] = if_match
    response = await fs._call_s3("get_object", Bucket=bucket, Key=key, **extra)
    try:
        data = await response["Body"].read()
    finally:
        response["Body"].close()
    return data, _etag(response, path)


async def get_object_if_changed(fs: Any, path: str, etag: str) -> tuple[bytes, str] | NotModified:
    """GET the object at ``path`` with ``If-None-Match: <etag>``: NOT_MODIFIED if it still has it.

    S3 answers an unchanged object with HTTP 304 and no body; a changed one
    with its bytes and new ETag (as :func:`get_object`).
    """
    bucket, key = _split(fs, path)
    try:
        response = await fs._call_s3("get_object", Bucket=bucket, Key=key, IfNoneMatch=etag)
    except OSError as exc:
        if http_status(exc) == 304:
            return NOT_MODIFIED
        raise
    try:
        data = await response["Body"].read()
    finally:
        response["Body"].close()
    return data, _etag(response, path)


async def head_object(fs: Any, path: str, if_match: str | None = None) -> tuple[int, str]:
    """HEAD the object at ``path`` (only if its ETag is ``if_match``): its size and ETag.

    Example: the module's.
    """
    bucket, key = _split(fs, path)
    extra = {"IfMatch": if_match} if if_match is not None else {}
    response = await fs._call_s3("head_object", Bucket=bucket, Key=key, **extra)
    return int(response.get("ContentLength", 0)), _etag(response, path)


async def put_object(
    fs: Any, path: str, data: bytes, if_match: str | None = None, if_none_match: bool = False
) -> str:
    """PUT ``data`` at ``path`` with ``If-Match`` or ``If-None-Match: *``; the new ETag.

    Example: the module's.
    """
    bucket, key = _split(fs, path)
    extra = {"IfMatch": if_match} if if_match is not None else {}
    if if_none_match:
        extra["IfNoneMatch"] = "*"
    try:
        response = await fs._call_s3("put_object", Bucket=bucket, Key=key, Body=data, **extra)
    finally:
        fs.invalidate_cache(path)
    return _etag(response, path)


async def delete_object(fs: Any, path: str, if_match: str) -> None:
    """DELETE the object at ``path`` only if its ETag is ``if_match``.

    Example: the module's.
    """
    bucket, key = _split(fs, path)
    try:
        await fs._call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=if_match)
    finally:
        fs.invalidate_cache(path)


def _etag(response: dict[str, Any], path: str) -> str:
    etag = response.get("ETag")
    if not etag:
        raise StoreError(f"S3 answered a request for {path!r} without an ETag")
    return str(etag)


def is_invalid_range(exc: BaseException) -> bool:
    """True for an HTTP 416 answer (a range starting at or past the end of the object).

    Examples
    --------
    >>> is_invalid_range(ValueError("no status"))
    False
    """
    return http_status(exc) == 416
