"""Creating arrays: ``create`` and zarr-python's ``empty``/``zeros``/``ones``/``full``/``array``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from zarrflow.api.stores import StoreLike, resolve_store, with_cache
from zarrflow.chunks import ChunkCache
from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.group import create_array
from zarrflow.hierarchy.nodes import DEFAULT, normalize_path
from zarrflow.storage import MemoryStore

__all__ = ["array", "create", "empty", "full", "ones", "zeros"]

F = TypeVar("F", bound=Callable[..., Array])


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
    st = resolve_store(store, "w" if overwrite else "a", storage_options)
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
    return with_cache(array, chunk_cache)


_FILLED_PARAMETERS = """
    Parameters
    ----------
    shape
        The array's shape.{fill_value}
    store
        Where to create it (default: a new in-memory store).
    **kwargs
        As :func:`create`.
"""


def _filled_parameters(fill_value: str = "") -> Callable[[F], F]:
    """Give a ``full``-like function the Parameters section they all share, before Examples."""

    def document(fn: F) -> F:
        summary, examples = fn.__doc__.split("\n    Examples\n", 1)
        params = _FILLED_PARAMETERS.format(fill_value=fill_value)
        fn.__doc__ = f"{summary.rstrip()}\n{params}\n    Examples\n{examples}"
        return fn

    return document


def _filled(shape: Sequence[int] | int, store: StoreLike | None, **kwargs: Any) -> Array:
    """``create`` on ``store``, or on a new in-memory store when None (zarr-python's default)."""
    return create(MemoryStore() if store is None else store, shape=shape, **kwargs)


@_filled_parameters()
def empty(shape: Sequence[int] | int, *, store: StoreLike | None = None, **kwargs: Any) -> Array:
    """A new array whose elements read as the fill value (zarr-python's ``empty``).

    Examples
    --------
    >>> import zarrflow as zf
    >>> zf.empty((2, 3), dtype="i2").shape
    (2, 3)
    """
    return _filled(shape, store, **kwargs)


@_filled_parameters()
def zeros(shape: Sequence[int] | int, *, store: StoreLike | None = None, **kwargs: Any) -> Array:
    """A new array of zeros (fill value 0: no chunk is written).

    Examples
    --------
    >>> import zarrflow as zf
    >>> zf.zeros((2, 2), chunks=1)[:].tolist()
    [[0.0, 0.0], [0.0, 0.0]]
    """
    return _filled(shape, store, fill_value=0, **kwargs)


@_filled_parameters()
def ones(shape: Sequence[int] | int, *, store: StoreLike | None = None, **kwargs: Any) -> Array:
    """A new array of ones (fill value 1: no chunk is written).

    Examples
    --------
    >>> import zarrflow as zf
    >>> int(zf.ones(5, dtype="u1")[:].sum())
    5
    """
    return _filled(shape, store, fill_value=1, **kwargs)


@_filled_parameters("\n    fill_value\n        What every element reads as.")
def full(
    shape: Sequence[int] | int,
    fill_value: Any,
    *,
    store: StoreLike | None = None,
    **kwargs: Any,
) -> Array:
    """A new array of ``fill_value`` (the array's fill value: no chunk is written).

    Examples
    --------
    >>> import zarrflow as zf
    >>> zf.full(3, 7, dtype="i4")[:].tolist()
    [7, 7, 7]
    """
    return _filled(shape, store, fill_value=fill_value, **kwargs)


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
    return create(MemoryStore() if store is None else store, data=data, **kwargs)
