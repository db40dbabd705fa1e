"""The ``"zarrflow"`` xarray engine: Zarr groups as datasets and trees, read by zarrflow.

``xr.open_dataset(url, engine="zarrflow")`` and ``xr.open_datatree(url,
engine="zarrflow")`` open Zarr v2 and v3 groups written by xarray (or by
anyone following xarray's Zarr encoding): dimensions come from the
``_ARRAY_DIMENSIONS`` attribute (v2) or ``dimension_names`` (v3), and CF
decoding (``scale_factor``/``add_offset``, ``_FillValue``/``missing_value``,
``units``/``calendar`` times) is xarray's own, through
:class:`xarray.backends.StoreBackendEntrypoint` over a small
:class:`ZarrflowStore`.

**How variables are made lazy.** An xarray backend never sees the ``chunks=``
argument: xarray chunks what the backend returns, after wrapping every
non-index variable in its copy-on-write adapter. So the engine offers two forms:

``use_dask=False`` (the default): xarray's contract
    Each variable wraps a :class:`ZarrflowBackendArray`. ``chunks=None`` reads
    numpy on access (basic, orthogonal and vectorized selections through
    zarrflow, in parallel); ``chunks={}`` gives dask blocks of
    ``preferred_chunks`` — the stored chunks (the *inner* chunks of a sharded
    array), exactly as ``engine="zarr"`` does — each read synchronously
    inside its task by zarrflow (xarray names these layers
    ``open_dataset-*``); ``chunks="auto"`` is xarray's rule over those
    preferred chunks, so it matches ``engine="zarr"`` too.
    ``task_blocks=True`` (or ``chunks_per_task=``) makes ``preferred_chunks``
    zarrflow's read-task blocks instead: whole chunks grouped to about
    ``zarrflow.task_target_bytes`` (whole shards when sharded), fewer and
    larger tasks for arrays of small chunks.
``use_dask=True``: zarrflow's own graph
    Each variable with dimensions is :meth:`zarrflow.Array.to_dask`, so
    ``ds[name].data`` is a dask array of ``zarrflow-read`` tasks (CF decoding
    adds ``map_blocks`` layers). Leave ``chunks=None`` here: given ``chunks=``,
    xarray would re-wrap the dask arrays and compute them piecewise inside its
    own tasks. :func:`open_dataset` and :func:`open_datatree` in this module
    open this way and strip xarray's wrappers, so ``ds.chunks`` and
    ``ds.chunk(...)`` see the zarrflow graph.

Each variable's ``encoding`` holds what the zarr engine's does: ``chunks``
(the chunk shape; inner chunk when sharded), ``preferred_chunks``, ``shards``,
``compressors``, ``filters`` and, for v3, ``serializer`` (v2: numcodecs codec
objects; v3: codec JSON configurations, see :attr:`zarrflow.Array.compressors`),
so writing the dataset back with ``to_zarr`` keeps chunking and codecs.
"""

from __future__ import annotations

import base64
import contextlib
import os
import struct
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from xarray import Dataset, DataTree, Variable
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.backends.common import AbstractDataStore, datatree_from_dict_with_io_cleanup
from xarray.backends.store import StoreBackendEntrypoint
from xarray.core import indexing

from zarrflow.api import open_consolidated, open_group
from zarrflow.errors import GroupNotFoundError, MetadataError, ZarrflowError
from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.group import Group
from zarrflow.parallel.dask_read import TaskScope, block_shape, sharded_block_shape

__all__ = [
    "ZarrflowBackendArray",
    "ZarrflowBackendEntrypoint",
    "ZarrflowStore",
    "open_dataset",
    "open_datatree",
]

#: the attribute in which xarray stores a v2 array's dimension names
DIMENSION_KEY = "_ARRAY_DIMENSIONS"
_MARKERS = ("zarr.json", ".zgroup", ".zarray")
_DECODERS = (
    "mask_and_scale",
    "decode_times",
    "concat_characters",
    "decode_coords",
    "use_cftime",
    "decode_timedelta",
)
_STORE_OPTIONS = ("use_zarr_fill_value_as_mask", "use_dask", "chunks_per_task", "task_blocks")
#: keywords of xarray's zarr engine that change nothing for a read-only zarrflow store
_ZARR_ENGINE_NOOPS = ("cache_members",)


