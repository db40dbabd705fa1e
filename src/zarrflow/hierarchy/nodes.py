"""Creating and finding nodes (arrays and groups) at a path in a store: their metadata.

This module writes and reads metadata only; it constructs no Array or Group
(:mod:`zarrflow.hierarchy.group` builds nodes from what it returns).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zarrflow.chunks import open_engine
from zarrflow.codecs import (
    build_codecs_v3,
    normalize_compressor_v2,
    normalize_filters_v2,
)
from zarrflow.errors import (
    ContainsArrayError,
    ContainsGroupError,
    MetadataError,
    NodeNotFoundError,
    ReadOnlyError,
    ValueShapeError,
)
from zarrflow.metadata import (
    ArrayMetadataV2,
    ArrayMetadataV3,
    GroupMetadata,
    load_node,
    parse_dtype,
)
from zarrflow.metadata.consolidated import probe_node_metadata
from zarrflow.storage import Store, validate_key

__all__ = [
    "DEFAULT",
    "auto_chunks",
    "create_array_metadata",
    "create_group_metadata",
    "load_node_metadata",
    "node_exists",
    "normalize_path",
    "probe_node_metadata",
]

#: the default compressor (zstd) — distinct from ``None``, which means "no compression"
DEFAULT: Any = "default"

_METADATA_KEYS = ("zarr.json", ".zarray", ".zgroup")


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def normalize_path(path: str | None) -> str:
    """A node path with no leading or trailing slash, checked not to escape the store."""
    path = (path or "").strip("/")
    return validate_key(path) if path else ""


def node_exists(store: Store, path: str) -> str | None:
    """``"array"``, ``"group"`` or None: what lives at ``path`` (one batched read)."""
    values = store.get_many([_join(path, k) for k in _METADATA_KEYS])
    v3, v2a, v2g = values
    if v3 is not None:
        try:
            node_type = json.loads(v3).get("node_type")
        except (ValueError, AttributeError, RecursionError):
            raise MetadataError(
                f"{_join(path, 'zarr.json')!r} in {store.url!r} is not JSON"
            ) from None
        return "group" if node_type == "group" else "array"
    if v2a is not None:
        return "array"
    if v2g is not None:
        return "group"
    return None


def _prepare_target(store: Store, path: str, overwrite: bool, zarr_format: int) -> None:
    if store.read_only:
        raise ReadOnlyError(f"store {store.url!r} is read-only: cannot create {path!r}")
    kind = node_exists(store, path)
    if kind is not None:
        if not overwrite:
            err = ContainsArrayError if kind == "array" else ContainsGroupError
            where = f"{store.url.rstrip('/')}/{path}" if path else store.url
            raise err(f"{kind} exists at {where!r}; pass overwrite=True (or mode='w') to replace")
        store.delete_prefix(f"{path}/" if path else "")
    _ensure_parents(store, path, zarr_format)


def _ensure_parents(store: Store, path: str, zarr_format: int) -> None:
    parts = path.split("/")[:-1] if path else []
    for i in range(len(parts)):
        parent = "/".join(parts[: i + 1])
        if node_exists(store, parent) is None:
            docs = GroupMetadata(zarr_format=zarr_format, attributes={}).to_documents()
            store.set_many({_join(parent, k): v for k, v in docs.items()})


def auto_chunks(shape: Sequence[int], dtype: np.dtype, target_bytes: int = 4 << 20):
    """Regular chunks of about ``target_bytes`` (Dask's "auto" rule), at least 1 each.

    Examples
    --------
    >>> auto_chunks((100, 100), np.dtype("f8"))
    (100, 100)
    """
    from dask.array.core import normalize_chunks

    if not shape:
        return ()
    blocks = normalize_chunks("auto", tuple(shape), limit=target_bytes, dtype=dtype)
    return tuple(max(1, b[0]) if b else 1 for b in blocks)


def _v2_attributes(
    attributes: Mapping[str, Any] | None,
    dimension_names: Sequence[str | None] | None,
    ndim: int,
) -> dict[str, Any]:
    """A v2 array's attributes, with ``dimension_names`` in xarray's ``_ARRAY_DIMENSIONS``.

    Zarr v2 has no field for dimension names; xarray (and ``zarrflow copy``)
    keep them in that attribute, so that is where they go rather than being dropped.
    """
    attrs = dict(attributes or {})
    if dimension_names is None:
        return attrs
    names = list(dimension_names)
    if len(names) != ndim or not all(isinstance(n, str) for n in names):
        raise MetadataError(
            f"dimension_names must be {ndim} strings for a Zarr v2 array (stored as the "
            f"'_ARRAY_DIMENSIONS' attribute), not {dimension_names!r}"
        )
    if attrs.setdefault("_ARRAY_DIMENSIONS", names) != names:
        raise MetadataError(
            f"dimension_names {names!r} disagree with the '_ARRAY_DIMENSIONS' attribute "
            f"{attrs['_ARRAY_DIMENSIONS']!r} given in attributes"
        )
    return attrs


def create_array_metadata(
    store: Store,
    path: str = "",
    *,
    shape: Sequence[int] | int | None = None,
    chunks: Sequence[int] | int | str | None = None,
    dtype: Any = None,
    compressor: Any = DEFAULT,
    fill_value: Any = 0,
    zarr_format: int = 3,
    shards: Sequence[int] | None = None,
    order: str = "C",
    filters: Sequence[Any] | None = None,
    codecs: Sequence[Any] | None = None,
    dimension_separator: str | None = None,
    chunk_key_encoding: Mapping[str, Any] | None = None,
    dimension_names: Sequence[str | None] | None = None,
    attributes: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    data: Any = None,
) -> ArrayMetadataV2 | ArrayMetadataV3:
    """Write a new array's metadata at ``path`` (normalized) and return it.

    The codecs are checked before anything is written. See
    :func:`zarrflow.create` for the parameters. ``data`` (array-like or a dask
    array) gives the shape and dtype when they are not given, and must cast to
    the dtype safely; writing it is the caller's
    (:func:`zarrflow.hierarchy.group.create_array`).

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> create_array_metadata(MemoryStore(), "a", shape=(4,), chunks=(2,), dtype="u1").chunks
    (2,)
    """
    from zarrflow.hierarchy.chunking import normalize_chunks, normalize_shards

    path = normalize_path(path)
    shape, dtype, data = _shape_and_dtype(shape, dtype, data)
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    np_dtype = parse_dtype(dtype, zarr_format=zarr_format)
    if chunks is None:
        chunks = auto_chunks(shape, np_dtype)
    chunks = normalize_chunks(chunks, shape, np_dtype.itemsize, sharded=shards is not None)
    shards = normalize_shards(shards, shape, chunks)
    if compressor is DEFAULT or (isinstance(compressor, str) and compressor == "default"):
        compressor = "zstd"
    if zarr_format == 2:
        if shards is not None:
            raise MetadataError("shards need zarr_format=3: Zarr v2 has no sharding")
        if codecs is not None:
            raise MetadataError("codecs= is a Zarr v3 list; for v2 use compressor= and filters=")
        meta = ArrayMetadataV2.create(
            shape=shape,
            chunks=chunks,
            dtype=np_dtype,
            compressor=normalize_compressor_v2(compressor),
            filters=normalize_filters_v2(filters, dtype=np_dtype),
            fill_value=fill_value,
            order=order,
            dimension_separator=dimension_separator or ".",
            attributes=_v2_attributes(attributes, dimension_names, len(shape)),
        )
    elif zarr_format == 3:
        if dimension_separator is not None and chunk_key_encoding is None:
            chunk_key_encoding = {"name": "default", "separator": dimension_separator}
        v3_codecs = build_codecs_v3(
            compressor=compressor,
            filters=filters,
            codecs=codecs,
            dtype=np_dtype,
            order=order,
            ndim=len(shape),
        )
        if shards is not None:
            from zarrflow.codecs import wrap_in_sharding

            v3_codecs, chunks = wrap_in_sharding(v3_codecs, inner_chunks=chunks, shards=shards)
        meta = ArrayMetadataV3.create(
            shape=shape,
            chunks=chunks,
            dtype=np_dtype,
            codecs=v3_codecs,
            fill_value=fill_value,
            chunk_key_encoding=chunk_key_encoding,
            dimension_names=dimension_names,
            attributes=dict(attributes or {}),
        )
    else:
        raise MetadataError(f"zarr_format must be 2 or 3, not {zarr_format!r}")
    open_engine(store, path, meta)  # an unknown or invalid codec raises before any write
    if data is not None and not np.can_cast(data.dtype, np_dtype, "same_kind"):
        raise ValueShapeError(
            f"cannot write {data.dtype} data into a new {np_dtype} array at {path!r} "
            "without losing information; convert it first (astype)"
        )
    _prepare_target(store, path, overwrite, zarr_format)
    store.set_many({_join(path, k): v for k, v in meta.to_documents().items()})
    return meta


def _shape_and_dtype(shape: Any, dtype: Any, data: Any) -> tuple[Any, Any, Any]:
    """``shape`` and ``dtype`` from ``data`` where not given; ``data`` as an array."""
    if data is None:
        if shape is None:
            raise MetadataError("create needs shape= (or data= to take the shape from)")
        return shape, "float64" if dtype is None else dtype, None
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    if shape is not None:
        given = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
        if given != tuple(data.shape):
            raise MetadataError(f"shape {given} does not match data of shape {data.shape}")
    return tuple(data.shape), data.dtype if dtype is None else dtype, data


def create_group_metadata(
    store: Store,
    path: str = "",
    *,
    zarr_format: int = 3,
    attributes: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> GroupMetadata:
    """Write a new group's metadata at ``path`` (normalized) and return it.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> create_group_metadata(MemoryStore(), "g").zarr_format
    3
    """
    path = normalize_path(path)
    if zarr_format not in (2, 3):
        raise MetadataError(f"zarr_format must be 2 or 3, not {zarr_format!r}")
    meta = GroupMetadata(zarr_format=zarr_format, attributes=dict(attributes or {}))
    _prepare_target(store, path, overwrite, zarr_format)
    store.set_many({_join(path, k): v for k, v in meta.to_documents().items()})
    return meta


def load_node_metadata(store: Store, path: str = "", *, zarr_format: int | None = None) -> Any:
    """The metadata of what lives at ``path``: array or group metadata.

    Raises :class:`~zarrflow.NodeNotFoundError` when nothing does.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = MemoryStore()
    >>> _ = create_group_metadata(store, "g")
    >>> type(load_node_metadata(store, "g")).__name__
    'GroupMetadata'
    """
    meta = load_node(store, normalize_path(path), zarr_format=zarr_format)
    if meta is None:  # pragma: no cover - load_node raises
        raise NodeNotFoundError(f"nothing at {path!r} in {store.url!r}")
    return meta
