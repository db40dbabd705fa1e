"""Dask DataFrames over Zarr groups, checked against pandas on the same data."""

from __future__ import annotations

import math
import threading
from collections import Counter

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")

import zarrflow as zf  # noqa: E402
from conftest import CountingStore  # noqa: E402
from zarrflow.integrations.dataframe import (  # noqa: E402
    ColumnSpec,
    from_dask_dataframe,
    to_dask_dataframe,
)
from zarrflow.storage import MemoryStore  # noqa: E402


def _frame(n: int = 103) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "i": np.arange(n, dtype="i4"),
            "f": rng.normal(size=n),
            "b": np.arange(n) % 3 == 0,
            "t": pd.date_range("2020-01-01", periods=n, freq="h"),
            "tz": pd.date_range("2020-01-01", periods=n, freq="D", tz="Europe/Paris"),
            "dt": pd.to_timedelta(np.arange(n), unit="s"),
            "c": pd.Categorical(rng.choice(["x", "y", "z"], n), categories=["x", "y", "z"]),
        },
        index=pd.Index(np.arange(n, dtype="i8") * 10, name="key"),
    )
    df.loc[df.index[5], "f"] = np.nan
    df.loc[df.index[7], "t"] = pd.NaT
    return df


class WriteCountingStore(CountingStore):
    """Counts every chunk write, to show that each chunk has one writer."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.writes: Counter[str] = Counter()
        self._write_lock = threading.Lock()

    def set(self, key, value):
        with self._write_lock:
            self.writes[key] += 1
        self.inner.set(key, value)


@pytest.mark.parametrize("fmt", [2, 3])
def test_round_trip_matches_pandas(fmt):
    df = _frame()
    ddf = dd.from_pandas(df, npartitions=4)
    url = f"memory://df-round-trip-{fmt}"
    g = from_dask_dataframe(ddf, url, chunks=10, overwrite=True, zarr_format=fmt)
    assert g.zarr_format == fmt
    assert g["i"].chunks == (10,) and g["key"].shape == (103,)
    assert g.attrs["dataframe"] == {
        "columns": list(df.columns),
        "index": "key",
        "index_name": "key",
    }
    back = to_dask_dataframe(url)
    out = back.compute()
    pd.testing.assert_frame_equal(out, df)
    assert dict(back.dtypes) == dict(df.dtypes)
    assert back.npartitions == math.ceil(103 / 10)
    assert back.known_divisions
    assert back.divisions == (*df.index[::10], df.index[-1])


def test_partitions_follow_row_chunks_and_read_each_chunk_once():
    inner = MemoryStore()
    g = zf.open_group(inner, mode="w")
    a = g.create_array("a", shape=(50,), chunks=(4,), dtype="i8")
    b = g.create_array("b", shape=(50,), chunks=(6,), dtype="f4")
    a[:] = np.arange(50)
    b[:] = np.arange(50) / 2
    store = CountingStore(inner)
    ddf = to_dask_dataframe(zf.open_group(store, mode="r"))
    # lcm(4, 6) = 12 rows: every partition holds whole chunks of both columns
    assert ddf.npartitions == math.ceil(50 / 12)
    assert ddf.divisions == (0, 12, 24, 36, 48, 49)
    store.reads.clear()
    out = ddf.compute(scheduler="threads")
    expected = pd.DataFrame({"a": np.arange(50), "b": (np.arange(50) / 2).astype("f4")})
    pd.testing.assert_frame_equal(out, expected)
    chunk_reads = {k: n for k, n in store.reads.items() if not k.endswith("zarr.json")}
    assert len(chunk_reads) == math.ceil(50 / 4) + math.ceil(50 / 6)
    assert set(chunk_reads.values()) == {1}  # no chunk read by two partitions
    names = {k[0] if isinstance(k, tuple) else k for k in ddf.__dask_graph__()}
    assert any(name.startswith("zarrflow-read-dataframe") for name in names)


def test_column_selection_reads_only_those_arrays():
    g = zf.open_group("memory://df-projection", mode="w")
    g.create_array("keep", shape=(8,), chunks=(4,), dtype="i4")[:] = np.arange(8)
    other = g.create_array("other", shape=(8,), chunks=(4,), dtype="i4")
    other[:] = 1
    g.store.set(other.chunk_key((0,)), b"not a chunk")
    ddf = to_dask_dataframe(g)
    assert ddf[["keep"]].compute()["keep"].tolist() == list(range(8))
    assert ddf["keep"].sum().compute() == 28
    with pytest.raises(zf.CorruptChunkError):
        ddf.compute()


def test_index_column_divisions():
    g = zf.open_group("memory://df-index", mode="w")
    g.create_array("k", shape=(9,), chunks=(3,), dtype="i8")[:] = [1, 2, 4, 5, 7, 8, 9, 11, 12]
    g.create_array("v", shape=(9,), chunks=(3,), dtype="f8")[:] = np.arange(9.0)
    ddf = to_dask_dataframe(g, index="k")
    assert list(ddf.columns) == ["v"] and ddf.index.name == "k"
    assert ddf.divisions == (1, 5, 9, 12)
    assert ddf.loc[5:8].compute()["v"].tolist() == [3.0, 4.0, 5.0]
    unknown = to_dask_dataframe(g, index="k", calculate_divisions=False)
    assert not unknown.known_divisions

    g["k"][:] = [3, 2, 1, 4, 5, 6, 7, 8, 9]  # unsorted inside a chunk
    assert not to_dask_dataframe(g, index="k").known_divisions
    g["k"][:] = [1, 2, 3, 3, 5, 6, 7, 8, 9]  # a value repeats across a partition edge
    shuffled = to_dask_dataframe(g, index="k")
    assert not shuffled.known_divisions
    pd.testing.assert_frame_equal(
        shuffled.compute(),
        pd.DataFrame({"v": np.arange(9.0)}, index=pd.Index(g["k"][:], name="k")),
    )


def test_no_index_gives_row_numbers_and_stored_index_can_be_ignored():
    df = pd.DataFrame({"x": np.arange(7)}, index=pd.Index(list(range(100, 107)), name="id"))
    url = "memory://df-no-index"
    from_dask_dataframe(dd.from_pandas(df, npartitions=2), url, chunks=3, overwrite=True)
    plain = to_dask_dataframe(url, index=False)
    assert plain.divisions == (0, 3, 6, 6)
    pd.testing.assert_frame_equal(plain.compute(), df.reset_index(drop=True))
    with_id = to_dask_dataframe(url, columns=["x", "id"], index=False)
    assert with_id.compute()["id"].tolist() == list(range(100, 107))


def test_two_dimensional_array_with_column_names():
    a = zf.create("memory://df-matrix", shape=(10, 3), chunks=(4, 2), dtype="f8", overwrite=True)
    values = np.arange(30.0).reshape(10, 3)
    a[:] = values
    named = to_dask_dataframe(a, columns=["p", "q", "r"])
    assert named.npartitions == 3
    pd.testing.assert_frame_equal(named.compute(), pd.DataFrame(values, columns=["p", "q", "r"]))
    a.attrs["columns"] = ["u", "v", "w"]
    indexed = to_dask_dataframe("memory://df-matrix", index="u")
    expected = pd.DataFrame(
        values[:, 1:], columns=["v", "w"], index=pd.Index(values[:, 0], name="u")
    )
    pd.testing.assert_frame_equal(indexed.compute(), expected)
    assert indexed.divisions == (0.0, 12.0, 24.0, 27.0)
    with pytest.raises(zf.ZarrflowError, match="3 columns but 2 names"):
        to_dask_dataframe(a, columns=["x", "y"])


def test_each_chunk_has_one_writer():
    df = _frame(95)
    ddf = dd.from_pandas(df, npartitions=7)  # partitions cut through chunks
    store = WriteCountingStore(MemoryStore())
    g = from_dask_dataframe(ddf, store, chunks=10)
    chunk_writes = {k: n for k, n in store.writes.items() if "/c/" in k}
    assert len(chunk_writes) == (len(df.columns) + 1) * math.ceil(95 / 10)
    assert set(chunk_writes.values()) == {1}
    pd.testing.assert_frame_equal(to_dask_dataframe(g).compute(), df)


def test_default_chunks_and_pandas_input():
    df = pd.DataFrame({"a": np.arange(20), "b": np.linspace(0, 1, 20)})
    g = from_dask_dataframe(
        dd.from_pandas(df, npartitions=3), "memory://df-default", overwrite=True
    )
    assert g["a"].chunks == (7,)  # the largest partition
    assert g.attrs["dataframe"]["index"] == "index"
    pd.testing.assert_frame_equal(to_dask_dataframe(g).compute(), df)
    g2 = from_dask_dataframe(df, "memory://df-pandas", overwrite=True)
    assert to_dask_dataframe(g2).npartitions == 1


def test_unknown_categories_are_learned():
    df = pd.DataFrame({"c": pd.Categorical(["b", "a", "b", "c"])})
    ddf = dd.from_pandas(df, npartitions=2)
    ddf["c"] = ddf["c"].cat.as_unknown()
    g = from_dask_dataframe(ddf, "memory://df-cats", chunks=2, overwrite=True)
    assert g["c"].attrs["categories"] == ["a", "b", "c"]
    pd.testing.assert_frame_equal(to_dask_dataframe(g).compute(), df)


def test_refusals_are_clear():
    periods = pd.DataFrame({"p": pd.period_range("2024-01-01", periods=2, freq="D")})
    with pytest.raises(zf.ZarrflowError, match=r"column 'p' has dtype period.*convert it first"):
        from_dask_dataframe(periods, "memory://df-periods", overwrite=True)
    missing = pd.DataFrame({"s": pd.array(["a", None], dtype="string")})
    with pytest.raises(zf.ZarrflowError, match=r"1 missing value.*fillna"):
        from_dask_dataframe(missing, "memory://df-missing-strings", overwrite=True)
    url = "memory://df-exists"
    from_dask_dataframe(pd.DataFrame({"x": [1]}), url, overwrite=True)
    with pytest.raises(zf.ContainsGroupError, match="overwrite=True"):
        from_dask_dataframe(pd.DataFrame({"x": [2]}), url)
    g = from_dask_dataframe(pd.DataFrame({"y": [2.5]}), url, overwrite=True)
    assert g.keys() == ["index", "y"]
    g.create_array("short", shape=(3,), dtype="i1")
    with pytest.raises(zf.ZarrflowError, match="equal lengths"):
        to_dask_dataframe(g, columns=["y", "short"])
    with pytest.raises(zf.ZarrflowError, match="no 1-D array 'nope'"):
        to_dask_dataframe(g, columns=["nope"])


def test_empty_frame_round_trips():
    df = pd.DataFrame({"x": np.array([], dtype="f8")})
    g = from_dask_dataframe(df, "memory://df-empty", overwrite=True)
    out = to_dask_dataframe(g)
    assert out.npartitions == 1
    assert len(out.compute()) == 0 and out.compute()["x"].dtype == np.dtype("f8")


def test_column_spec_round_trips_dtypes():
    for dtype in [np.dtype("u2"), np.dtype("M8[ns]"), pd.DatetimeTZDtype("ns", "UTC")]:
        spec = ColumnSpec.from_dtype("x", dtype)
        values = pd.Series(pd.array([0, 1], dtype="int64")).astype(dtype)
        decoded = spec.decode(spec.encode(values))
        pd.testing.assert_series_equal(pd.Series(decoded), values)
