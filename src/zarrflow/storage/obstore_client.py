"""Talking to obstore: a client built from fsspec-style ``storage_options``, its errors sorted.

:class:`~zarrflow.storage.obstore_store.ObstoreStore` takes the same
``storage_options`` users pass to s3fs, gcsfs, adlfs or fsspec's HTTP
filesystem, so switching backends needs no change of code. This module maps
them to obstore's configuration (:func:`client_config`) — or names those that
have no equivalent (:func:`unmapped_options`), so ``zarrflow.object_store =
"auto"`` can fall back to fsspec — and turns obstore's exceptions into the
three kinds the retry loop knows (:func:`translate_error`): missing, transient,
permanent, plus :class:`PreconditionFailed` for a failed precondition (the
store raises it as :class:`~zarrflow.errors.GenerationConflictError`).

Retries have one owner, zarrflow: every client is built with obstore's own
retries off (``max_retries=0``), so each attempt of
:func:`~zarrflow.storage.retry.call_async` is one HTTP request and
``zarrflow.retries`` alone bounds attempts and time. Credentials not given in
``storage_options`` come from the environment, as obstore reads it
(``AWS_*``, ``GOOGLE_*``, ``AZURE_*`` variables, instance metadata); obstore
does not read ``~/.aws/credentials`` profiles.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zarrflow.errors import StoreError, TransientStoreError

__all__ = [
    "OBJECT_STORE_SCHEMES",
    "ClientConfig",
    "PreconditionFailed",
    "claim_runtime",
    "client_config",
    "make_client",
    "obstore_available",
    "runtime_usable",
    "translate_error",
    "unmapped_options",
    "uses_native_options",
]

#: URL schemes ObstoreStore serves, by obstore store kind
OBJECT_STORE_SCHEMES = {
    "s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure",
    "abfss": "azure", "adl": "azure", "http": "http", "https": "http",
}  # fmt: skip

# s3fs options (top level, and inside client_kwargs) and obstore's name for each
_S3_NAMES = {
    "key": "access_key_id", "secret": "secret_access_key", "token": "session_token",
    "endpoint_url": "endpoint", "region_name": "region",
    "aws_access_key_id": "access_key_id", "aws_secret_access_key": "secret_access_key",
    "aws_session_token": "session_token",
}  # fmt: skip
_S3_NATIVE = {
    "access_key_id", "secret_access_key", "session_token", "endpoint", "region",
    "default_region", "skip_signature", "virtual_hosted_style_request", "request_payer",
    "unsigned_payload", "checksum_algorithm", "conditional_put", "server_side_encryption",
    "sse_kms_key_id", "sse_bucket_key_enabled", "disable_tagging", "role_arn",
    "role_session_name", "web_identity_token_file", "sts_endpoint", "metadata_endpoint",
}  # fmt: skip
_GCS_NATIVE = {"service_account", "service_account_key", "base_url", "bearer_token",
               "application_credentials", "skip_signature"}  # fmt: skip
_AZURE_NAMES = {"sas_token": "sas_key", "endpoint_url": "endpoint"}
_AZURE_NATIVE = {
    "account_name", "account_key", "client_id", "client_secret", "tenant_id", "sas_key",
    "token", "use_emulator", "use_fabric_endpoint", "endpoint", "skip_signature",
    "authority_host", "msi_endpoint", "object_id", "msi_resource_id",
    "federated_token_file", "use_azure_cli", "disable_tagging",
}  # fmt: skip
#: fsspec options about fsspec's own caches and instances: meaningless for obstore, ignored
_FSSPEC_ONLY = {
    "skip_instance_cache", "use_listings_cache", "listings_expiry_time", "max_paths",
    "default_block_size", "default_fill_cache", "default_cache_type", "cache_regions",
    "asynchronous", "loop", "project", "simple_links", "same_scheme", "block_size",
}  # fmt: skip
_CLIENT_NATIVE = {"allow_http", "allow_invalid_certificates", "connect_timeout", "timeout",
                  "proxy_url", "user_agent", "default_headers", "pool_idle_timeout"}  # fmt: skip


#: the process whose requests started obstore's runtime (tokio threads do not survive fork)
_runtime_owner: list[int] = []


def claim_runtime(url: str) -> None:
    """Note that this process sends obstore requests; refuse in a child forked after that.

    obstore runs its requests on a tokio runtime whose threads a ``fork()``
    does not copy: a forked child of a process that already used obstore
    would hang on its first request. It gets this error instead.

    Examples
    --------
    >>> claim_runtime("s3://bucket/a"); runtime_usable()
    True
    """
    pid = os.getpid()
    if not _runtime_owner:
        _runtime_owner.append(pid)
    elif _runtime_owner[0] != pid:
        raise StoreError(
            f"cannot use obstore for {url} in this process: it was forked from a process "
            "that already used obstore, whose runtime does not survive fork(); start "
            "processes with the 'spawn' or 'forkserver' method, or select fsspec with "
            "dask.config.set({'zarrflow.object_store': 'fsspec'})"
        )


def runtime_usable() -> bool:
    """False in a child forked from a process that already used obstore (see above).

    Examples
    --------
    >>> isinstance(runtime_usable(), bool)
    True
    """
    return not _runtime_owner or _runtime_owner[0] == os.getpid()


def obstore_available() -> bool:
    """True when the ``obstore`` package can be imported.

    Examples
    --------
    >>> isinstance(obstore_available(), bool)
    True
    """
    return importlib.util.find_spec("obstore") is not None


@dataclass
class ClientConfig:
    """What an obstore client is built from: its kind, bucket, prefix and settings."""

    kind: str  # "s3", "gcs", "azure" or "http"
    bucket: str  # bucket or container ("" for http: the base URL is in ``base``)
    prefix: str  # the store's root inside the bucket, no trailing "/"
    base: str = ""  # http(s): the URL of the root
    config: dict[str, Any] = field(default_factory=dict)
    client_options: dict[str, Any] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)


def _split_url(url: str) -> tuple[str, str, str]:
    """(scheme, bucket, prefix) of ``scheme://bucket/prefix``."""
    scheme, _, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    return scheme.lower(), bucket, prefix.strip("/")


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true", "yes"))


