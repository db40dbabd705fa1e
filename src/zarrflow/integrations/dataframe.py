"""Dask DataFrames over Zarr: a group of equal-length 1-D arrays (or one 2-D array) as columns.

**Reading** (:func:`to_dask_dataframe`). A partition is a range of rows that
is a whole number of chunks in *every* column: its length is the least common
multiple of the columns' row-chunk sizes (the last partition is shorter). So a
partition reads whole chunks only, and no chunk is read by two partitions.
With equal chunk sizes that is one partition per row chunk; with chunks of 4
and 6 rows, one per 12 rows (coprime chunk sizes make long partitions: write
such columns with one chunk size). Partitions are ``zarrflow-read-dataframe``
tasks; selecting columns (``ddf[["a", "b"]]``) reads only those arrays. Row
numbers give known divisions; an index column does when it is sorted, which one
parallel pass over its chunks (first and last values only) finds out.

**Writing** (:func:`from_dask_dataframe`). Each column, and the index, becomes
a 1-D array with one row-chunk size; the partitions are rechunked to chunk
boundaries and written by :func:`zarrflow.to_zarr`, so every chunk has exactly
one writer. Stored as is: integers, floats, complex, bool, and strings (pandas'
``string`` dtype or object columns of ``str``, as Zarr variable-length strings;
they read back as pandas' ``string`` dtype; missing strings are refused). Stored with a
``pandas_dtype`` attribute: datetimes and timedeltas (naive or tz-aware, as
int64 ticks) and categoricals (the codes,
with ``categories`` and ``ordered`` attributes). Other columns are refused with
a :class:`~zarrflow.ZarrflowError`. The group's ``dataframe`` attribute records the column
order, the index array and the index name.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd

from zarrflow.api import open as zf_open
from zarrflow.api import open_group, to_zarr
from zarrflow.errors import ContainsArrayError, ContainsGroupError, NodeNotFoundError, ZarrflowError
from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.group import Group
from zarrflow.metadata.object_dtypes import STRING_DTYPE, object_kind
from zarrflow.parallel.dask_read import TaskScope

__all__ = ["ColumnSpec", "from_dask_dataframe", "to_dask_dataframe"]

#: group attribute holding {"columns": [...], "index": array name, "index_name": label}
FRAME_ATTR = "dataframe"


@dataclass(frozen=True)
class ColumnSpec:
    """How one pandas column is stored: the stored dtype and the pandas dtype it decodes to.

    Examples
    --------
    >>> spec = ColumnSpec.from_dtype("t", np.dtype("M8[ns]"))
    >>> spec.storage, spec.attrs()
    (dtype('int64'), {'pandas_dtype': 'datetime64[ns]'})
    """

    pandas_dtype: str
    storage: np.dtype
    categories: tuple[Any, ...] | None = None
    ordered: bool = False

    @classmethod
    def from_dtype(cls, name: Any, dtype: Any) -> ColumnSpec:
        """The spec for a pandas dtype, or a clear error for what cannot be stored."""
        if isinstance(dtype, pd.CategoricalDtype):
            cats = dtype.categories
            if cats.dtype.kind not in "biuf" and not all(isinstance(c, str) for c in cats):
                raise ZarrflowError(f"column {name!r}: categories of {cats.dtype} are not JSON")
            codes = pd.Categorical([], dtype=dtype).codes.dtype
            return cls("category", codes, tuple(cats.tolist()), bool(dtype.ordered))
        if isinstance(dtype, pd.DatetimeTZDtype) or (
            isinstance(dtype, np.dtype) and dtype.kind in "mM"
        ):
            return cls(str(dtype), np.dtype("int64"))
        if isinstance(dtype, np.dtype) and dtype.kind in "biufc":
            return cls(str(dtype), dtype)
        if isinstance(dtype, pd.StringDtype) or (
            isinstance(dtype, np.dtype) and dtype.kind in "OU"
        ):
            return cls("string", STRING_DTYPE)  # object columns are taken to hold strings
        raise ZarrflowError(
            f"column {name!r} has dtype {dtype}: zarrflow stores numeric, bool, datetime, "
            f"timedelta, string and categorical columns; convert it first"
        )

    @classmethod
    def from_array(cls, array: Array) -> ColumnSpec:
        """The spec recorded in an array's attributes (plain arrays decode as they are)."""
        attrs = array.attrs
        default = "string" if object_kind(array.dtype) == "string" else str(array.dtype)
        pandas_dtype = attrs.get("pandas_dtype", default)
        if pandas_dtype == "category":
            cats = tuple(attrs.get("categories", ()))
            return cls("category", array.dtype, cats, bool(attrs.get("ordered", False)))
        return cls(pandas_dtype, array.dtype)

    def attrs(self) -> dict[str, Any]:
        """The array attributes that let :meth:`from_array` rebuild this spec."""
        if self.pandas_dtype == "category":
            cats = list(self.categories or ())
            return {"pandas_dtype": "category", "categories": cats, "ordered": self.ordered}
        if self.pandas_dtype != str(self.storage):
            return {"pandas_dtype": self.pandas_dtype}
        return {}

    def encode(self, values: pd.Series | pd.Index) -> np.ndarray:
        """pandas values -> the stored numpy array."""
        if self.pandas_dtype == "category":
            dtype = pd.CategoricalDtype(list(self.categories or ()), ordered=self.ordered)
            return np.asarray(pd.Categorical(values, dtype=dtype).codes, dtype=self.storage)
        if self.pandas_dtype == "string":
            return _string_values(values)
        if isinstance(pd.api.types.pandas_dtype(self.pandas_dtype), pd.DatetimeTZDtype):
            values = pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None)
        values = np.asarray(values)
        if values.dtype.kind in "mM":  # ticks since the epoch; NaT is the int64 minimum
            return values.view(self.storage)
        return values.astype(self.storage, copy=False)

    def decode(self, values: np.ndarray) -> Any:
        """The stored numpy array -> pandas values of :attr:`pandas_dtype`."""
        if self.pandas_dtype == "category":
            dtype = pd.CategoricalDtype(list(self.categories or ()), ordered=self.ordered)
            return pd.Categorical.from_codes(values, dtype=dtype)
        if self.pandas_dtype == "string":
            return pd.array(values, dtype=pd.StringDtype())
        dtype = pd.api.types.pandas_dtype(self.pandas_dtype)
        if isinstance(dtype, pd.DatetimeTZDtype):
            naive = values.view(f"M8[{dtype.unit}]")
            return pd.DatetimeIndex(naive).tz_localize("UTC").tz_convert(dtype.tz).array
        if isinstance(dtype, np.dtype) and dtype.kind in "mM" and values.dtype.kind == "i":
            return values.view(dtype)
        return values


