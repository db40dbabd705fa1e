"""What the public functions share: a store-like made into a store, a node opened once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from zarrflow.chunks import ChunkCache
from zarrflow.errors import ZarrflowError
from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.group import Group, probe_node
from zarrflow.storage import ReadOnlyStore, Store, ZipStore, store_from_url

__all__ = ["MODES", "Mode", "StoreLike", "open_existing", "resolve_store", "where", "with_cache"]

Mode = Literal["r", "r+", "a", "w", "w-", "x"]
#: a URL or path, a Store, an fsspec FSMap, (filesystem, path), or a zarr-python store
StoreLike = str | os.PathLike | Store | Any
MODES = ("r", "r+", "a", "w", "w-", "x")


def resolve_store(store: StoreLike, mode: str, storage_options: Mapping[str, Any] | None) -> Store:
    """The :class:`~zarrflow.storage.Store` that ``store`` names, opened as ``mode`` allows.

    Parameters
    ----------
    store
        A URL, path, store object or anything :func:`~zarrflow.storage.store_from_url` takes.
    mode
        One of :data:`MODES`; ``"r"`` gives a read-only store, ``"w"`` on a
        ``.zip`` path a new archive.
    storage_options
        Passed to fsspec for remote stores.

    Examples
    --------
    >>> resolve_store("memory://doc-resolve", "r", None).read_only
    True
    """
    if mode not in MODES:
        raise ZarrflowError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "w" and isinstance(store, str | os.PathLike) and os.fspath(store).endswith(".zip"):
        # a zip archive cannot replace members in place: mode "w" starts a new one
        return ZipStore(os.fspath(store).removeprefix("zip://"), mode="w")
    st = store_from_url(store, storage_options=storage_options, read_only=mode == "r")
    if mode == "r" and not st.read_only:
        return ReadOnlyStore(st)  # mode "r" holds for store objects too
    return st


def with_cache(node: Any, chunk_cache: ChunkCache | int | None) -> Any:
    """``node`` reading through ``chunk_cache`` when one is given (else as opened).

    Parameters
    ----------
    node
        An :class:`Array` or :class:`Group`.
    chunk_cache
        A :class:`~zarrflow.ChunkCache`, its size in bytes, or None to leave ``node`` as is.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-with-cache", shape=(2,), dtype="i1")
    >>> with_cache(a, None) is a
    True
    """
    if chunk_cache is not None:
        node.use_chunk_cache(chunk_cache)
    return node


def open_existing(
    st: Store,
    path: str,
    zarr_format: int | None,
    kwargs: Mapping[str, Any],
    *,
    arrays_only: bool = False,
) -> Array | Group | None:
    """The node at ``path`` from one probe (:func:`~zarrflow.hierarchy.group.probe_node`), or None.

    Consolidated metadata is used in mode ``r`` only (``r+`` and ``a`` see the
    live hierarchy), and not even read when only an array will do.

    Parameters
    ----------
    st, path
        The store and the node's normalised path in it.
    zarr_format
        2 or 3 to look for one format only, None for either.
    kwargs
        The caller's keywords: ``use_consolidated`` and ``write_empty_chunks`` are read.
    arrays_only
        Only an array will do: consolidated metadata is not read.

    Examples
    --------
    >>> import zarrflow as zf
    >>> _ = zf.create("memory://doc-open-existing", shape=(2,), dtype="i1")
    >>> st = resolve_store("memory://doc-open-existing", "r", None)
    >>> open_existing(st, "", None, {}).shape
    (2,)
    """
    use_consolidated = (
        st.read_only and not arrays_only and kwargs.get("use_consolidated") is not False
    )
    return probe_node(
        st,
        path,
        zarr_format,
        use_consolidated=use_consolidated,
        write_empty_chunks=kwargs.get("write_empty_chunks", False),
    )


def where(st: Store, path: str) -> str:
    """The URL of ``path`` inside ``st``, for error messages.

    Parameters
    ----------
    st, path
        The store and a path in it ("" for its root).

    Examples
    --------
    >>> where(resolve_store("memory://doc-where", "a", None), "g/x")
    'memory://doc-where/g/x'
    """
    return f"{st.url.rstrip('/')}/{path}" if path else st.url
