"""Writing dask (or numpy) arrays to Zarr: ``to_zarr`` and the plan it follows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zarrflow.api.stores import StoreLike, open_existing, resolve_store, where
from zarrflow.errors import (
    ArrayNotFoundError,
    ContainsArrayError,
    ContainsGroupError,
    ZarrflowError,
)
from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.group import create_array
from zarrflow.hierarchy.nodes import node_exists, normalize_path
from zarrflow.storage import Store

__all__ = ["plan_write", "to_zarr"]


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
        raise ContainsGroupError(f"a group exists at {where(st, p)!r} (to_zarr mode {mode!r})")
    if kind == "array" and mode in ("w-", "x"):
        raise ContainsArrayError(
            f"an array exists at {where(st, p)!r}; to_zarr mode {mode!r} refuses to replace it "
            "(mode='w' replaces, mode='a' or 'r+' writes into it)"
        )
    if kind == "array":
        return open_existing(st, p, None, {}, arrays_only=True)
    if mode == "r+" or region is not None:
        raise ArrayNotFoundError(
            f"no array at {where(st, p)!r}: to_zarr mode {mode!r}"
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
        st = resolve_store(store, "w" if mode == "w" else "a", storage_options)
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