class ZarrflowBackendArray(BackendArray):
    """A zarrflow :class:`~zarrflow.Array` behind xarray's lazy indexing.

    Basic keys read through ``array[...]``, outer keys through ``array.oindex``
    and vectorized keys through ``array.vindex``; xarray's
    :func:`~xarray.core.indexing.explicit_indexing_adapter` does the rest
    (negative steps, slices mixed into vectorized keys). Called from a worker
    thread (a Dask task), a read stays synchronous: no nested thread pools.

    Examples
    --------
    >>> import numpy as np, zarrflow as zf
    >>> from xarray.core import indexing
    >>> a = zf.create("memory://doc-backend-array", shape=(6,), chunks=(2,), dtype="i4")
    >>> a[:] = np.arange(6)
    >>> ZarrflowBackendArray(a)[indexing.OuterIndexer((np.array([4, 1]),))]
    array([4, 1], dtype=int32)
    """

    __slots__ = ("_array", "dtype", "shape")

    def __init__(self, array: Array) -> None:
        self._array = array
        self.shape = array.shape
        self.dtype = array.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        support = indexing.IndexingSupport.VECTORIZED
        if isinstance(key, indexing.VectorizedIndexer):
            if any(isinstance(k, slice) for k in key.tuple):
                support = indexing.IndexingSupport.OUTER  # zarrflow's vindex takes arrays only
            kind = "vindex"
        else:
            kind = "oindex" if isinstance(key, indexing.OuterIndexer) else "basic"
        return indexing.explicit_indexing_adapter(
            key, self.shape, support, lambda raw: self._read(kind, raw)
        )

    def _read(self, kind: str, key: tuple[Any, ...]) -> np.ndarray:
        array = self._array
        if array.ndim == 0:  # one chunk holds the whole 0-d array
            return np.asarray(array.read_chunk(())[key])
        if kind == "oindex" and not any(isinstance(k, np.ndarray) for k in key):
            kind = "basic"
        in_worker = threading.current_thread() is not threading.main_thread()
        with TaskScope() if in_worker else contextlib.nullcontext():
            if kind == "vindex":
                return np.asarray(array.vindex[key])
            if kind == "oindex":
                return np.asarray(array.oindex[key])
            return np.asarray(array[key])


def _decode_fill_value(value: Any, dtype: np.dtype) -> Any:
    """Undo xarray's JSON encoding of a v3 ``_FillValue`` attribute (base64 floats)."""
    if dtype.kind == "f" and isinstance(value, str):
        if value in ("NaN", "Infinity", "-Infinity"):
            return float(value)
        return struct.unpack("<d", base64.standard_b64decode(value))[0]
    if dtype.kind == "c" and isinstance(value, list | tuple) and len(value) == 2:
        real, imag = (_decode_fill_value(v, np.dtype("f8")) for v in value)
        return complex(real, imag)
    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu" and isinstance(value, int | float):
        return int(value)
    return value


def _dimensions(array: Array, attributes: dict[str, Any]) -> tuple[str, ...]:
    """Dimension names from v3 ``dimension_names`` or the v2 ``_ARRAY_DIMENSIONS`` attribute."""
    from_attrs = attributes.pop(DIMENSION_KEY, None)
    names = array.dimension_names
    if names is None or any(n is None for n in names):
        names = from_attrs
    if names is None and array.ndim == 0:
        names = ()
    if names is None or len(names) != array.ndim:
        raise ZarrflowError(
            f"array {array.name!r} has no dimension names for xarray: expected "
            f"{array.ndim} names in dimension_names (v3) or the {DIMENSION_KEY!r} attribute "
            f"(v2), found {names!r}"
        )
    return tuple(str(n) for n in names)