def _s3(options: dict[str, Any], out: ClientConfig) -> None:
    client_kwargs = dict(options.pop("client_kwargs", None) or {})
    config_kwargs = dict(options.pop("config_kwargs", None) or {})
    for source in (client_kwargs, options):
        for name, value in list(source.items()):
            target = _S3_NAMES.get(name, name if name in _S3_NATIVE else None)
            if target is not None and value is not None:
                out.config[target] = value
                del source[name]
    if "verify" in client_kwargs:
        out.client_options["allow_invalid_certificates"] = not client_kwargs.pop("verify")
    if _flag(options.pop("anon", False)):
        out.config["skip_signature"] = True
    if options.pop("requester_pays", False):
        out.config["request_payer"] = True
    if "use_ssl" in options and not options.pop("use_ssl"):
        out.client_options["allow_http"] = True
    style = (config_kwargs.pop("s3", None) or {}).get("addressing_style")
    if style in ("virtual", "path"):
        out.config["virtual_hosted_style_request"] = style == "virtual"
    for name in ("connect_timeout", "read_timeout"):
        if name in config_kwargs:
            seconds = config_kwargs.pop(name)
            out.client_options["connect_timeout" if name[0] == "c" else "timeout"] = f"{seconds}s"
    for ignored in ("max_pool_connections", "retries"):  # pooling and retries: zarrflow's
        config_kwargs.pop(ignored, None)
    out.unmapped += [f"client_kwargs.{k}" for k in client_kwargs]
    out.unmapped += [f"config_kwargs.{k}" for k in config_kwargs]
    if str(out.config.get("endpoint", "")).startswith("http://"):
        out.client_options["allow_http"] = True


def _gcs(options: dict[str, Any], out: ClientConfig) -> None:
    token = options.pop("token", None)
    if token == "anon" or _flag(options.pop("anon", False)):
        out.config["skip_signature"] = True
    elif isinstance(token, dict):
        import json

        out.config["service_account_key"] = json.dumps(token)
    elif isinstance(token, str) and token not in ("google_default", "cloud", "browser"):
        out.config["service_account"] = token  # a path to a service-account JSON file
    if options.get("endpoint_url"):
        out.config["base_url"] = options.pop("endpoint_url")
    for name in [n for n in options if n in _GCS_NATIVE]:
        out.config[name] = options.pop(name)


def _azure(options: dict[str, Any], out: ClientConfig) -> None:
    if _flag(options.pop("anon", False)):
        out.config["skip_signature"] = True
    for name in list(options):
        target = _AZURE_NAMES.get(name, name if name in _AZURE_NATIVE else None)
        if target is not None:
            out.config[target] = options.pop(name)


