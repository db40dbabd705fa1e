"""``store_from_url``: turn what a user typed (a path, a URL, a store) into a Store."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import dask
from fsspec.implementations.local import LocalFileSystem

from zarrflow.errors import StoreError
from zarrflow.storage.base import Store
from zarrflow.storage.fsspec_store import FsspecStore
from zarrflow.storage.local import LocalStore
from zarrflow.storage.memory import MemoryStore
from zarrflow.storage.obstore_client import (
    OBJECT_STORE_SCHEMES,
    obstore_available,
    runtime_usable,
    unmapped_options,
)
from zarrflow.storage.obstore_store import ObstoreStore
from zarrflow.storage.zip import ZipStore

__all__ = ["store_from_url"]

# a URL scheme; two characters at least, so that "C://x" stays a Windows path
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+)://")


def store_from_url(
    url_or_store: str | os.PathLike[str] | Store | Any,
    storage_options: Mapping[str, Any] | None = None,
    read_only: bool = False,
) -> Store:
    """The store for a URL, path or store.

    ==========================================  =====================================
    argument                                    store
    ==========================================  =====================================
    a :class:`Store`                            itself (``read_only`` is not applied)
    ``"memory://name"``                         ``MemoryStore(name)``
    ``"zip://path"``, a local ``*.zip`` file    ``ZipStore(path, "r" or "a")``
    a path, ``pathlib.Path``, ``"file://..."``  ``LocalStore(path)``
    ``s3://``, ``gs://``, ``az://``,            ``ObstoreStore(url, storage_options)``
    ``http(s)://`` (obstore installed)          (see ``zarrflow.object_store`` below)
    any other URL, chained URLs (``a::b``)      ``FsspecStore(url, storage_options)``
    an fsspec ``FSMap`` (``fs.get_mapper(p)``)  its filesystem and root, as below
    ``(filesystem, path)``                      ``LocalStore(path)`` for a local
                                                filesystem, else ``FsspecStore``
                                                on that filesystem
    a zarr-python ``Store`` (icechunk's too)    ``ZarrPythonStore(store)``
    ==========================================  =====================================

    ``zarrflow.object_store`` chooses the backend of object-store URLs:
    ``"auto"`` (the default) takes obstore when it is installed and every
    storage option has an obstore equivalent (and not in a process forked
    from one that already used obstore: its runtime does not survive
    ``fork()``), else fsspec; ``"obstore"``
    always obstore (an error if it is missing or an option does not map);
    ``"fsspec"`` always fsspec.

    Parameters
    ----------
    url_or_store : str, os.PathLike, Store, FSMap, (filesystem, path) or zarr Store
        What to open.
    storage_options : mapping, optional
        Options for the fsspec filesystem; only fsspec URLs take them.
    read_only : bool, default False
        Open the new store read-only (zip archives in mode ``"r"``, else ``"a"``).

    Returns
    -------
    Store

    Raises
    ------
    StoreError
        If ``url_or_store`` is of an unsupported type, or ``storage_options``
        are given for a store that does not use them.

    Examples
    --------
    >>> store_from_url("memory://doc-url")
    MemoryStore('memory://doc-url', mode='rw')
    >>> type(store_from_url("/tmp/data.zarr", read_only=True)).__name__
    'LocalStore'
    """
    if isinstance(url_or_store, Store):
        return url_or_store
    adapted = _adapt_object(url_or_store, storage_options, read_only)
    if adapted is not None:
        return adapted
    url = os.fspath(url_or_store) if isinstance(url_or_store, os.PathLike) else url_or_store
    if not isinstance(url, str):
        raise StoreError(
            f"cannot open a store from {url_or_store!r}: expected a Store, a path or a URL string"
        )
    match = None if "::" in url else _SCHEME.match(url)
    scheme = match.group(1).lower() if match else None
    if "::" not in url and scheme in OBJECT_STORE_SCHEMES and _use_obstore(url, storage_options):
        return ObstoreStore(url, storage_options, read_only=read_only)
    if "::" in url or scheme not in (None, "file", "local", "memory", "zip"):
        return FsspecStore(url, storage_options, read_only=read_only)
    if storage_options:
        raise StoreError(
            f"storage_options {dict(storage_options)!r} were given for {url!r}, which does not "
            f"use them; they apply only to fsspec URLs such as 's3://...'"
        )
    if scheme == "memory":
        return MemoryStore(url[len("memory://") :].rstrip("/") or None, read_only=read_only)
    if scheme == "zip":
        return ZipStore(url[len("zip://") :], "r" if read_only else "a")
    path = LocalFileSystem._strip_protocol(url) if scheme else url
    if _is_zip_path(path):
        return ZipStore(path, "r" if read_only else "a")
    return LocalStore(path, read_only=read_only)


def _adapt_object(obj: Any, storage_options: Any, read_only: bool) -> Store | None:
    """The store for an FSMap, a ``(filesystem, path)`` pair or a zarr-python store; else None."""
    from fsspec import AbstractFileSystem
    from fsspec.mapping import FSMap

    if isinstance(obj, FSMap):
        obj = (obj.fs, obj.root)
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], AbstractFileSystem):
        fs, path = obj
        if storage_options:
            raise StoreError(
                f"storage_options {dict(storage_options)!r} were given with a filesystem "
                f"object, which is already configured; pass them to the filesystem instead"
            )
        if isinstance(fs, LocalFileSystem):
            return LocalStore(fs._strip_protocol(path), read_only=read_only)
        return FsspecStore(fs.unstrip_protocol(path), read_only=read_only, fs=fs)
    from zarrflow.storage.zarr_adapter import ZarrPythonStore, is_zarr_python_store

    if is_zarr_python_store(obj):
        if storage_options:
            raise StoreError(f"storage_options were given with the zarr-python store {obj!r}")
        return ZarrPythonStore(obj)
    return None


def _use_obstore(url: str, storage_options: Mapping[str, Any] | None) -> bool:
    """True when ``zarrflow.object_store`` picks obstore for the object-store ``url``."""
    choice = dask.config.get("zarrflow.object_store", "auto")
    if choice == "fsspec":
        return False
    if choice == "obstore":
        if not obstore_available():
            raise StoreError(
                f"cannot open {url} with obstore (zarrflow.object_store = 'obstore'): obstore "
                "is not installed; pip install 'zarrflow[s3]' or obstore"
            )
        return True
    if choice != "auto":
        raise StoreError(
            f"invalid zarrflow.object_store {choice!r}: expected 'auto', 'obstore' or 'fsspec'"
        )
    return (
        obstore_available()
        and runtime_usable()  # not in a child forked after obstore was used
        and not unmapped_options(url, storage_options)
    )


def _is_zip_path(path: str) -> bool:
    """True for a path naming a zip archive (a ``.zip`` name that is not a directory)."""
    return path.rstrip("/\\").lower().endswith(".zip") and not os.path.isdir(path)