class ZarrflowStore(AbstractDataStore):
    """One Zarr group as xarray variables and attributes (read-only).

    Examples
    --------
    >>> import zarrflow as zf
    >>> g = zf.open_group("memory://doc-xr-store", mode="w")
    >>> _ = g.create_array("x", shape=(4,), chunks=(2,), dtype="f8", dimension_names=["x"])
    >>> variables, attrs = ZarrflowStore(g).load()
    >>> variables["x"].dims
    ('x',)
    """

    def __init__(
        self,
        group: Group,
        *,
        use_dask: bool = False,
        chunks_per_task: int | tuple[int, ...] | None = None,
        use_zarr_fill_value_as_mask: bool | None = None,
        drop_variables: Iterable[str] = (),
        task_blocks: bool = False,
    ) -> None:
        self.group = group
        self.use_dask = use_dask
        self.chunks_per_task = chunks_per_task
        self.task_blocks = task_blocks or chunks_per_task is not None
        if use_zarr_fill_value_as_mask is None:  # xarray's defaults: v2 yes, v3 no
            use_zarr_fill_value_as_mask = group.zarr_format == 2
        self.fill_value_as_mask = use_zarr_fill_value_as_mask
        self.drop_variables = frozenset(drop_variables)

    def arrays(self) -> Iterator[tuple[str, Array]]:
        """``(name, array)`` for each member array not dropped, naming any that cannot open."""
        for name in self.group:
            if name in self.drop_variables:
                continue
            try:
                node = self.group[name]
            except ZarrflowError as e:
                raise ZarrflowError(
                    f"variable {name!r} in {self.group.name!r} cannot be read by zarrflow: {e}; "
                    f"pass drop_variables=[{name!r}] to open the rest"
                ) from e
            if isinstance(node, Array):
                yield name, node

    def open_store_variable(self, name: str, array: Array) -> Variable:
        """The raw (not yet CF-decoded) variable for one array."""
        attributes = dict(array.attrs)
        dims = _dimensions(array, attributes)
        blocks = self._task_blocks(array) if self.task_blocks else array.chunks
        encoding: dict[str, Any] = {
            "chunks": array.chunks,
            "preferred_chunks": dict(zip(dims, blocks, strict=True)),
            "compressors": array.compressors,
            "filters": array.filters,
            "shards": array.shards,
        }
        if array.zarr_format == 3:
            encoding["serializer"] = array.serializer
        if self.use_dask and array.ndim:
            data = array.to_dask(chunks_per_task=self.chunks_per_task)
        else:
            data = indexing.LazilyIndexedArray(ZarrflowBackendArray(array))
        if self.fill_value_as_mask:
            if array.fill_value is not None:
                attributes["_FillValue"] = array.fill_value
        else:
            if array.zarr_format == 3:
                encoding["fill_value"] = array.fill_value
            if "_FillValue" in attributes:
                attributes["_FillValue"] = _decode_fill_value(attributes["_FillValue"], array.dtype)
        return Variable(dims, data, attributes, encoding)

    def _task_blocks(self, array: Array) -> tuple[int, ...]:
        """zarrflow's read-task blocks (what ``to_dask`` uses), clipped to the shape."""
        if array.shards is not None:
            blocks = sharded_block_shape(array.engine, self.chunks_per_task)
        else:
            blocks = block_shape(
                array.chunks,
                array.chunk_grid_shape,
                array.dtype.itemsize,
                chunks_per_task=self.chunks_per_task,
            )
        return tuple(min(b, s) for b, s in zip(blocks, array.shape, strict=True))

    def get_variables(self) -> dict[str, Variable]:
        return {name: self.open_store_variable(name, array) for name, array in self.arrays()}

    def get_attrs(self) -> dict[str, Any]:
        return {k: v for k, v in self.group.attrs.items() if not k.lower().startswith("_nc")}

    def close(self) -> None:
        """Nothing to release: zarrflow stores hold no open handles between reads."""


def _open_root(
    filename_or_obj: Any,
    group: str | None,
    storage_options: dict[str, Any] | None,
    zarr_format: int | None,
    use_consolidated: bool | None,
) -> Group:
    """The zarrflow group to read: a URL, path, Store or Group, then ``group`` inside it."""
    path = (group or "").strip("/") or None
    if isinstance(filename_or_obj, Group):
        node = filename_or_obj[path] if path else filename_or_obj
    elif isinstance(filename_or_obj, Array):
        raise ZarrflowError(
            f"{filename_or_obj.name!r} is an array: xarray opens groups; open its parent group"
        )
    elif use_consolidated:  # consolidated=True: as the zarr engine, fail without it
        root = open_consolidated(
            filename_or_obj, zarr_format=zarr_format, storage_options=storage_options
        )
        node = root[path] if path else root
    else:
        kwargs = {"path": path, "zarr_format": zarr_format, "storage_options": storage_options}
        try:
            node = open_group(filename_or_obj, "r", use_consolidated=use_consolidated, **kwargs)
        except MetadataError:
            if use_consolidated is not None:
                raise
            # one unreadable member spoils consolidated metadata for all: open
            # member by member, so the error names the variable to drop
            node = open_group(filename_or_obj, "r", use_consolidated=False, **kwargs)
    if not isinstance(node, Group):
        raise GroupNotFoundError(f"{group!r} in {filename_or_obj!r} is not a group")
    return node


