"""Opening arrays and groups as a mode says, and consolidating a hierarchy's metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zarrflow.api.stores import Mode, StoreLike, open_existing, resolve_store, where, with_cache
from zarrflow.chunks import ChunkCache
from zarrflow.errors import (
    ArrayNotFoundError,
    ContainsArrayError,
    ContainsGroupError,
    GroupNotFoundError,
    MetadataError,
    NodeNotFoundError,
    ZarrflowError,
)
from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.group import Group, create_array, create_group
from zarrflow.hierarchy.group import open_node as open_hierarchy_node
from zarrflow.hierarchy.nodes import node_exists, normalize_path
from zarrflow.metadata import write_consolidated
from zarrflow.metadata.consolidated import probe_node_metadata

__all__ = ["consolidate_metadata", "open", "open_array", "open_consolidated", "open_group"]


def open_consolidated(
    store: StoreLike,
    *,
    mode: Mode = "r",
    path: str | None = None,
    zarr_format: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Group:
    """Open a group from its consolidated metadata (zarr-python's ``open_consolidated``).

    Unlike :func:`open_group`, which uses consolidated metadata where it
    finds it, this raises when there is none.

    Parameters
    ----------
    store
        Where the hierarchy lives.
    mode
        ``"r"`` (default) or ``"r+"``/``"a"``: the members come from the
        consolidated metadata either way.
    path
        The group's path inside the store.
    zarr_format
        2 or 3 to look for one format only.
    storage_options
        Passed to fsspec for remote stores.

    Raises
    ------
    GroupNotFoundError
        When there is no group at ``path``.
    MetadataError
        When the group has no consolidated metadata.

    Examples
    --------
    >>> import zarrflow as zf
    >>> g = zf.open_group("memory://doc-open-consolidated", mode="w")
    >>> _ = g.create_array("x", shape=(2,), dtype="i1")
    >>> _ = zf.consolidate_metadata("memory://doc-open-consolidated")
    >>> list(zf.open_consolidated("memory://doc-open-consolidated"))
    ['x']
    """
    if mode not in ("r", "r+", "a"):
        raise ZarrflowError(
            f"open_consolidated opens an existing group: mode 'r', 'r+' or 'a', not {mode!r}"
        )
    st = resolve_store(store, mode, storage_options)
    p = normalize_path(path)
    found = probe_node_metadata(st, p, zarr_format, consolidated=True)
    if found is None:
        raise GroupNotFoundError(f"no group at {where(st, p)!r}")
    meta, members = found
    if meta.node_type != "group":
        raise ContainsArrayError(f"{where(st, p)!r} is an array, not a group")
    if members is None:
        raise MetadataError(
            f"group {where(st, p)!r} has no consolidated metadata; write it with "
            "zarrflow.consolidate_metadata, or open it with open_group"
        )
    return open_hierarchy_node(st, p, metadata=meta, consolidated=members)


def open(
    store: StoreLike,
    mode: Mode = "a",
    *,
    path: str | None = None,
    zarr_format: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Array | Group:
    """Open an array or group; with mode ``"a"``/``"w"`` create it when missing.

    A missing node is created as an array when ``shape`` or ``data`` is given, else as a
    group. Modes: ``r`` read-only, ``r+`` read/write (must exist), ``a``
    read/write (create if missing), ``w`` create (replace), ``w-``/``x`` create
    (fail if it exists). ``chunk_cache=`` (bytes or a :class:`~zarrflow.ChunkCache`)
    reads the array, or every array opened through the group, through a
    cache of decoded chunks (see :func:`create`).

    Examples
    --------
    >>> import zarrflow as zf
    >>> _ = zf.create("memory://doc-open", shape=(4,), dtype="u1")
    >>> zf.open("memory://doc-open", mode="r").shape
    (4,)
    """
    chunk_cache = kwargs.pop("chunk_cache", None)
    st = resolve_store(store, mode, storage_options)
    p = normalize_path(path)
    node = open_existing(st, p, zarr_format, kwargs) if mode in ("r", "r+", "a") else None
    if node is not None:
        return with_cache(node, chunk_cache)
    if mode in ("r", "r+"):
        raise NodeNotFoundError(f"no array or group at {where(st, p)!r} (mode {mode!r})")
    fmt = zarr_format if zarr_format is not None else 3
    if "shape" in kwargs or "data" in kwargs:
        node = create_array(st, p, zarr_format=fmt, overwrite=mode == "w", **kwargs)
    else:
        node = create_group(st, p, zarr_format=fmt, overwrite=mode == "w", **kwargs)
    return with_cache(node, chunk_cache)


def open_array(
    store: StoreLike,
    mode: Mode = "r+",
    *,
    path: str | None = None,
    zarr_format: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Array:
    """Open an array (creating it for modes ``a``, ``w``, ``w-`` when ``shape`` is given).

    Examples
    --------
    >>> import zarrflow as zf
    >>> _ = zf.create("memory://doc-open-array", shape=(3, 3), dtype="f8")
    >>> zf.open_array("memory://doc-open-array", mode="r").dtype
    dtype('float64')
    """
    chunk_cache = kwargs.pop("chunk_cache", None)
    st = resolve_store(store, mode, storage_options)
    p = normalize_path(path)
    if mode in ("w-", "x"):  # only whether a node exists matters: no metadata is loaded
        kind = node_exists(st, p)
        if kind == "group":
            raise ContainsGroupError(f"{where(st, p)!r} is a group, not an array")
        if kind == "array":
            raise ContainsArrayError(f"an array exists at {where(st, p)!r} (mode {mode!r})")
    elif mode != "w":
        node = open_existing(st, p, zarr_format, kwargs, arrays_only=True)
        if isinstance(node, Group):
            raise ContainsGroupError(f"{where(st, p)!r} is a group, not an array")
        if node is not None:
            return with_cache(node, chunk_cache)
    if mode in ("r", "r+") or ("shape" not in kwargs and "data" not in kwargs):
        hint = "" if mode in ("r", "r+") else "; pass shape= (and dtype=, chunks=) to create it"
        raise ArrayNotFoundError(f"no array at {where(st, p)!r} (mode {mode!r}){hint}")
    fmt = zarr_format if zarr_format is not None else 3
    node = create_array(st, p, zarr_format=fmt, overwrite=mode == "w", **kwargs)
    return with_cache(node, chunk_cache)


def open_group(
    store: StoreLike,
    mode: Mode = "a",
    *,
    path: str | None = None,
    zarr_format: int | None = None,
    attributes: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    use_consolidated: bool | None = None,
    chunk_cache: ChunkCache | int | None = None,
) -> Group:
    """Open a group, creating it for modes ``a``, ``w``, ``w-`` when missing.

    In mode ``"r"`` consolidated metadata is used where it exists: one request
    opens a whole v3 hierarchy (v2: a ``zarr.json`` probe, then one batch, or
    the batch alone with ``zarr_format=2``); ``use_consolidated=False``
    ignores it. Modes ``r+`` and ``a`` always see the live hierarchy.

    Examples
    --------
    >>> import zarrflow as zf
    >>> g = zf.open_group("memory://doc-open-group", mode="w")
    >>> g.attrs["title"] = "demo"
    >>> zf.open_group("memory://doc-open-group", mode="r").attrs["title"]
    'demo'
    """
    st = resolve_store(store, mode, storage_options)
    p = normalize_path(path)
    if mode in ("w-", "x"):  # only whether a node exists matters: no metadata is loaded
        kind = node_exists(st, p)
        if kind is not None:
            err = ContainsGroupError if kind == "group" else ContainsArrayError
            raise err(f"a {kind} exists at {where(st, p)!r} (mode {mode!r})")
    elif mode != "w":
        node = open_existing(st, p, zarr_format, {"use_consolidated": use_consolidated})
        if isinstance(node, Group):
            return with_cache(node, chunk_cache)
        if node is not None:
            raise ContainsArrayError(f"{where(st, p)!r} is an array, not a group")
        if mode in ("r", "r+"):
            raise GroupNotFoundError(f"no group at {where(st, p)!r} (mode {mode!r})")
    group = create_group(
        st,
        p,
        zarr_format=zarr_format if zarr_format is not None else 3,
        attributes=attributes,
        overwrite=mode == "w",
    )
    return with_cache(group, chunk_cache)


def consolidate_metadata(
    store: StoreLike,
    *,
    path: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Group:
    """Gather the metadata of a whole hierarchy into its root, for one-read opens.

    Writes ``.zmetadata`` for a v2 hierarchy and the ``consolidated_metadata``
    field of the root ``zarr.json`` for v3 (zarr-python's forms).

    Examples
    --------
    >>> import zarrflow as zf
    >>> g = zf.open_group("memory://doc-consolidate", mode="w")
    >>> _ = g.create_array("x", shape=(2,), dtype="i1")
    >>> zf.consolidate_metadata("memory://doc-consolidate").keys()
    ['x']
    """
    st = resolve_store(store, "r+", storage_options)
    p = normalize_path(path)
    group = open_hierarchy_node(st, p)
    if not isinstance(group, Group):
        raise ContainsArrayError(f"{where(st, p)!r} is an array: only groups consolidate")
    write_consolidated(st, p, group.zarr_format)
    return group
