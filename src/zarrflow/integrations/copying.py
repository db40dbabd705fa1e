"""Copying arrays and groups between stores, converting format, chunks, shards or codec.

A copy reads the source through :meth:`Array.to_dask` and writes it with
:func:`zarrflow.to_zarr`, so every chunk moves in its own Dask task, on the
local threads or on a cluster. What is not asked to change is kept: the
compressor and filters (carried across v2 ↔ v3), the fill value, attributes
and dimension names; an unchanged v3 → v3 copy keeps its exact codec list;
a group whose metadata was consolidated is consolidated in the copy.

Across formats, what xarray reads is kept too (see :mod:`.xarray_conventions`):
v3 ``dimension_names`` become v2's ``_ARRAY_DIMENSIONS`` attribute and back,
and the missing-value marker moves between v2's ``fill_value`` and v3's
``_FillValue`` attribute, so a dataset opens identical after the copy.

The copy cannot destroy data (see :mod:`.copy_target`): a destination that
is the source, inside it or around it is refused before anything is read; a
local destination is written under a temporary name and renamed when
complete; elsewhere a failed copy deletes what it wrote. Arrays too large to
copy through one Dask graph are refused with one clear line, up front.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import dask

from zarrflow.api import StoreLike, consolidate_metadata, create, open, open_group, to_zarr
from zarrflow.codecs.pipeline import parse_codecs_v3
from zarrflow.errors import MetadataError, ZarrflowError
from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.group import Group
from zarrflow.hierarchy.unreadable import UnreadableMember
from zarrflow.integrations.copy_target import CopyError, Destination, refuse_overlap
from zarrflow.integrations.limits import check_chunk_memory, human_bytes
from zarrflow.integrations.xarray_conventions import converted_conventions
from zarrflow.metadata import read_consolidated

__all__ = ["MAX_COPY_TASKS", "CopyError", "check_copy_size", "copy_node"]

#: The most read tasks one array's copy may put in a Dask graph (a graph this
#: large already costs minutes of scheduling); bigger copies are refused up front.
MAX_COPY_TASKS = 4 * 2**20

ProgressFor = Callable[[str, Array], Callable[[int, int], None] | None]


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
    attributes, fill_value, dimension_names = converted_conventions(
        dict(src.attrs), src.fill_value, src.dimension_names, src.dtype, src.zarr_format, fmt
    )
    settings: dict[str, Any] = {
        "shape": src.shape,
        "dtype": src.dtype,
        "fill_value": fill_value,
        "zarr_format": fmt,
        "chunks": changes.get("chunks") or src.chunks,
        "attributes": attributes,
        **_codec_settings(src, fmt, changes.get("compressor")),
    }
    if dimension_names is not None:
        settings["dimension_names"] = dimension_names
    if shards is not None:
        settings["shards"] = tuple(shards)
    return settings


def check_copy_size(src: Array, chunks: Sequence[int] | None = None) -> None:
    """Refuse, before anything is read or written, a copy too large to run.

    A copy holds one source chunk (or shard) and one destination block in
    memory per task, and puts about one read task per ``task_target_bytes``
    (or per chunk) in a Dask graph: a chunk larger than half the memory, or
    more than :data:`MAX_COPY_TASKS` tasks, is refused with one clear message.

    Parameters
    ----------
    src
        The array to copy.
    chunks
        The destination's chunk (or shard) shape, if it changes.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-copy-size", shape=(10**15,), chunks=(10**6,), dtype="u1")
    >>> check_copy_size(a)
    Traceback (most recent call last):
    ...
    zarrflow.errors.ZarrflowError: array 'memory://doc-copy-size' has 1,000,000,000 chunks ...
    """
    stored = src.shards or src.chunks  # the copy reads whole shards (to_dask's blocks)
    check_chunk_memory(src, stored, "read")
    if chunks is not None:
        check_chunk_memory(src, chunks, "written")
    chunk_bytes = max(1, math.prod(stored) * src.dtype.itemsize)
    per_task = max(1, int(dask.config.get("zarrflow.task_target_bytes")) // chunk_bytes)
    tasks = -(-src.nshards // per_task)
    if tasks > MAX_COPY_TASKS:
        raise ZarrflowError(
            f"array {src.name!r} has {src.nshards:,} {'shards' if src.shards else 'chunks'} "
            f"({human_bytes(src.nbytes)} uncompressed): "
            f"its copy would need about {tasks:,} Dask tasks, more than {MAX_COPY_TASKS:,}; "
            "copy it in parts with zarrflow.to_zarr(..., region=...)"
        )


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
    progress = progress_for(path or "", target) if progress_for is not None else None
    to_zarr(src.to_dask(), target, scheduler=scheduler, progress_callback=progress)
    return target


def _refuse_unreadable(node: Array | Group) -> None:
    """Raise :class:`CopyError` naming every member below ``node`` that cannot be read.

    A group whose members zarrflow cannot all open (an unknown codec, data
    type or extension) is refused before anything is written: a copy without
    them would look complete and not be.
    """
    bad = node.unreadable() if isinstance(node, Group) else []
    if bad:
        listed = "; ".join(f"{m.path!r} ({m.describe()})" for m in bad)
        raise CopyError(
            f"cannot copy group {node.name!r}: {len(bad)} member(s) cannot be read: {listed}; "
            "nothing was written"
        )


def _arrays(node: Array | Group) -> list[Array]:
    """``node`` itself, or every array below the group ``node``."""
    if isinstance(node, Array):
        return [node]
    return [a for _, member in node.members() for a in _arrays(member)]


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
        ``progress_for(path, target)`` returns the ``progress_callback(done, total)``
        for the array at ``path`` ("" for a lone array), written to the
        :class:`Array` ``target``, or None. ``done`` and ``total`` count write tasks.
    storage_options, dst_storage_options
        fsspec options for the source and the destination.

    Returns
    -------
    Array or Group
        The copy.

    Raises
    ------
    CopyError
        When ``dst`` is ``src``, inside it or around it (nothing is read or
        written), when a member of the group cannot be read (each is named;
        nothing is written), or when the copy failed (the message says what was left:
        nothing at a local ``dst``, and elsewhere what was written is deleted).
    ZarrflowError
        When sharding is asked for and this zarrflow cannot write it, or an
        array is too large to copy (:func:`check_copy_size`), before anything
        is written; and the usual errors of ``open`` and ``create``.

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
    refuse_overlap(src, dst)
    changes = {"zarr_format": zarr_format, "chunks": chunks, "shards": shards}
    changes["compressor"] = compressor
    if shards is not None:
        check_sharding(shards, chunks)
    node = open(src, mode="r", storage_options=storage_options)
    _refuse_unreadable(node)
    for array in _arrays(node):
        check_copy_size(array, tuple(shards or chunks) if (shards or chunks) else None)
    destination = Destination(dst, overwrite, dst_storage_options)
    destination.check()
    with destination.writing() as target:
        out = _copy(node, target, overwrite, scheduler, progress_for, changes, dst_storage_options)
        out.store.close()  # finalises a zip archive before it is renamed
    if not destination.local:
        return out
    return open(destination.final, mode="r" if destination.is_zip else "r+")


def _copy(
    node: Array | Group,
    target: StoreLike,
    overwrite: bool,
    scheduler: Any,
    progress_for: ProgressFor | None,
    changes: dict[str, Any],
    storage_options: dict[str, Any] | None,
) -> Array | Group:
    """Copy ``node`` to ``target``; consolidate the copy when the source was consolidated."""
    if isinstance(node, Array):
        return _copy_array(
            node, target, None, overwrite, scheduler, progress_for, changes, storage_options
        )
    fmt = changes["zarr_format"] or node.zarr_format
    root = open_group(
        target,
        mode="w" if overwrite else "w-",
        zarr_format=fmt,
        attributes=dict(node.attrs),
        storage_options=storage_options,
    )
    _copy_members(node, root, scheduler, progress_for, changes)
    if read_consolidated(node.store, node.path) is not None:
        consolidate_metadata(root.store, path=root.path or None)
    return root


def _copy_members(
    src: Group,
    dst_group: Group,
    scheduler: Any,
    progress_for: ProgressFor | None,
    changes: dict[str, Any],
) -> None:
    for name, member in src.members():
        if isinstance(member, UnreadableMember):  # it became unreadable after the check
            member.reraise()
        if isinstance(member, Group):
            child = dst_group.create_group(name, attributes=dict(member.attrs))
            _copy_members(member, child, scheduler, progress_for, changes)
        else:
            path = f"{dst_group.path}/{name}".strip("/")
            _copy_array(member, dst_group.store, path, False, scheduler, progress_for, changes)
