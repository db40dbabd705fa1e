"""The public face: create and open arrays and groups from URLs, paths or stores."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

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
from zarrflow.hierarchy.group import Group, create_array, create_group, probe_node
from zarrflow.hierarchy.group import open_node as _open_node
from zarrflow.hierarchy.nodes import DEFAULT, node_exists, normalize_path
from zarrflow.metadata import write_consolidated
from zarrflow.metadata.consolidated import probe_node_metadata
from zarrflow.storage import MemoryStore, ReadOnlyStore, Store, ZipStore, store_from_url

__all__ = [
    "array",
    "consolidate_metadata",
    "create",
    "empty",
    "full",
    "ones",
    "open",
    "open_array",
    "open_consolidated",
    "open_group",
    "plan_write",
    "to_zarr",
    "zeros",
]

Mode = Literal["r", "r+", "a", "w", "w-", "x"]
#: a URL or path, a Store, an fsspec FSMap, (filesystem, path), or a zarr-python store
StoreLike = str | os.PathLike | Store | Any
_MODES = ("r", "r+", "a", "w", "w-", "x")


def _store(store: StoreLike, mode: str, storage_options: Mapping[str, Any] | None) -> Store:
    if mode not in _MODES:
        raise ZarrflowError(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
    if mode == "w" and isinstance(store, str | os.PathLike) and os.fspath(store).endswith(".zip"):
        # a zip archive cannot replace members in place: mode "w" starts a new one
        return ZipStore(os.fspath(store).removeprefix("zip://"), mode="w")
    st = store_from_url(store, storage_options=storage_options, read_only=mode == "r")
    if mode == "r" and not st.read_only:
        return ReadOnlyStore(st)  # mode "r" holds for store objects too
    return st


def create(
    store: StoreLike,
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
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    path: str | None = None,
    write_empty_chunks: bool = False,
    data: Any = None,
    chunk_cache: ChunkCache | int | None = None,
) -> Array:
    """Create a new Zarr array.

    Parameters
    ----------
    store
        A path, an fsspec URL (``"s3://bucket/a.zarr"``, ``"memory://x"``, a
        ``.zip`` file), a ``pathlib.Path``, an fsspec ``FSMap`` or
        ``(filesystem, path)``, a :class:`~zarrflow.storage.Store`, or a
        zarr-python store (see :func:`~zarrflow.storage.store_from_url`).
    shape, chunks, dtype
        The array's shape, chunk shape and dtype (default float64). ``chunks``:
        ``None`` picks ~4 MiB chunks, ``"auto"`` zarr-python's rule, ``-1`` on
        an axis the whole axis (see :mod:`zarrflow.hierarchy.chunking`). With
        ``shards``, ``chunks`` is the inner chunk, as in zarr-python.
    compressor
        ``"zstd"`` (the default), another numcodecs name, ``(name, {options})``,
        a numcodecs codec, or ``None`` for no compression.
    fill_value
        What unwritten elements read as.
    zarr_format
        3 (default) or 2.
    shards
        v3 only: the shard shape; ``chunks`` is then the inner chunk shape.
    order, filters, dimension_separator
        v2 memory order, numcodecs filters, and chunk-key separator.
    codecs, chunk_key_encoding, dimension_names
        v3: an explicit codec list, the chunk key encoding, axis names.
    attributes
        User attributes.
    storage_options
        Passed to fsspec for remote stores.
    overwrite
        Replace whatever exists at the location.
    path
        Where inside the store the array lives.
    write_empty_chunks
        Store chunks that hold only the fill value (by default they are not).
    data
        Array-like (or dask array) to write into the new array; it gives
        ``shape`` and ``dtype`` when they are not given.
    chunk_cache
        Read through a cache of decoded chunks: a :class:`~zarrflow.ChunkCache`
        (shareable between arrays) or its size in bytes; 0 for none; None for
        ``zarrflow.chunk_cache_bytes`` (off by default). See
        :mod:`zarrflow.chunks.cache` for when entries are revalidated.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-create", shape=(1000, 1000), chunks=(100, 100),
    ...               dtype="int32", compressor="zstd")
    >>> a.nchunks, a.nchunks_initialized
    (100, 0)
    """
    st = _store(store, "w" if overwrite else "a", storage_options)
    array = create_array(
        st,
        normalize_path(path),
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        compressor=compressor,
        fill_value=fill_value,
        zarr_format=zarr_format,
        shards=shards,
        order=order,
        filters=filters,
        codecs=codecs,
        dimension_separator=dimension_separator,
        chunk_key_encoding=chunk_key_encoding,
        dimension_names=dimension_names,
        attributes=attributes,
        overwrite=overwrite,
        write_empty_chunks=write_empty_chunks,
        data=data,
    )
    return _cached(array, chunk_cache)


def _cached(node: Any, chunk_cache: ChunkCache | int | None) -> Any:
    """``node`` reading through ``chunk_cache`` when one is given (else as opened)."""
    if chunk_cache is not None:
        node.use_chunk_cache(chunk_cache)
    return node


def _new_store(store: StoreLike | None) -> StoreLike:
    """``store``, or a new in-memory store when None (zarr-python's default)."""
    return MemoryStore() if store is None else store


def empty(shape: Sequence[int] | int, *, store: StoreLike | None = None, **kwargs: Any) -> Array:
    """A new array whose elements read as the fill value (zarr-python's ``empty``).

    Parameters
    ----------
    shape
        The array's shape.
    store
        Where to create it (default: a new in-memory store).
    **kwargs
        As :func:`create`.

    Examples
    --------
    >>> import zarrflow as zf
    >>> zf.empty((2, 3), dtype="i2").shape
    (2, 3)
    """
    return create(_new_store(store), shape=shape, **kwargs)


def zeros(shape: Sequence[int] | int, *, store: StoreLike | None = None, **kwargs: Any) -> Array:
    """A new array of zeros (fill value 0: no chunk is written).

    Parameters
    ----------
    shape
        The array's shape.
    store
        Where to create it (default: a new in-memory store).
    **kwargs
        As :func:`create`.

    Examples
    --------
    >>> import zarrflow as zf
    >>> zf.zeros((2, 2), chunks=1)[:].tolist()
    [[0.0, 0.0], [0.0, 0.0]]
    """
    return full(shape, 0, store=store, **kwargs)


def ones(shape: Sequence[int] | int, *, store: StoreLike | None = None, **kwargs: Any) -> Array:
    """A new array of ones (fill value 1: no chunk is written).

    Parameters
    ----------
    shape
        The array's shape.
    store
        Where to create it (default: a new in-memory store).
    **kwargs
        As :func:`create`.

    Examples
    --------
    >>> import zarrflow as zf
    >>> int(zf.ones(5, dtype="u1")[:].sum())
    5
    """
    return full(shape, 1, store=store, **kwargs)


def full(
    shape: Sequence[int] | int,
    fill_value: Any,
    *,
    store: StoreLike | None = None,
    **kwargs: Any,
) -> Array:
    """A new array of ``fill_value`` (the array's fill value: no chunk is written).

    Parameters
    ----------
    shape
        The array's shape.
    fill_value
        What every element reads as.
    store
        Where to create it (default: a new in-memory store).
    **kwargs
        As :func:`create`.

    Examples
    --------
    >>> import zarrflow as zf
    >>> zf.full(3, 7, dtype="i4")[:].tolist()
    [7, 7, 7]
    """
    return create(_new_store(store), shape=shape, fill_value=fill_value, **kwargs)


def array(data: Any, *, store: StoreLike | None = None, **kwargs: Any) -> Array:
    """A new array holding ``data`` (zarr-python's ``array``); shape and dtype from it.

    Parameters
    ----------
    data
        Array-like, or a dask array (written task by task).
    store
        Where to create it (default: a new in-memory store).
    **kwargs
        As :func:`create`.

    Examples
    --------
    >>> import numpy as np, zarrflow as zf
    >>> a = zf.array(np.arange(6).reshape(2, 3), chunks=(1, -1))
    >>> a.chunks, a[1].tolist()
    ((1, 3), [3, 4, 5])
    """
    return create(_new_store(store), data=data, **kwargs)


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
    st = _store(store, mode, storage_options)
    p = normalize_path(path)
    found = probe_node_metadata(st, p, zarr_format, consolidated=True)
    if found is None:
        raise GroupNotFoundError(f"no group at {_where(st, p)!r}")
    meta, members = found
    if meta.node_type != "group":
        raise ContainsArrayError(f"{_where(st, p)!r} is an array, not a group")
    if members is None:
        raise MetadataError(
            f"group {_where(st, p)!r} has no consolidated metadata; write it with "
            "zarrflow.consolidate_metadata, or open it with open_group"
        )
    return _open_node(st, p, metadata=meta, consolidated=members)


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
    st = _store(store, mode, storage_options)
    p = normalize_path(path)
    node = _open_existing(st, p, zarr_format, kwargs) if mode in ("r", "r+", "a") else None
    if node is not None:
        return _cached(node, chunk_cache)
    if mode in ("r", "r+"):
        raise NodeNotFoundError(f"no array or group at {_where(st, p)!r} (mode {mode!r})")
    fmt = zarr_format if zarr_format is not None else 3
    if "shape" in kwargs or "data" in kwargs:
        node = create_array(st, p, zarr_format=fmt, overwrite=mode == "w", **kwargs)
    else:
        node = create_group(st, p, zarr_format=fmt, overwrite=mode == "w", **kwargs)
    return _cached(node, chunk_cache)


def _open_existing(
    st: Store,
    path: str,
    zarr_format: int | None,
    kwargs: Mapping[str, Any],
    *,
    arrays_only: bool = False,
) -> Array | Group | None:
    """The node at ``path`` from one probe (:func:`probe_node`), or None.

    Consolidated metadata is used in mode ``r`` only (``r+`` and ``a`` see the
    live hierarchy), and not even read when only an array will do.
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


def _where(st: Store, path: str) -> str:
    return f"{st.url.rstrip('/')}/{path}" if path else st.url


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
    st = _store(store, mode, storage_options)
    p = normalize_path(path)
    if mode in ("w-", "x"):  # only whether a node exists matters: no metadata is loaded
        kind = node_exists(st, p)
        if kind == "group":
            raise ContainsGroupError(f"{_where(st, p)!r} is a group, not an array")
        if kind == "array":
            raise ContainsArrayError(f"an array exists at {_where(st, p)!r} (mode {mode!r})")
    elif mode != "w":
        node = _open_existing(st, p, zarr_format, kwargs, arrays_only=True)
        if isinstance(node, Group):
            raise ContainsGroupError(f"{_where(st, p)!r} is a group, not an array")
        if node is not None:
            return _cached(node, chunk_cache)
    if mode in ("r", "r+") or ("shape" not in kwargs and "data" not in kwargs):
        hint = "" if mode in ("r", "r+") else "; pass shape= (and dtype=, chunks=) to create it"
        raise ArrayNotFoundError(f"no array at {_where(st, p)!r} (mode {mode!r}){hint}")
    fmt = zarr_format if zarr_format is not None else 3
    node = create_array(st, p, zarr_format=fmt, overwrite=mode == "w", **kwargs)
    return _cached(node, chunk_cache)


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
    st = _store(store, mode, storage_options)
    p = normalize_path(path)
    if mode in ("w-", "x"):  # only whether a node exists matters: no metadata is loaded
        kind = node_exists(st, p)
        if kind is not None:
            err = ContainsGroupError if kind == "group" else ContainsArrayError
            raise err(f"a {kind} exists at {_where(st, p)!r} (mode {mode!r})")
    elif mode != "w":
        node = _open_existing(st, p, zarr_format, {"use_consolidated": use_consolidated})
        if isinstance(node, Group):
            return _cached(node, chunk_cache)
        if node is not None:
            raise ContainsArrayError(f"{_where(st, p)!r} is an array, not a group")
        if mode in ("r", "r+"):
            raise GroupNotFoundError(f"no group at {_where(st, p)!r} (mode {mode!r})")
    group = create_group(
        st,
        p,
        zarr_format=zarr_format if zarr_format is not None else 3,
        attributes=attributes,
        overwrite=mode == "w",
    )
    return _cached(group, chunk_cache)


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
    st = _store(store, "r+", storage_options)
    p = normalize_path(path)
    group = _open_node(st, p)
    if not isinstance(group, Group):
        raise ContainsArrayError(f"{_where(st, p)!r} is an array: only groups consolidate")
    write_consolidated(st, p, group.zarr_format)
    return group


_WRITE_MODES = ("w-", "x", "w", "a", "r+")


def _to_zarr_mode(mode: str | None, overwrite: bool, region: Sequence[slice] | None) -> str:
    """The effective ``to_zarr`` mode from ``mode``, the ``overwrite`` alias and ``region``.

    Examples
    --------
    >>> _to_zarr_mode(None, False, None), _to_zarr_mode(None, True, None)
    ('w-', 'w')
    >>> _to_zarr_mode(None, False, (slice(0, 2),))
    'r+'
    """
    if overwrite and mode not in (None, "w"):
        raise ZarrflowError(f"overwrite=True means mode 'w'; it contradicts mode={mode!r}")
    if mode is None:
        mode = "w" if overwrite else ("r+" if region is not None else "w-")
    if mode not in _WRITE_MODES:
        raise ZarrflowError(f"to_zarr mode must be one of {', '.join(_WRITE_MODES)}, not {mode!r}")
    if region is not None and mode not in ("a", "r+"):
        raise ZarrflowError(
            f"region= writes into an existing array: use mode 'r+' or 'a', not {mode!r}"
        )
    return mode


def _to_zarr_target(
    x: Any,
    st: Store,
    p: str,
    mode: str,
    region: Sequence[slice] | None,
    chunks: Sequence[int] | int | None,
    create_kwargs: Mapping[str, Any],
) -> Array:
    """The array ``to_zarr`` writes into: opened or created as ``mode`` says."""
    from zarrflow.parallel.dask_write import chunks_from_dask

    kind = None if mode == "w" else node_exists(st, p)
    if kind == "group":
        raise ContainsGroupError(f"a group exists at {_where(st, p)!r} (to_zarr mode {mode!r})")
    if kind == "array" and mode in ("w-", "x"):
        raise ContainsArrayError(
            f"an array exists at {_where(st, p)!r}; to_zarr mode {mode!r} refuses to replace it "
            "(mode='w' replaces, mode='a' or 'r+' writes into it)"
        )
    if kind == "array":
        return _open_existing(st, p, None, {}, arrays_only=True)
    if mode == "r+" or region is not None:
        raise ArrayNotFoundError(
            f"no array at {_where(st, p)!r}: to_zarr mode {mode!r}"
            + (" with region=" if region is not None else "")
            + " writes into an existing array"
        )
    return create_array(
        st,
        p,
        shape=x.shape,
        dtype=x.dtype,
        chunks=chunks if chunks is not None else chunks_from_dask(x),
        overwrite=mode == "w",
        **create_kwargs,
    )


def to_zarr(
    x: Any,
    store: StoreLike | Array,
    *,
    region: Sequence[slice] | None = None,
    path: str | None = None,
    chunks: Sequence[int] | int | None = None,
    mode: str | None = None,
    overwrite: bool = False,
    strategy: str = "auto",
    compute: bool = True,
    scheduler: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    progress_callback: Any = None,
    **create_kwargs: Any,
) -> Array | Any:
    """Write a dask (or numpy) array to Zarr, one ``zarrflow-write`` task per block.

    The target is an existing :class:`Array` (written into), or a URL/store
    handled as ``mode`` says, as in dask's and xarray's ``to_zarr``:

    - ``"w-"`` (the default; ``"x"`` is the same): create the array from
      ``x``'s shape and dtype (``chunks`` defaults to ``x``'s block shape,
      other keywords as :func:`create`); an existing array or group there is
      refused with :class:`ContainsArrayError` / :class:`ContainsGroupError`
      and left untouched;
    - ``"w"`` (or ``overwrite=True``): create, replacing what is there;
    - ``"a"``: write into the existing array, or create it when missing;
    - ``"r+"``: write into the existing array (the default when ``region`` is given).

    ``region`` (a tuple of slices) writes ``x`` into that part of an existing
    array (modes ``"a"`` and ``"r+"``). ``progress_callback(done, total)``
    reports finished write tasks. Unaligned blocks never corrupt data: see
    :func:`zarrflow.parallel.dask_write.plan_write` for the ``strategy``
    choices (``"auto"`` rechunks so every chunk has one writer).

    Parameters
    ----------
    x
        A dask array, or anything ``numpy.asarray`` accepts.
    store
        An :class:`Array`, a path, an fsspec URL or a :class:`~zarrflow.storage.Store`.
    region
        Slices of the target that ``x`` fills.
    path
        The array's path inside ``store``.
    chunks
        The chunk shape of a created array.
    mode
        ``"w-"``, ``"w"``, ``"a"`` or ``"r+"``, as above.
    overwrite
        The same as ``mode="w"``.
    strategy, compute, scheduler, storage_options, progress_callback
        The write plan, lazy writing, where tasks run, fsspec options, progress.
    **create_kwargs
        Passed to :func:`create` when the array is created.

    Returns
    -------
    Array or dask.delayed.Delayed
        The target :class:`Array`, or with ``compute=False`` a ``dask.delayed``
        that writes when computed.

    Examples
    --------
    >>> import dask.array as da, zarrflow as zf
    >>> x = da.arange(100, chunks=25)
    >>> a = zf.to_zarr(x, "memory://doc-to-zarr", chunks=(10,), mode="w")
    >>> int(a[:].sum())
    4950
    >>> zf.to_zarr(x, "memory://doc-to-zarr")
    Traceback (most recent call last):
    ...
    zarrflow.errors.ContainsArrayError: an array exists at 'memory://doc-to-zarr'; ...
    >>> _ = zf.to_zarr(x[:10] * 0, "memory://doc-to-zarr", region=(slice(0, 10),))
    >>> int(a[:].sum())
    4905
    """
    import dask.array as da

    from zarrflow.parallel.dask_write import store_dask

    mode = _to_zarr_mode(mode, overwrite, region)
    if not isinstance(x, da.Array):
        x = da.from_array(x, chunks=chunks if chunks is not None else "auto")
    if isinstance(store, Array):
        target = store
    else:
        st = _store(store, "w" if mode == "w" else "a", storage_options)
        target = _to_zarr_target(x, st, normalize_path(path), mode, region, chunks, create_kwargs)
    result = store_dask(
        x,
        target.engine,
        region,
        strategy=strategy,
        compute=compute,
        scheduler=scheduler,
        progress_callback=progress_callback,
    )
    return target if compute else result


def plan_write(
    x_chunks: Sequence[Sequence[int]],
    array: Array,
    region: Sequence[slice],
    strategy: str = "auto",
    scheduler: Any = None,
):
    """How :func:`to_zarr` would write blocks of sizes ``x_chunks`` into ``region`` of ``array``.

    Returns the :class:`~zarrflow.parallel.dask_write.WritePlan` (``strategy``,
    ``shared_chunks``, ``chunks``, ``reason``).

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-plan-api", shape=(100,), chunks=(10,), dtype="i4")
    >>> zf.plan_write(((25, 25, 50),), a, (slice(0, 100),)).strategy
    'rechunk'
    """
    from zarrflow.parallel.dask_write import plan_write as plan_engine_write

    return plan_engine_write(x_chunks, array.engine, region, strategy, scheduler)
