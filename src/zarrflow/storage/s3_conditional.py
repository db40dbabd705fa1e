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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fsspec import AbstractFileSystem

from zarrflow.errors import GenerationConflictError, StoreError
from zarrflow.storage.base import ByteRequest, OffsetByteRequest, RangeByteRequest
from zarrflow.storage.failures import http_status, is_conflict_error, is_missing_error

__all__ = [
    "conditional",
    "delete_object",
    "get_object",
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


async def head_object(fs: Any, path: str, if_match: str | None = None) -> tuple[int, str]:
    """HEAD the object at ``path`` (only if its ETag is ``if_match``): its size and ETag."""
    bucket, key = _split(fs, path)
    extra = {"IfMatch": if_match} if if_match is not None else {}
    response = await fs._call_s3("head_object", Bucket=bucket, Key=key, **extra)
    return int(response.get("ContentLength", 0)), _etag(response, path)


async def put_object(
    fs: Any, path: str, data: bytes, if_match: str | None = None, if_none_match: bool = False
) -> str:
    """PUT ``data`` at ``path`` with ``If-Match`` or ``If-None-Match: *``; the new ETag."""
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
    """DELETE the object at ``path`` only if its ETag is ``if_match``."""
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
    """True for an HTTP 416 answer (a range starting at or past the end of the object)."""
    return http_status(exc) == 416
