"""Copying arrays and groups between stores, converting format, chunks, shards or codec."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from zarrflow.api import StoreLike, create, open, open_group, to_zarr
from zarrflow.array import Array
from zarrflow.group import Group

__all__ = ["copy_node"]


def _array_settings(src: Array, **changes: Any) -> dict[str, Any]:
    fmt = changes.get("zarr_format") or src.zarr_format
    inner = getattr(src.metadata, "inner_chunks", None)
    settings: dict[str, Any] = {
        "shape": src.shape,
        "dtype": src.dtype,
        "fill_value": src.fill_value,
        "zarr_format": fmt,
        "chunks": changes.get("chunks") or inner or src.chunks,
        "attributes": dict(src.attrs),
    }
    if fmt == 3 and src.dimension_names is not None:
        settings["dimension_names"] = src.dimension_names
    shards = changes.get("shards")
    if shards is None and inner is not None and not changes.get("chunks") and fmt == 3:
        shards = src.chunks
    if shards is not None:
        settings["shards"] = shards
    compressor = changes.get("compressor")
    if compressor is not None:
        settings["compressor"] = None if str(compressor).lower() == "none" else compressor
    elif src.zarr_format == 2 and fmt == 2:
        settings["compressor"] = src.metadata.compressor
        settings["filters"] = src.metadata.filters
    return settings


def _copy_array(
    src: Array,
    dst: StoreLike,
    path: str | None,
    overwrite: bool,
    scheduler: Any,
    progress_callback: Callable[[int, int], None] | None,
    changes: dict[str, Any],
) -> Array:
    target = create(dst, path=path, overwrite=overwrite, **_array_settings(src, **changes))
    to_zarr(src.to_dask(), target, scheduler=scheduler, progress_callback=progress_callback)
    return target


def copy_node(
    src: StoreLike,
    dst: StoreLike,
    *,
    zarr_format: int | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    compressor: Any = None,
    overwrite: bool = False,
    scheduler: Any = None,
    progress_callback: Callable[[int, int], None] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Array | Group:
    """Copy an array, or a group with everything below it, to ``dst``.

    Data moves chunk-parallel through Dask (``to_dask`` then ``to_zarr``); on
    the way the copy can change the Zarr format, the chunk shape, the shard
    shape (v3) or the compressor. Attributes, fill values and dimension names
    are kept.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-copy-src", shape=(8,), chunks=(4,), dtype="i4",
    ...               zarr_format=2)
    >>> a[:] = 3
    >>> b = copy_node("memory://doc-copy-src", "memory://doc-copy-dst", zarr_format=3,
    ...               chunks=(2,))
    >>> b.zarr_format, b.chunks, int(b[:].sum())
    (3, (2,), 24)
    """
    changes = {
        "zarr_format": zarr_format,
        "chunks": chunks,
        "shards": shards,
        "compressor": compressor,
    }
    node = open(src, mode="r", storage_options=storage_options)
    if isinstance(node, Array):
        return _copy_array(node, dst, None, overwrite, scheduler, progress_callback, changes)
    root = open_group(
        dst,
        mode="w" if overwrite else "w-",
        zarr_format=zarr_format or node.zarr_format,
        attributes=dict(node.attrs),
    )
    _copy_members(node, root, dst, scheduler, progress_callback, changes)
    return root


def _copy_members(src: Group, dst_group: Group, dst: StoreLike, scheduler, progress, changes):
    for name, member in src.members():
        if isinstance(member, Group):
            child = dst_group.create_group(name, attributes=dict(member.attrs))
            _copy_members(member, child, dst, scheduler, progress, changes)
        else:
            settings = _array_settings(member, **changes)
            target = create(dst_group.store, path=f"{dst_group.path}/{name}".strip("/"), **settings)
            to_zarr(member.to_dask(), target, scheduler=scheduler, progress_callback=progress)
