"""Sorting storage failures: missing, transient or permanent.

Backends raise many kinds of exceptions for the same event (s3fs translates
botocore errors into ``OSError`` subclasses and keeps the original as
``__cause__``; aiohttp raises its own; fsspec's HTTP filesystem raises
``FileNotFoundError`` for a 404). These helpers look at an exception and
everything it was raised from, and answer three questions:

* **missing** — the object does not exist: a read gives ``None`` (a chunk then
  reads as its fill value; nothing else may ever do that);
* **transient** — connection errors, timeouts, throttling (HTTP 429, S3 503
  SlowDown) and 5xx answers: retrying may succeed;
* anything else is **permanent** (403, bad credentials, a missing bucket, bad
  requests): it fails at once, with the URL and key in the message.

A **conflict** (:func:`is_conflict_error`: a
:class:`~zarrflow.errors.GenerationConflictError`, or an HTTP 412
``PreconditionFailed`` / 409 ``ConditionalRequestConflict`` answer to a
conditional request) counts as permanent: it is an answer, so no retry loop
ever repeats it; the caller re-reads and merges again.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from zarrflow.errors import GenerationConflictError, TransientStoreError

__all__ = [
    "failure_kind",
    "hint",
    "http_status",
    "is_conflict_error",
    "is_missing_error",
    "is_transient_error",
]

#: answers to a conditional request whose condition did not hold
_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}

_MISSING_CODES = {"NoSuchKey", "NotFound", "404"}
#: codes that say the container is missing, not the object: a permanent error
_NO_CONTAINER_CODES = {"NoSuchBucket", "ContainerNotFound"}
_TRANSIENT_ERRNOS = {
    errno.EAGAIN, errno.EBUSY, errno.ECONNABORTED, errno.ECONNREFUSED, errno.ECONNRESET,
    errno.EHOSTUNREACH, errno.ENETDOWN, errno.ENETUNREACH, errno.EPIPE, errno.ETIMEDOUT,
    getattr(errno, "EREMOTEIO", 121),
}  # fmt: skip
_TRANSIENT_NAMES = {
    "ClientConnectionError", "ClientOSError", "ClientPayloadError", "ConnectionClosedError",
    "ConnectTimeoutError", "EndpointConnectionError", "HTTPClientError", "IncompleteReadError",
    "ReadTimeoutError", "ResponseParserError", "ResponseStreamingError",
    "ServerDisconnectedError", "ServerTimeoutError",
}  # fmt: skip
_TRANSIENT_CODES = {
    "InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown", "Throttling",
    "ThrottlingException", "TooManyRequests", "RequestLimitExceeded",
}  # fmt: skip
_CREDENTIAL_CODES = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
    "InvalidToken", "AllAccessDisabled",
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


def http_status(exc: BaseException) -> int | None:
    """The first HTTP status found on ``exc`` or the exceptions it was raised from.

    Examples
    --------
    >>> http_status(ValueError("no HTTP here")) is None
    True
    """
    for e in _causes(exc):
        status = _http_status_and_code(e)[0]
        if status is not None:
            return status
    return None


def _codes(exc: BaseException) -> set[str]:
    return {code for e in _causes(exc) if (code := _http_status_and_code(e)[1])}


def is_missing_error(exc: BaseException) -> bool:
    """True when ``exc`` says the object does not exist (so a read gives None).

    A missing bucket or container is not a missing object: it is a permanent error.

    Examples
    --------
    >>> is_missing_error(FileNotFoundError("s3://bucket/a")), is_missing_error(OSError())
    (True, False)
    """
    if _codes(exc) & _NO_CONTAINER_CODES:
        return False
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
        if isinstance(e, TimeoutError | ConnectionError | TransientStoreError):
            return True
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            return True
        if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(e).__mro__):
            return True
        status, code = _http_status_and_code(e)
        if (status is not None and (status >= 500 or status == 429)) or code in _TRANSIENT_CODES:
            return True
    return False


def is_conflict_error(exc: BaseException) -> bool:
    """True when ``exc`` says a conditional request's condition did not hold.

    A :class:`~zarrflow.errors.GenerationConflictError`, or an HTTP 412 / 409
    answer (S3 ``PreconditionFailed``, ``ConditionalRequestConflict``) anywhere
    in its causes.

    Examples
    --------
    >>> from zarrflow.errors import GenerationConflictError
    >>> is_conflict_error(GenerationConflictError("memory://x", "k", "1"))
    True
    >>> is_conflict_error(ConnectionResetError())
    False
    """
    for e in _causes(exc):
        if isinstance(e, GenerationConflictError):
            return True
        status, code = _http_status_and_code(e)
        if status == 412 or code in _CONFLICT_CODES:
            return True
    return False


def failure_kind(exc: BaseException) -> str:
    """``"missing"``, ``"transient"`` or ``"permanent"``.

    Examples
    --------
    >>> failure_kind(FileNotFoundError()), failure_kind(ConnectionResetError()), failure_kind(
    ...     PermissionError())
    ('missing', 'transient', 'permanent')
    """
    if is_conflict_error(exc):
        return "permanent"  # an answer, never retried
    if is_missing_error(exc):
        return "missing"
    return "transient" if is_transient_error(exc) else "permanent"


def hint(exc: BaseException) -> str:
    """A short hint for a permanent failure whose cause is clear, else ``""``.

    Examples
    --------
    >>> hint(PermissionError("Access Denied"))
    'check the credentials and permissions in storage_options'
    """
    codes = _codes(exc)
    if codes & _NO_CONTAINER_CODES:
        return "no such bucket: check its name, or create it"
    names = {type(e).__name__ for e in _causes(exc)}
    if (
        codes & _CREDENTIAL_CODES
        or names & {"NoCredentialsError", "PartialCredentialsError"}
        or any(isinstance(e, PermissionError) for e in _causes(exc))
    ):
        return "check the credentials and permissions in storage_options"
    return ""