def _http(options: dict[str, Any], out: ClientConfig) -> None:
    client_kwargs = dict(options.pop("client_kwargs", None) or {})
    headers = {**(client_kwargs.pop("headers", None) or {}), **(options.pop("headers", None) or {})}
    if headers:
        out.client_options["default_headers"] = headers
    out.unmapped += [f"client_kwargs.{k}" for k in client_kwargs]


def client_config(url: str, storage_options: Mapping[str, Any] | None = None) -> ClientConfig:
    """Map ``url`` and fsspec-style ``storage_options`` to obstore's configuration.

    ``endpoint_url`` (also in ``client_kwargs``) becomes ``endpoint``; ``key``,
    ``secret``, ``token`` the access key id, secret and session token;
    ``anon=True`` ``skip_signature``; ``region_name`` ``region``; an ``http://``
    endpoint allows plain HTTP. obstore's own configuration keys (``region``,
    ``virtual_hosted_style_request`` ...) and a ``client_options`` dict pass
    through. Options with no obstore equivalent are listed in ``unmapped``.

    Examples
    --------
    >>> c = client_config("s3://bucket/a.zarr", {"endpoint_url": "http://127.0.0.1:9000",
    ...                   "key": "k", "secret": "s", "client_kwargs": {"region_name": "eu"}})
    >>> c.bucket, c.prefix, sorted(c.config.items()), c.client_options
    ('bucket', 'a.zarr', [('access_key_id', 'k'), ('endpoint', 'http://127.0.0.1:9000'), \
('region', 'eu'), ('secret_access_key', 's')], {'allow_http': True})
    >>> client_config("gs://b/x", {"requester_pays": True}).unmapped
    ['requester_pays']
    """
    scheme, bucket, prefix = _split_url(url)
    kind = OBJECT_STORE_SCHEMES.get(scheme)
    if kind is None:
        raise StoreError(f"obstore does not serve {url!r}: expected one of "
                         f"{sorted(OBJECT_STORE_SCHEMES)} URLs")  # fmt: skip
    options = dict(storage_options or {})
    out = ClientConfig(kind, bucket, prefix)
    out.client_options.update(options.pop("client_options", None) or {})
    for name in _CLIENT_NATIVE & set(options):
        out.client_options[name] = options.pop(name)
    if kind == "http":
        out.bucket, out.prefix, out.base = "", "", url.rstrip("/")
        if scheme == "http":
            out.client_options["allow_http"] = True
    {"s3": _s3, "gcs": _gcs, "azure": _azure, "http": _http}[kind](options, out)
    out.unmapped += sorted(k for k in options if k not in _FSSPEC_ONLY)
    return out


def uses_native_options(storage_options: Mapping[str, Any] | None) -> bool:
    """True when ``storage_options`` use obstore's own names (which fsspec would not know).

    Examples
    --------
    >>> uses_native_options({"region": "eu-west-1"}), uses_native_options({"anon": True})
    (True, False)
    """
    native = (_S3_NATIVE | _GCS_NATIVE | _AZURE_NATIVE | {"client_options"}) - {
        "account_name", "account_key", "client_id", "client_secret", "tenant_id", "token",
    }  # fmt: skip
    return bool(set(storage_options or {}) & native)


def unmapped_options(url: str, storage_options: Mapping[str, Any] | None) -> list[str]:
    """The ``storage_options`` of ``url`` that obstore has no equivalent for.

    Examples
    --------
    >>> unmapped_options("s3://b/a", {"anon": True, "profile": "dev"})
    ['profile']
    """
    return client_config(url, storage_options).unmapped


def make_client(config: ClientConfig) -> Any:
    """The obstore store for ``config``, with obstore's own retries off.

    Examples
    --------
    >>> client = make_client(client_config("s3://bucket/a", {"anon": True, "region": "eu"}))
    >>> type(client).__name__
    'S3Store'
    """
    from obstore import store as obstore_store

    common: dict[str, Any] = {
        "client_options": config.client_options or None,
        "retry_config": {"max_retries": 0},  # zarrflow.retries is the one retry loop
    }
    prefix = config.prefix or None
    if config.kind == "s3":
        return obstore_store.S3Store(config.bucket, prefix=prefix, config=config.config, **common)
    if config.kind == "gcs":
        return obstore_store.GCSStore(config.bucket, prefix=prefix, config=config.config, **common)
    if config.kind == "azure":
        return obstore_store.AzureStore(
            config.bucket, prefix=prefix, config=config.config, **common
        )
    return obstore_store.HTTPStore.from_url(config.base, **common)


