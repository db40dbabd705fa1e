"""Copying arrays and groups between stores, converting format, chunks, shards or codec.

A copy reads the source through :meth:`Array.to_dask` and writes it with
:func:`zarrflow.to_zarr`, so every chunk moves in its own Dask task, on the
local threads or on a cluster. What is not asked to change is kept: the
compressor and filters (carried across v2 ↔ v3), the fill value, attributes
and dimension names; an unchanged v3 → v3 copy keeps its exact codec list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from zarrflow.api import StoreLike, create, open, open_group, to_zarr
from zarrflow.codecs.pipeline import parse_codecs_v3
from zarrflow.errors import MetadataError, ZarrflowError
from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.group import Group

__all__ = ["copy_node"]

ProgressFor = Callable[[str], Callable[[int, int], None] | None]


def _inner_codecs_v3(src: Array) -> list[dict[str, Any]]:
    """The source's v3 codec list, looking inside a ``sharding_indexed`` codec."""
    codecs = [dict(c) for c in src.metadata.codecs]
    if len(codecs) == 1 and codecs[0]["name"] == "sharding_indexed":
        codecs = [dict(c) for c in codecs[0]["configuration"]["codecs"]]
    return codecs


def _codecs_as_v2(codecs: list[dict[str, Any]]) -> tuple[Any, list[Any] | None]:
    """A v3 codec list as (compressor, filters) that ``create`` accepts for either format.

    ``transpose`` and ``crc32c`` have no v2 counterpart and are dropped (the
    values read the same); of several compressors the first is kept.
    """
    kinds = [entry.kind for entry, _ in parse_codecs_v3(codecs)]
    filters = [
        c
        for c, k in zip(codecs, kinds, strict=True)
        if k == "array_to_array" and c["name"] != "transpose"
    ]
    compressors = [
        c
        for c, k in zip(codecs, kinds, strict=True)
        if k == "bytes_to_bytes" and c["name"] != "crc32c"
    ]
    return (compressors[0] if compressors else None), (filters or None)


def _codec_settings(src: Array, fmt: int, compressor: Any) -> dict[str, Any]:
    """Compressor, filters (and for v3 → v3 the codec list) for the copy of ``src``."""
    meta = src.metadata
    if src.zarr_format == 2:
        kept: Any = meta.compressor
        filters = list(meta.filters) if meta.filters else None
        settings: dict[str, Any] = {"order": meta.order}
        if fmt == 2:
            settings["dimension_separator"] = meta.dimension_separator
    elif fmt == 3 and compressor is None:
        return {"codecs": _inner_codecs_v3(src)}
    else:
        kept, filters = _codecs_as_v2(_inner_codecs_v3(src))
        settings = {}
    if compressor is not None:
        kept = None if str(compressor).lower() == "none" else compressor
    settings.update(compressor=kept, filters=filters)
    return settings


def _array_settings(src: Array, **changes: Any) -> dict[str, Any]:
    """The ``create`` keywords for a copy of ``src`` with ``changes`` applied."""
    fmt = changes.get("zarr_format") or src.zarr_format
    shards = changes.get("shards")
    if shards is None and src.shards is not None and not changes.get("chunks") and fmt == 3:
        shards = src.shards  # keep the source's sharding
    if shards is not None and fmt != 3:
        raise MetadataError(
            f"array {src.name!r}: shards need Zarr format 3 (the copy would be format {fmt})"
        )
    settings: dict[str, Any] = {
        "shape": src.shape,
        "dtype": src.dtype,
        "fill_value": src.fill_value if src.fill_value is not None or fmt == 2 else 0,
        "zarr_format": fmt,
        "chunks": changes.get("chunks") or src.chunks,
        "attributes": dict(src.attrs),
        **_codec_settings(src, fmt, changes.get("compressor")),
    }
    if src.dimension_names is not None:
        settings["dimension_names"] = src.dimension_names
    if shards is not None:
        settings["shards"] = tuple(shards)
    return settings