def _walk_groups(group: Group, path: str = "/") -> Iterator[tuple[str, Group]]:
    """``(tree path, group)`` for ``group`` and every group below it."""
    yield path, group
    for name in group:
        try:
            child = group[name]
        except ZarrflowError:  # an unreadable array: its group's dataset names it
            continue
        if isinstance(child, Group):
            yield from _walk_groups(child, f"{path.rstrip('/')}/{name}")


class ZarrflowBackendEntrypoint(BackendEntrypoint):
    """xarray's ``engine="zarrflow"``: Zarr v2/v3 groups, every chunk a Dask task.

    Backend keywords (besides xarray's decoders and ``drop_variables``), those
    of the zarr engine with its meaning: ``group`` (a path inside the store),
    ``storage_options`` (fsspec), ``zarr_format``, ``consolidated`` (None: use
    consolidated metadata where present; True: require it; False: ignore it;
    ``use_consolidated`` is the same switch), ``mode`` (``"r"`` only: the
    engine reads), ``cache_members`` (accepted; zarrflow keeps no member
    cache), ``use_zarr_fill_value_as_mask`` (default: True for v2, False for
    v3, as xarray's zarr store decides). zarrflow's own: ``use_dask``,
    ``chunks_per_task`` and ``task_blocks`` (see the module notes).

    Examples
    --------
    >>> import numpy as np, xarray as xr, zarrflow as zf
    >>> g = zf.open_group("memory://doc-xr-engine", mode="w", zarr_format=2)
    >>> t = g.create_array("t", shape=(4,), chunks=(2,), dtype="f4",
    ...                    attributes={"_ARRAY_DIMENSIONS": ["time"], "units": "K"})
    >>> t[:] = np.arange(4)
    >>> ds = xr.open_dataset("memory://doc-xr-engine", engine="zarrflow")
    >>> ds["t"].dims, ds["t"].attrs["units"], float(ds["t"].sum())
    (('time',), 'K', 6.0)
    """

    description = "Open Zarr v2/v3 groups with zarrflow: every chunk is a Dask task"
    url = "docs/xarray.md in the zarrflow repository"
    supports_groups = True
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        *_DECODERS,
        "group",
        "storage_options",
        "zarr_format",
        "consolidated",
        "use_consolidated",
        "mode",
        *_STORE_OPTIONS,
        *_ZARR_ENGINE_NOOPS,
    )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """A zarrflow Group, a path or URL ending in ``.zarr``, or a local Zarr directory."""
        if isinstance(filename_or_obj, Group):
            return True
        text = os.fspath(filename_or_obj) if isinstance(filename_or_obj, str | os.PathLike) else b""
        if not isinstance(text, str):
            return False
        text = text.rstrip("/")
        if text.endswith(".zarr"):
            return True
        return os.path.isdir(text) and any(os.path.exists(os.path.join(text, m)) for m in _MARKERS)

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        group: str | None = None,
        storage_options: dict[str, Any] | None = None,
        zarr_format: int | None = None,
        consolidated: bool | None = None,
        use_consolidated: bool | None = None,
        mode: str = "r",
        **options: Any,
    ) -> Dataset:
        flag = _consolidation(consolidated, use_consolidated, mode)
        root = _open_root(filename_or_obj, group, storage_options, zarr_format, flag)
        return _dataset(root, drop_variables, options)

    def open_groups_as_dict(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        group: str | None = None,
        storage_options: dict[str, Any] | None = None,
        zarr_format: int | None = None,
        consolidated: bool | None = None,
        use_consolidated: bool | None = None,
        mode: str = "r",
        **options: Any,
    ) -> dict[str, Dataset]:
        flag = _consolidation(consolidated, use_consolidated, mode)
        root = _open_root(filename_or_obj, group, storage_options, zarr_format, flag)
        return {path: _dataset(node, drop_variables, options) for path, node in _walk_groups(root)}

    def open_datatree(  # type: ignore[override]
        self, filename_or_obj: Any, **kwargs: Any
    ) -> DataTree:
        groups = self.open_groups_as_dict(filename_or_obj, **kwargs)
        return datatree_from_dict_with_io_cleanup(groups)