# errors -------------------------------------------------------------------------------------

_STATUS = re.compile(r"status code: (\d{3})")
_HTTP_KIND = re.compile(r"kind: (\w+)")
_TRANSIENT_KINDS = {"Connect", "Timeout", "Interrupted", "Request", "Decode"}
_NO_CONTAINER = ("<Code>NoSuchBucket</Code>", "ContainerNotFound")


class PreconditionFailed(Exception):
    """HTTP 412 (or an existing object under ``If-None-Match: *``): a generation conflict.

    Not an ``OSError``: the retry loop sees a permanent answer, never a fault.
    """


class RangeRefused(StoreError):
    """A byte range the server did not serve as asked: HTTP 416 (a start at or past
    the end of the object), or a whole-object answer (some servers, for an empty one)."""


def describe(exc: BaseException) -> str:
    """obstore's message without its debug dump, on one line.

    Examples
    --------
    >>> describe(OSError("Generic S3 error: 503 SlowDown\\n\\nDebug source:\\nGeneric {...}"))
    'Generic S3 error: 503 SlowDown'
    """
    text = str(exc).split("\n\nDebug source", 1)[0]
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:400] + " ..."


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an obstore error reports, if any.

    Examples
    --------
    >>> http_status(OSError("Server returned non-2xx status code: 416 Range Not Satisfiable"))
    416
    """
    match = _STATUS.search(str(exc))
    return int(match.group(1)) if match else None


def translate_error(exc: BaseException) -> BaseException:
    """``exc`` as an exception :func:`~zarrflow.storage.failures.failure_kind` sorts right.

    A missing object stays a ``FileNotFoundError`` (missing); a missing bucket
    becomes a :class:`StoreError`; failed preconditions a
    :class:`PreconditionFailed`; HTTP 5xx and 429, connection errors and
    timeouts a :class:`TransientStoreError`; denied credentials a
    ``PermissionError``; anything else a :class:`StoreError`.

    Examples
    --------
    >>> type(translate_error(OSError("non-2xx status code: 503 Service Unavailable"))).__name__
    'TransientStoreError'
    >>> type(translate_error(FileNotFoundError("no such key"))).__name__
    'FileNotFoundError'
    >>> "region_name" in str(translate_error(OSError("Received redirect without LOCATION, "
    ...     "this normally indicates an incorrectly configured region")))
    True
    """
    name = type(exc).__name__
    text = str(exc)
    if isinstance(exc, FileNotFoundError):
        if any(marker in text for marker in _NO_CONTAINER):
            return StoreError(f"{describe(exc)} — no such bucket: check its name, or create it")
        return exc
    if name in ("PreconditionError", "AlreadyExistsError", "NotModifiedError"):
        return PreconditionFailed(describe(exc))
    if name in ("PermissionDeniedError", "UnauthenticatedError"):
        return PermissionError(describe(exc))
    if isinstance(exc, TimeoutError | ConnectionError | TransientStoreError):
        return exc
    status = http_status(exc)
    if status == 301 or "incorrectly configured region" in text:
        return StoreError(
            f"{describe(exc)} — the bucket is in another region: pass storage_options "
            "{'region_name': ...} (obstore does not look it up, s3fs does)"
        )
    if status == 409:  # S3's ConditionalRequestConflict: a conditional write raced another
        return PreconditionFailed(describe(exc))
    if status is not None:
        if (status >= 500 and status != 501) or status == 429:  # 501: method not implemented
            return TransientStoreError(describe(exc))
        if status == 416:
            return RangeRefused(describe(exc))
        if status in (401, 403):
            return PermissionError(describe(exc))
        return StoreError(describe(exc))
    if "non-partial response" in text:
        return RangeRefused(describe(exc))
    kind = _HTTP_KIND.search(text)
    if (kind and kind.group(1) in _TRANSIENT_KINDS) or "error sending request" in text:
        return TransientStoreError(describe(exc))
    if isinstance(exc, ValueError | TypeError):
        return exc  # a bad argument: a bug to see, not a storage failure
    return StoreError(describe(exc))