def check_sharding(shards: Sequence[int], chunks: Sequence[int] | None = None) -> None:
    """Raise a clear :class:`ZarrflowError` when this zarrflow cannot write ``shards``.

    The check writes and reads one tiny sharded array in a private memory
    store, so it tests what will actually run, not a version number.

    Examples
    --------
    >>> check_sharding((4, 4), (2, 2))  # doctest: +SKIP
    """
    from zarrflow.storage.memory import MemoryStore

    shards = tuple(int(s) for s in shards)
    probe_chunks = tuple(chunks) if chunks else shards
    try:
        a = create(
            MemoryStore(),  # anonymous: freed with the probe
            shape=shards,
            chunks=probe_chunks,
            shards=shards,
            dtype="uint8",
        )
        a[(slice(0, 1),) * len(shards)] = 1
        a[(slice(0, 1),) * len(shards)]
    except (ImportError, NotImplementedError, AttributeError) as e:
        raise ZarrflowError(
            f"cannot write shards {list(shards)}: sharding is not available in this zarrflow "
            f"({type(e).__name__}: {e})"
        ) from e


def _copy_array(
    src: Array,
    dst: StoreLike,
    path: str | None,
    overwrite: bool,
    scheduler: Any,
    progress_for: ProgressFor | None,
    changes: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
) -> Array:
    settings = _array_settings(src, **changes)
    target = create(
        dst, path=path, overwrite=overwrite, storage_options=storage_options, **settings
    )
    progress = progress_for(path or "") if progress_for is not None else None
    to_zarr(src.to_dask(), target, scheduler=scheduler, progress_callback=progress)
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
    progress_for: ProgressFor | None = None,
    storage_options: dict[str, Any] | None = None,
    dst_storage_options: dict[str, Any] | None = None,
) -> Array | Group:
    """Copy an array, or a group with everything below it, to ``dst``.

    Parameters
    ----------
    src, dst
        Paths, fsspec URLs (``memory://``, ``s3://``, a ``.zip`` file) or stores.
    zarr_format
        2 or 3 to convert; None keeps each node's format.
    chunks, shards
        New chunk shape, and (v3) shard shape; None keeps the source's.
    compressor
        A new compressor (a name such as ``"blosc"``, ``(name, {options})``,
        a numcodecs codec, or ``"none"``); None keeps the source's.
    overwrite
        Replace whatever is at ``dst``; otherwise an existing node there is an error.
    scheduler
        Where the chunk tasks run (as for :func:`zarrflow.to_zarr`).
    progress_for
        ``progress_for(path)`` returns the ``progress_callback(done, total)``
        for the array at ``path`` ("" for a lone array), or None.
    storage_options, dst_storage_options
        fsspec options for the source and the destination.

    Returns
    -------
    Array or Group
        The copy.

    Raises
    ------
    ZarrflowError
        When sharding is asked for and this zarrflow cannot write it, before
        anything is written; and the usual errors of ``open`` and ``create``.

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
    changes = {"zarr_format": zarr_format, "chunks": chunks, "shards": shards}
    changes["compressor"] = compressor
    if shards is not None:
        check_sharding(shards, chunks)
    node = open(src, mode="r", storage_options=storage_options)
    if isinstance(node, Array):
        return _copy_array(
            node, dst, None, overwrite, scheduler, progress_for, changes, dst_storage_options
        )
    root = open_group(
        dst,
        mode="w" if overwrite else "w-",
        zarr_format=zarr_format or node.zarr_format,
        attributes=dict(node.attrs),
        storage_options=dst_storage_options,
    )
    _copy_members(node, root, scheduler, progress_for, changes)
    return root


def _copy_members(
    src: Group,
    dst_group: Group,
    scheduler: Any,
    progress_for: ProgressFor | None,
    changes: dict[str, Any],
) -> None:
    for name, member in src.members():
        if isinstance(member, Group):
            child = dst_group.create_group(name, attributes=dict(member.attrs))
            _copy_members(member, child, scheduler, progress_for, changes)
        else:
            path = f"{dst_group.path}/{name}".strip("/")
            _copy_array(member, dst_group.store, path, False, scheduler, progress_for, changes)
