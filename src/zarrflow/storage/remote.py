"""Building fsspec filesystems for object stores, tuned for many small concurrent requests.

Only filesystems zarrflow builds itself from a URL and ``storage_options`` are
tuned, and only where the user has not chosen otherwise; a filesystem passed
in (``FsspecStore(..., fs=)``) is used as it is.

S3 (s3fs over aiobotocore)
    * ``config_kwargs["max_pool_connections"]`` is raised from botocore's 10 to
      ``max(256, zarrflow.io_concurrency)``: with 10 pooled connections, 10
      requests would be on the wire however high ``io_concurrency`` is.
    * Retries have one owner, zarrflow (:mod:`zarrflow.storage.retry`): unless
      ``config_kwargs["retries"]`` is given, botocore's retry loop is turned off
      (``total_max_attempts=1``) and so is s3fs's own (``S3FileSystem.retries``
      = 1 on the instance built with these options). Each zarrflow attempt is
      then exactly one HTTP request, and ``zarrflow.retries`` alone bounds the
      attempts and the time. With ``config_kwargs["retries"]`` given, the loops
      nest: every zarrflow attempt may be up to s3fs's 5 tries (sleeping
      0.1–0.8 s between them, for connection errors and SlowDown only), each of
      them up to botocore's attempts; ``zarrflow.retries.max_time`` still caps
      the total, because zarrflow cancels an attempt still running at its
      deadline.
    * Whole-object reads pass ``max_concurrency=1`` to ``_cat_file``
      (:func:`whole_read_kwargs`): otherwise s3fs sends a HEAD before every GET
      to decide whether to split the object, doubling the round trips per chunk.
    * PUTs go without ``Expect: 100-continue`` (:func:`prepare_async`):
      botocore asks for it on every PutObject, so each PUT waited a whole round
      trip for the server's "100 Continue" before sending its body — two round
      trips per chunk written. A chunk is small enough to send at once (other
      S3 clients add the header only above a few MiB).
HTTP (fsspec's aiohttp filesystem)
    Nothing to tune: aiohttp pools up to 100 connections and never retries.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import dask
import fsspec
from fsspec import AbstractFileSystem

__all__ = ["make_filesystem", "prepare_async", "tuned_options", "whole_read_kwargs"]

_S3 = ("s3", "s3a")
_MIN_POOL = 256


def _protocol(url: str) -> str | None:
    if "::" in url or "://" not in url:
        return None
    return url.split("://", 1)[0].lower()


def tuned_options(url: str, storage_options: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The options zarrflow builds ``url``'s filesystem with, and whether it owns retries.

    Examples
    --------
    >>> options, owns = tuned_options("s3://bucket/a.zarr", {"anon": True})
    >>> options["config_kwargs"]["retries"], owns
    ({'total_max_attempts': 1}, True)
    >>> tuned_options("memory://x", {})
    ({}, False)
    """
    options = dict(storage_options)
    if _protocol(url) not in _S3:
        return options, False
    config = dict(options.get("config_kwargs") or {})
    pool = max(_MIN_POOL, int(dask.config.get("zarrflow.io_concurrency", 64) or 1))
    config.setdefault("max_pool_connections", pool)
    owns_retries = "retries" not in config
    if owns_retries:
        config["retries"] = {"total_max_attempts": 1}
    options["config_kwargs"] = config
    return options, owns_retries


def make_filesystem(url: str, storage_options: Mapping[str, Any]) -> tuple[AbstractFileSystem, str]:
    """The filesystem and root path for ``url``, tuned as the module docstring says.

    Examples
    --------
    >>> fs, root = make_filesystem("memory://doc-remote/a", {})
    >>> type(fs).__name__, root
    ('MemoryFileSystem', '/doc-remote/a')
    """
    options, owns_retries = tuned_options(url, storage_options)
    fs, root = fsspec.core.url_to_fs(url, **options)
    if owns_retries and hasattr(fs, "retries"):
        fs.retries = 1  # this instance is keyed by zarrflow's options: zarrflow retries
    return fs, root


def whole_read_kwargs(fs: AbstractFileSystem) -> dict[str, Any]:
    """Extra keywords for ``fs._cat_file`` reading a whole object in one request.

    Examples
    --------
    >>> whole_read_kwargs(fsspec.filesystem("memory"))
    {}
    """
    cat_file = getattr(fs, "_cat_file", None)
    if cat_file is None or not getattr(fs, "async_impl", False):
        return {}
    try:
        parameters = inspect.signature(cat_file).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return {}
    return {"max_concurrency": 1} if "max_concurrency" in parameters else {}


async def prepare_async(fs: AbstractFileSystem) -> None:
    """Tune the client of a filesystem zarrflow built, on its own loop (idempotent).

    For s3fs: drop ``Expect: 100-continue`` from PUTs (PutObject, UploadPart). Run
    before each batch, as s3fs may replace its client (a new session). Other
    filesystems are left alone.

    Examples
    --------
    >>> import asyncio
    >>> asyncio.run(prepare_async(fsspec.filesystem("memory")))  # nothing to tune
    """
    set_session = getattr(fs, "set_session", None)
    if set_session is None or not _protocols(fs) & set(_S3):
        return
    client = await set_session()
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is None or getattr(client, "_zarrflow_tuned", False):
        return
    # botocore adds the header in a "before-call.s3" handler: run after it
    events.register_last("before-call.s3", _no_expect_continue)
    client._zarrflow_tuned = True


def _no_expect_continue(params: dict[str, Any], **kwargs: Any) -> None:
    """A botocore ``before-call`` handler: send the body without waiting for 100 Continue."""
    headers = params.get("headers")
    if isinstance(headers, dict):
        headers.pop("Expect", None)


def _protocols(fs: AbstractFileSystem) -> set[str]:
    protocols = fs.protocol
    return {protocols} if isinstance(protocols, str) else set(protocols)