def _string_values(values: Any) -> np.ndarray:
    """A string column's values as an object array of ``str``; missing values are refused."""
    series = pd.Series(values)
    if series.isna().any():
        raise ZarrflowError(
            f"string column {series.name!r} has {int(series.isna().sum())} missing value(s): "
            "Zarr strings have no missing value; fill them first (e.g. .fillna(''))"
        )
    return np.asarray(series.astype(object), dtype=object)


@dataclass(frozen=True)
class _Column:
    label: Any
    array: Array
    spec: ColumnSpec
    position: int | None = None  # the column of a 2-D array, or None for a 1-D array


class _FrameReader:
    """The partition function: rows ``[start, stop)`` of the chosen columns as a DataFrame."""

    def __init__(self, columns: list[_Column], index: _Column | None) -> None:
        self.columns = columns
        self.index = index

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        cols = [*self.columns, *([self.index] if self.index else [])]
        return tuple((c.label, c.array.name, c.array.metadata, c.position) for c in cols)

    def __call__(self, rows: tuple[int, int], columns: Sequence[Any] | None = None):
        start, stop = rows
        wanted = (
            self.columns if columns is None else [c for c in self.columns if c.label in columns]
        )
        blocks: dict[str, np.ndarray] = {}
        with TaskScope():  # chunk reads stay inside this task
            data = {c.label: self._values(c, start, stop, blocks) for c in wanted}
            if self.index is None:
                index = pd.RangeIndex(start, stop)
            else:
                values = self._values(self.index, start, stop, blocks)
                index = pd.Index(values, name=self.index.label)
        return pd.DataFrame(data, index=index, columns=[c.label for c in wanted])

    @staticmethod
    def _values(column: _Column, start: int, stop: int, blocks: dict[str, np.ndarray]):
        block = blocks.get(column.array.name)
        if block is None:
            block = blocks[column.array.name] = column.array[start:stop]
        values = block if column.position is None else block[:, column.position]
        return column.spec.decode(np.ascontiguousarray(values))