def _consolidation(consolidated: bool | None, use_consolidated: bool | None, mode: str) -> Any:
    """One consolidated-metadata switch from the zarr engine's and zarrflow's keywords."""
    if mode != "r":
        raise ZarrflowError(f"engine 'zarrflow' reads: mode must be 'r', not {mode!r}")
    if None not in (consolidated, use_consolidated) and consolidated != use_consolidated:
        raise TypeError(
            f"consolidated={consolidated!r} and use_consolidated={use_consolidated!r} disagree"
        )
    return consolidated if consolidated is not None else use_consolidated


def _dataset(
    group: Group, drop_variables: str | Iterable[str] | None, options: dict[str, Any]
) -> Dataset:
    """One group as a CF-decoded dataset, through xarray's StoreBackendEntrypoint.

    ``options`` holds xarray's decoders and the store's keywords (``use_dask``,
    ``chunks_per_task``, ``use_zarr_fill_value_as_mask``).
    """
    unknown = set(options) - set(_DECODERS) - set(_STORE_OPTIONS) - set(_ZARR_ENGINE_NOOPS)
    if unknown:
        raise TypeError(f"engine 'zarrflow' got unexpected keyword(s) {sorted(unknown)}")
    decoders = {k: v for k, v in options.items() if k in _DECODERS}
    store_options = {k: v for k, v in options.items() if k in _STORE_OPTIONS}
    drop = [drop_variables] if isinstance(drop_variables, str) else list(drop_variables or ())
    store = ZarrflowStore(group, drop_variables=drop, **store_options)
    return StoreBackendEntrypoint().open_dataset(store, drop_variables=drop, **decoders)


def _expose_dask(ds: Dataset) -> Dataset:
    """Replace xarray's copy-on-write wrappers around zarrflow dask arrays by the arrays."""
    for name, var in ds.variables.items():
        if var.ndim and name not in ds.xindexes:
            var.data = var.data  # the wrapped dask array itself: immutable, safe to share
    return ds


def open_dataset(url: Any, **kwargs: Any) -> Dataset:
    """Open a Zarr group as an xarray dataset of zarrflow dask arrays (``zarrflow-read`` tasks).

    ``xr.open_dataset(url, engine="zarrflow", use_dask=True, **kwargs)`` with
    xarray's lazy wrappers removed, so ``ds.chunks`` shows zarrflow's blocks and
    ``ds.chunk(...)`` rechunks the zarrflow graph. Keywords as the engine's
    (``group``, ``drop_variables``, ``chunks_per_task``, CF decoders, ...).

    Examples
    --------
    >>> import numpy as np, zarrflow as zf
    >>> from zarrflow.integrations.xarray_backend import open_dataset
    >>> g = zf.open_group("memory://doc-xr-open-dataset", mode="w")
    >>> v = g.create_array("v", shape=(8,), chunks=(2,), dtype="i4", dimension_names=["x"])
    >>> v[:] = np.arange(8)
    >>> ds = open_dataset("memory://doc-xr-open-dataset", chunks_per_task=1)
    >>> ds["v"].chunks, int(ds["v"].sum())
    (((2, 2, 2, 2),), 28)
    """
    import xarray as xr

    kwargs.setdefault("use_dask", True)
    return _expose_dask(xr.open_dataset(url, engine="zarrflow", **kwargs))


def open_datatree(url: Any, **kwargs: Any) -> DataTree:
    """Open a Zarr hierarchy as an xarray tree of zarrflow dask arrays.

    The tree form of :func:`open_dataset`: every group a node, every variable
    with dimensions a dask array of ``zarrflow-read`` tasks.

    Examples
    --------
    >>> import zarrflow as zf
    >>> from zarrflow.integrations.xarray_backend import open_datatree
    >>> g = zf.open_group("memory://doc-xr-open-tree", mode="w")
    >>> sub = g.create_group("sub")
    >>> _ = sub.create_array("v", shape=(4,), chunks=(2,), dtype="f8", dimension_names=["x"])
    >>> v = open_datatree("memory://doc-xr-open-tree")["sub/v"]
    >>> v.shape, type(v.data).__name__
    ((4,), 'Array')
    """
    import xarray as xr

    kwargs.setdefault("use_dask", True)
    tree = xr.open_datatree(url, engine="zarrflow", **kwargs)
    for node in tree.subtree:
        _expose_dask(node.dataset)
    return tree