def _partitions(nrows: int, row_chunks: Sequence[int]) -> list[tuple[int, int]]:
    """Row ranges that are whole chunks of every column: the lcm of the row-chunk sizes."""
    step = max(1, math.lcm(*row_chunks)) if row_chunks else max(1, nrows)
    return [(s, min(s + step, nrows)) for s in range(0, nrows, step)] or [(0, 0)]


class _ChunkBounds:
    """Per chunk: first and last index value and whether they are sorted (column ``position``)."""

    def __init__(self, position: int | None) -> None:
        self.position = position

    def __call__(self, idx: tuple[int, ...], chunk: np.ndarray) -> tuple[Any, Any, bool]:
        if self.position is not None:
            chunk = chunk[:, self.position]
        ordered = bool(np.all(chunk[1:] >= chunk[:-1])) if chunk.size else True
        return chunk[0], chunk[-1], ordered


def _divisions(index: _Column, parts: list[tuple[int, int]]) -> tuple[Any, ...] | None:
    """Known divisions when the index column is strictly ordered across partitions.

    One parallel pass over the index column's chunks keeps only each chunk's
    first and last value and whether it is sorted (bounded memory).
    """
    array, position = index.array, index.position
    if array.shape[0] == 0:
        return None
    bounds, keep = _ChunkBounds(None), None
    if position is not None:  # one column of a 2-D array: only its column of chunks
        bounds = _ChunkBounds(position % array.chunks[1])
        keep = position // array.chunks[1]
    per_chunk = {
        idx[0]: value
        for idx, value in array.parallel_chunk_map(
            bounds, filter=None if keep is None else (lambda idx: idx[1] == keep)
        )
    }
    chunk = array.chunks[0]
    if not all(ok for _, _, ok in per_chunk.values()):
        return None
    ends = [per_chunk[i] for i in range(len(per_chunk))]
    if any(a[1] > b[0] for a, b in itertools.pairwise(ends)):
        return None
    firsts = [ends[s // chunk][0] for s, _ in parts]
    lasts = [ends[(e - 1) // chunk][1] for _, e in parts]
    if any(last >= nxt for last, nxt in zip(lasts, firsts[1:], strict=False)):
        return None  # an index value repeats across a partition boundary
    values = index.spec.decode(np.asarray([*firsts, lasts[-1]], dtype=array.dtype))
    return tuple(pd.Index(values))


def _matrix_columns(array: Array, columns: Sequence[Any] | None) -> list[_Column]:
    """One column per column of a 2-D array, named by ``columns`` or its attributes."""
    if array.ndim != 2:
        raise ZarrflowError(
            f"array {array.name!r}: a DataFrame needs a 2-D array, not {array.ndim}-D"
        )
    ncols = array.shape[1]
    labels = list(columns if columns is not None else array.attrs.get("columns", range(ncols)))
    if len(labels) != ncols:
        raise ZarrflowError(
            f"array {array.name!r} has {ncols} columns but {len(labels)} names were given"
        )
    spec = ColumnSpec.from_array(array)
    return [_Column(label, array, spec, j) for j, label in enumerate(labels)]


def _frame_columns(
    node: Group | Array, columns: Sequence[Any] | None, index: str | bool | None
) -> tuple[list[_Column], _Column | None]:
    """The columns and index column a group or a 2-D array offers, checked."""
    stored = node.attrs.get(FRAME_ATTR, {}) if isinstance(node, Group) else {}
    if isinstance(node, Array):
        cols = _matrix_columns(node, columns)
    else:
        labels = columns if columns is not None else stored.get("columns")
        if labels is None:  # every 1-D array but a stored index
            labels = [n for n, a in node.arrays() if a.ndim == 1 and n != stored.get("index")]
        cols = [_column_of(node, label) for label in labels]
    if index is None:
        index = stored.get("index")
    if not index:
        return cols, None
    found = [c for c in cols if str(c.label) == str(index)]
    cols = [c for c in cols if str(c.label) != str(index)]
    if found:
        return cols, found[0]
    if isinstance(node, Array):
        raise ZarrflowError(f"array {node.name!r}: index {index!r} is not one of its columns")
    index_col = _column_of(node, index)
    name = stored.get("index_name") if index == stored.get("index") else index
    return cols, _Column(name, index_col.array, index_col.spec)


def _column_of(group: Group, label: Any) -> _Column:
    """The column stored as the 1-D array ``str(label)`` of ``group``."""
    array = group.get(str(label))
    if not isinstance(array, Array) or array.ndim != 1:
        raise ZarrflowError(
            f"group {group.name!r} has no 1-D array {str(label)!r} for a column; "
            f"members: {group.keys()}"
        )
    return _Column(label, array, ColumnSpec.from_array(array))


def to_dask_dataframe(
    group_or_url: Group | Array | Any,
    columns: Sequence[Any] | None = None,
    index: str | bool | None = None,
    *,
    path: str | None = None,
    storage_options: dict[str, Any] | None = None,
    calculate_divisions: bool = True,
):
    """A lazy dask DataFrame over a group of equal-length 1-D arrays, or a 2-D array.

    Parameters
    ----------
    group_or_url
        A :class:`~zarrflow.Group` (one column per 1-D array), a 2-D
        :class:`~zarrflow.Array` (one column per array column), or a URL/path/store
        of either.
    columns
        Column names and order. Default: the order :func:`from_dask_dataframe`
        recorded, else every 1-D array by name; for a 2-D array the array's
        ``columns`` attribute, else ``0 .. n-1``.
    index
        The column (or, in a group, any 1-D array) to use as the index;
        default the index :func:`from_dask_dataframe` stored, else row numbers.
        ``False`` never uses a stored index.
    path, storage_options
        Where the group or array lives inside the store; fsspec options.
    calculate_divisions
        With an index column, scan its chunks once (first, last value, sorted?)
        so a sorted index gives known divisions. Row numbers always do.

    Returns one partition per row range of whole chunks (see the module notes).

    Examples
    --------
    >>> import numpy as np, zarrflow as zf
    >>> g = zf.open_group("memory://doc-to-ddf", mode="w")
    >>> g.create_array("a", shape=(6,), chunks=(2,), dtype="i8")[:] = np.arange(6)
    >>> g.create_array("b", shape=(6,), chunks=(3,), dtype="f8")[:] = np.ones(6)
    >>> ddf = to_dask_dataframe(g)
    >>> ddf.npartitions, int(ddf["a"].sum().compute()), ddf.divisions
    (1, 15, (0, 5))
    """
    import dask.dataframe as dd

    node = group_or_url
    if not isinstance(node, Group | Array):
        node = zf_open(node, mode="r", path=path, storage_options=storage_options)
    cols, index_col = _frame_columns(node, columns, index)
    used = cols + ([index_col] if index_col is not None else [])
    lengths = {c.array.shape[0] for c in used}
    if len(lengths) > 1:
        sizes = {str(c.label): c.array.shape[0] for c in used}
        raise ZarrflowError(f"{node.name!r}: columns must have equal lengths, got {sizes}")
    nrows = lengths.pop() if lengths else 0
    parts = _partitions(nrows, [c.array.chunks[0] for c in used])
    reader = _FrameReader(cols, index_col)
    meta = reader((0, 0))
    if index_col is None:
        divisions = (*[s for s, _ in parts], parts[-1][1] - 1) if nrows else None
    else:
        divisions = _divisions(index_col, parts) if calculate_divisions else None
    return dd.from_map(
        reader,
        parts,
        meta=meta,
        divisions=divisions or (None,) * (len(parts) + 1),
        label="zarrflow-read-dataframe",
        enforce_metadata=False,
    )


def _dataframe_mode(mode: str | None, overwrite: bool) -> str:
    """ "w-" (refuse an existing node) or "w" (replace it), from ``mode`` and ``overwrite``."""
    if overwrite and mode not in (None, "w"):
        raise ZarrflowError(f"overwrite=True means mode 'w'; it contradicts mode={mode!r}")
    mode = mode if mode is not None else ("w" if overwrite else "w-")
    if mode in ("a", "r+"):
        raise ZarrflowError(
            f"from_dask_dataframe mode {mode!r}: writing rows into an existing DataFrame group "
            "is not supported; use mode 'w-' (a new group) or 'w' (replace it)"
        )
    if mode not in ("w-", "x", "w"):
        raise ZarrflowError(f"from_dask_dataframe mode must be 'w-' or 'w', not {mode!r}")
    return mode


def _refuse_existing(url: Any, storage_options: dict[str, Any] | None) -> None:
    try:
        node = zf_open(url, mode="r", storage_options=storage_options)
    except NodeNotFoundError:
        return
    err = ContainsGroupError if isinstance(node, Group) else ContainsArrayError
    raise err(f"{node.name!r} exists; pass mode='w' (or overwrite=True) to replace it")


def _known_categories(series: Any) -> Any:
    """A categorical dask Series with its categories learned (one pass), sorted if they sort."""
    known = series.cat.as_known()
    try:
        return known.cat.set_categories(sorted(known.cat.categories))
    except TypeError:  # categories of mixed types keep the order they were found in
        return known


def _targets(ddf: Any) -> list[tuple[str, Any, ColumnSpec]]:
    """``(array name, dask Series, spec)`` for every column, then for the index."""
    labels = list(ddf.columns)
    if len({str(c) for c in labels}) != len(labels):
        raise ZarrflowError(f"column names must be unique as strings, got {labels}")
    targets = []
    for label in labels:
        series = ddf[label]
        if isinstance(series.dtype, pd.CategoricalDtype) and not series.cat.known:
            series = _known_categories(series)
        targets.append((str(label), series, ColumnSpec.from_dtype(label, series.dtype)))
    index_array = "index" if ddf.index.name is None else str(ddf.index.name)
    if index_array in {str(c) for c in labels}:
        index_array = "__index__"
    index_spec = ColumnSpec.from_dtype(ddf.index.name or "index", ddf.index.dtype)
    targets.append((index_array, ddf.index.to_series(), index_spec))
    return targets


def _encoded(series: Any, spec: ColumnSpec, lengths: tuple[int, ...]):
    """A dask array of the stored values of a dask Series, blocks = partitions."""
    meta = pd.Series(np.empty(0, spec.storage))
    encoded = series.map_partitions(lambda s: pd.Series(spec.encode(s)), meta=meta)
    return encoded.to_dask_array(lengths=lengths)


def from_dask_dataframe(
    ddf: Any,
    url: Any,
    chunks: int | None = None,
    overwrite: bool = False,
    *,
    mode: str | None = None,
    zarr_format: int = 3,
    compressor: Any = "zstd",
    storage_options: dict[str, Any] | None = None,
    scheduler: Any = None,
) -> Group:
    """Write a dask (or pandas) DataFrame as a group of 1-D arrays, one writer per chunk.

    Each column is an array named ``str(column)``; the index is an array named
    after it (``"index"`` when unnamed, ``"__index__"`` on a clash). ``chunks``
    is the row-chunk size of every array (default: the largest partition).
    Partition lengths are computed first (one pass), then all columns are
    written in one Dask computation. See the module notes for dtypes.

    ``mode`` follows :func:`zarrflow.to_zarr`: ``"w-"`` (the default) refuses
    an existing array or group at ``url`` before anything is computed or
    written; ``"w"`` (or ``overwrite=True``) replaces it.

    Parameters
    ----------
    ddf
        A dask or pandas DataFrame.
    url
        Where the group goes: a path, an fsspec URL or a store.
    chunks
        Rows per chunk (default: the largest partition).
    overwrite
        The same as ``mode="w"``.
    mode
        ``"w-"`` (default) or ``"w"``; ``"a"`` and ``"r+"`` are refused.
    zarr_format, compressor, storage_options, scheduler
        The arrays' format and compressor, fsspec options, where tasks run.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": [1, 2, 3], "t": pd.date_range("2024-01-01", periods=3)})
    >>> g = from_dask_dataframe(df, "memory://doc-from-ddf", chunks=2, overwrite=True)
    >>> g["x"].chunks, g.attrs["dataframe"]["columns"]
    ((2,), ['x', 't'])
    >>> to_dask_dataframe(g).compute().equals(df)
    True
    """
    import dask.dataframe as dd

    if _dataframe_mode(mode, overwrite) != "w":
        _refuse_existing(url, storage_options)
    if isinstance(ddf, pd.DataFrame):
        ddf = dd.from_pandas(ddf, npartitions=1)
    targets = _targets(ddf)
    lengths = tuple(int(n) for n in ddf.map_partitions(len).compute(scheduler=scheduler))
    nrows, row_chunk = sum(lengths), int(chunks) if chunks else max(1, *lengths)
    group = open_group(url, mode="w", zarr_format=zarr_format, storage_options=storage_options)
    writes = []
    for name, series, spec in targets:
        array = group.create_array(
            name, shape=(nrows,), chunks=(row_chunk,), dtype=spec.storage,
            compressor=compressor, attributes=spec.attrs(),
        )  # fmt: skip
        if nrows:
            writes.append(to_zarr(_encoded(series, spec, lengths), array, compute=False))
    dask.compute(*writes, scheduler=scheduler)
    stored = {"columns": list(ddf.columns), "index": targets[-1][0], "index_name": ddf.index.name}
    group.attrs[FRAME_ATTR] = stored
    return group
