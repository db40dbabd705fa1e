"""The "zarrflow" xarray engine, checked against xarray's own zarr engine on the same stores."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest

xr = pytest.importorskip("xarray")
pytest.importorskip("zarr")  # the oracle writes and reads the stores

import zarrflow as zf  # noqa: E402
from zarrflow.integrations.xarray_backend import (  # noqa: E402
    ZarrflowBackendArray,
    ZarrflowBackendEntrypoint,
    open_dataset,
    open_datatree,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Consolidated metadata:UserWarning",
    "ignore:Failed to open Zarr store with consolidated:RuntimeWarning",
)

#: encoding keys that CF decoding sets or that round-trip chunking needs
CF_ENCODING = ("dtype", "scale_factor", "add_offset", "_FillValue", "units", "calendar", "chunks")


def _dataset() -> xr.Dataset:
    time = pd.date_range("2020-01-01", periods=10, freq="D")
    temp = np.random.default_rng(0).normal(280, 5, size=(10, 4, 6)).astype("f4")
    temp[0, 0, 0] = np.nan
    ds = xr.Dataset(
        {
            "temp": (("time", "y", "x"), temp, {"units": "K", "long_name": "temperature"}),
            "packed": (("y", "x"), np.linspace(0, 1, 24).reshape(4, 6)),
            "count": (("time",), np.arange(10, dtype="i2")),
        },
        coords={
            "time": time,
            "y": np.arange(4.0),
            "x": np.arange(6) * 10,
            "lat": (("y",), np.linspace(-10, 10, 4)),
            "height": 2.0,
        },
        attrs={"title": "demo", "history": "made in a test"},
    )
    ds["packed"][0, 0] = np.nan
    ds["packed"].encoding = {
        "dtype": "int16",
        "scale_factor": 0.01,
        "add_offset": 0.5,
        "_FillValue": -9999,
    }
    ds["count"][3] = -1
    ds["count"].encoding = {"_FillValue": -1}
    return ds.chunk({"time": 3, "x": 2})


@pytest.fixture(scope="module", params=[2, 3], ids=["v2", "v3"])
def store(request, tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("xr") / f"data-v{request.param}.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _dataset().to_zarr(path, zarr_format=request.param, mode="w")
    return path


def _assert_cf_encoding_equal(ours: xr.Dataset, theirs: xr.Dataset) -> None:
    for name in theirs.variables:
        for key in CF_ENCODING:
            a, b = ours[name].encoding.get(key), theirs[name].encoding.get(key)
            assert (a is None) == (b is None), (name, key, a, b)
            if a is not None:
                np.testing.assert_equal(np.asarray(a), np.asarray(b), err_msg=f"{name}.{key}")


def test_engine_is_registered():
    assert "zarrflow" in xr.backends.list_engines()
    engine = xr.backends.list_engines()["zarrflow"]
    assert isinstance(engine, ZarrflowBackendEntrypoint)
    assert engine.description and engine.url and engine.supports_groups
    assert "group" in engine.open_dataset_parameters
    assert "mask_and_scale" in engine.open_dataset_parameters


@pytest.mark.parametrize("chunks", [None, {}, "auto"], ids=["lazy", "preferred", "auto"])
def test_open_dataset_matches_xarray_zarr_engine(store, chunks):
    ours = xr.open_dataset(store, engine="zarrflow", chunks=chunks)
    theirs = xr.open_dataset(store, engine="zarr", chunks=chunks)
    xr.testing.assert_identical(ours, theirs)
    _assert_cf_encoding_equal(ours, theirs)
    for name in ours.variables:
        assert ours[name].dtype == theirs[name].dtype
    assert (chunks is None) == (ours["temp"].chunks is None)


def test_cf_decoding(store):
    ds = xr.open_dataset(store, engine="zarrflow")
    assert ds["time"].dtype.kind == "M"
    assert ds["time"].encoding["units"].startswith("days since 2020-01-01")
    assert ds["time"].encoding["calendar"] == "proleptic_gregorian"
    assert pd.Timestamp(ds["time"].values[-1]) == pd.Timestamp("2020-01-10")
    packed = ds["packed"].values
    assert np.isnan(packed[0, 0])
    np.testing.assert_allclose(packed.ravel()[1:], np.linspace(0, 1, 24)[1:], atol=0.005)
    assert ds["packed"].encoding["dtype"] == np.dtype("int16")
    assert ds["packed"].encoding["scale_factor"] == 0.01
    assert np.isnan(ds["count"].values[3]) and ds["count"].values[4] == 4
    assert np.isnan(ds["temp"].values[0, 0, 0])
    assert ds["temp"].attrs == {"units": "K", "long_name": "temperature"}
    assert ds.attrs == {"title": "demo", "history": "made in a test"}
    assert set(ds.coords) == {"time", "y", "x", "lat", "height"}
    assert float(ds["height"]) == 2.0


@pytest.mark.parametrize(
    "decoders",
    [{"mask_and_scale": False}, {"decode_times": False}, {"decode_cf": False}],
    ids=["no-mask", "no-times", "no-cf"],
)
def test_decoder_switches_match(store, decoders):
    ours = xr.open_dataset(store, engine="zarrflow", **decoders)
    theirs = xr.open_dataset(store, engine="zarr", **decoders)
    xr.testing.assert_identical(ours, theirs)


def test_drop_variables(store):
    ds = xr.open_dataset(store, engine="zarrflow", drop_variables=["packed", "lat"])
    assert "packed" not in ds and "lat" not in ds and "temp" in ds
    assert "count" not in xr.open_dataset(store, engine="zarrflow", drop_variables="count")


def test_chunks_preferred_are_whole_chunk_blocks(store):
    ds = xr.open_dataset(store, engine="zarrflow", chunks={}, chunks_per_task=1)
    assert ds["temp"].encoding["chunks"] == (3, 4, 2)
    assert ds["temp"].chunks == ((3, 3, 3, 1), (4,), (2, 2, 2))
    default = xr.open_dataset(store, engine="zarrflow", chunks={})
    for blocks, chunk in zip(default["temp"].chunks, (3, 4, 2), strict=True):
        assert all(b % chunk == 0 for b in blocks[:-1])  # every block holds whole chunks
    np.testing.assert_array_equal(default["temp"].values, ds["temp"].values)


def test_use_dask_gives_zarrflow_read_graph(store):
    ds = xr.open_dataset(store, engine="zarrflow", use_dask=True, chunks_per_task=1)
    data = ds["temp"].data
    assert isinstance(data, da.Array)
    assert any(name.startswith("zarrflow-read") for name in data.dask.layers)
    assert data.chunks == ((3, 3, 3, 1), (4,), (2, 2, 2))
    xr.testing.assert_identical(ds.compute(), xr.open_dataset(store, engine="zarr").compute())


def test_open_dataset_helper_exposes_dask_chunks(store):
    ds = open_dataset(store, chunks_per_task=1)
    assert ds["temp"].chunks == ((3, 3, 3, 1), (4,), (2, 2, 2))
    layers = ds["packed"].data.dask.layers
    assert any(name.startswith("zarrflow-read") for name in layers)
    rechunked = ds.chunk({"time": 6})
    assert rechunked["temp"].chunks[0] == (6, 4)
    assert any(n.startswith("zarrflow-read") for n in rechunked["temp"].data.dask.layers)
    xr.testing.assert_identical(rechunked.compute(), xr.open_dataset(store, engine="zarr"))


def test_lazy_selections_match(store):
    ours = xr.open_dataset(store, engine="zarrflow")["temp"]
    theirs = xr.open_dataset(store, engine="zarr")["temp"]
    points = {
        "time": xr.DataArray([3, 1, 1, 9], dims="p"),
        "x": xr.DataArray([5, 0, 2, 2], dims="p"),
    }
    selections = [
        {"time": 4},
        {"time": slice(8, 1, -3), "x": slice(None, None, -1)},
        {"time": [7, 2, 2], "x": [5, 0]},
        points,
        {**points, "y": xr.DataArray([0, 3, 1, 2], dims="p")},
    ]
    for sel in selections:
        xr.testing.assert_identical(ours.isel(sel).load(), theirs.isel(sel).load())


def test_backend_array_reads_through_zarrflow():
    from xarray.core import indexing

    a = zf.create("memory://xr-backend-array", shape=(6, 5), chunks=(4, 2), dtype="i4")
    expected = np.arange(30, dtype="i4").reshape(6, 5)
    a[:] = expected
    wrapped = ZarrflowBackendArray(a)
    assert wrapped.shape == (6, 5) and wrapped.dtype == np.dtype("i4")
    key = indexing.BasicIndexer((slice(5, 0, -2), 3))
    np.testing.assert_array_equal(wrapped[key], expected[5:0:-2, 3])
    rows, cols = np.array([4, 0, 4]), np.array([3, 1])
    outer = wrapped[indexing.OuterIndexer((rows, cols))]
    np.testing.assert_array_equal(outer, expected[np.ix_(rows, cols)])
    vec = wrapped[indexing.VectorizedIndexer((np.array([[1, 5]]), np.array([[0, 4]])))]
    np.testing.assert_array_equal(vec, expected[[[1, 5]], [[0, 4]]])


@pytest.mark.parametrize("fmt", [2, 3])
def test_datatree_matches_xarray(tmp_path, fmt):
    root = xr.Dataset({"a": (("x",), np.arange(4.0))}, coords={"x": [10, 20, 30, 40]})
    root.attrs["title"] = "root"
    child = xr.Dataset(
        {"b": (("x", "t"), np.ones((4, 3), "f4"))},
        coords={"t": pd.date_range("2021-01-01", periods=3)},
    )
    leaf = xr.Dataset({"c": (("z",), np.array([1, -1, 3], "i4"))})
    leaf["c"].encoding = {"_FillValue": -1}
    tree = xr.DataTree.from_dict({"/": root, "/child": child, "/child/leaf": leaf})
    path = str(tmp_path / "tree.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree.to_zarr(path, zarr_format=fmt, mode="w")
    ours = xr.open_datatree(path, engine="zarrflow")
    xr.testing.assert_identical(ours, xr.open_datatree(path, engine="zarr"))
    assert np.isnan(ours["child/leaf/c"].values[1])
    sub = xr.open_datatree(path, engine="zarrflow", group="child", chunks={})
    xr.testing.assert_identical(sub, xr.open_datatree(path, engine="zarr", group="child"))
    leaf_ds = xr.open_dataset(path, engine="zarrflow", group="/child/leaf")
    xr.testing.assert_identical(leaf_ds, xr.open_dataset(path, engine="zarr", group="child/leaf"))
    dask_tree = open_datatree(path, chunks_per_task=1)
    assert any(n.startswith("zarrflow-read") for n in dask_tree["child/b"].data.dask.layers)
    assert dask_tree["child/b"].chunks is not None


def test_guess_can_open(tmp_path):
    engine = ZarrflowBackendEntrypoint()
    assert engine.guess_can_open("s3://bucket/data.zarr/")
    assert engine.guess_can_open(tmp_path / "missing.zarr")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert not engine.guess_can_open(plain)
    zf.open_group(str(plain), mode="w")
    assert engine.guess_can_open(plain) and engine.guess_can_open(str(plain))
    assert not engine.guess_can_open(str(tmp_path / "data.nc"))
    assert not engine.guess_can_open(b"bytes")
    assert engine.guess_can_open(zf.open_group(str(plain), mode="r"))


def test_opens_a_zarrflow_group_object():
    g = zf.open_group("memory://xr-group-object", mode="w")
    sub = g.create_group("sub")
    v = sub.create_array("v", shape=(4,), chunks=(2,), dtype="f8", dimension_names=["x"])
    v[:] = [1.0, 2.0, 3.0, 4.0]
    ds = xr.open_dataset(g, engine="zarrflow", group="sub")
    assert ds["v"].values.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_missing_dimension_names_is_a_clear_error():
    g = zf.open_group("memory://xr-no-dims", mode="w", zarr_format=2)
    g.create_array("v", shape=(4,), chunks=(2,), dtype="f8")
    with pytest.raises(zf.ZarrflowError, match="_ARRAY_DIMENSIONS"):
        xr.open_dataset("memory://xr-no-dims", engine="zarrflow")


def test_unreadable_variable_names_drop_variables(tmp_path):
    ds = xr.Dataset({"v": (("s",), np.arange(3.0))}, coords={"s": ["a", "bb", "c"]})
    path = str(tmp_path / "strings.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(path, zarr_format=3, mode="w")
    try:
        opened = xr.open_dataset(path, engine="zarrflow")
    except zf.ZarrflowError as e:  # fixed-length unicode is not a v3 core data type
        assert "drop_variables=['s']" in str(e)
        opened = xr.open_dataset(path, engine="zarrflow", drop_variables=["s"])
        assert opened["v"].values.tolist() == [0.0, 1.0, 2.0]
    else:  # zarrflow learned the type
        xr.testing.assert_identical(opened, xr.open_dataset(path, engine="zarr"))


def test_unknown_keyword_is_refused(store):
    with pytest.raises(TypeError, match="unexpected keyword"):
        xr.open_dataset(store, engine="zarrflow", not_an_option=1)


# -- identical to engine="zarr": data kinds, formats, consolidation, chunks, encoding ----------
def _cf_dataset() -> xr.Dataset:
    """Datetime coordinate with bounds, bool, packed int, NaN-filled float, timedelta."""
    time = pd.date_range("2001-01-01", periods=12, freq="6h")
    bounds = np.stack([time.values, (time + pd.Timedelta("6h")).values], axis=1)
    rng = np.random.default_rng(1)
    tas = rng.normal(288, 4, size=(12, 5, 7))
    tas[2:4] = np.nan
    ds = xr.Dataset(
        {
            "tas": (("time", "lat", "lon"), tas, {"units": "K", "cell_methods": "time: mean"}),
            "wet": (("time", "lat"), rng.random((12, 5)) > 0.5),
            "precip": (("time", "lat"), rng.random((12, 5)) * 10),
            "time_bnds": (("time", "nv"), bounds),
            "lag": (("time",), pd.to_timedelta(np.arange(12), "h").values),
            "nan_only": (("lat",), np.full(5, np.nan)),
        },
        coords={
            "time": time,
            "lat": np.linspace(-60, 60, 5),
            "lon": np.arange(7) * 50.0,
        },
        attrs={"Conventions": "CF-1.8"},
    )
    ds["time"].attrs["bounds"] = "time_bnds"
    ds["precip"][0, 0] = np.nan
    ds["precip"].encoding = {
        "dtype": "int16",
        "scale_factor": 0.001,
        "add_offset": 5.0,
        "_FillValue": np.int16(-32768),
    }
    return ds.chunk({"time": 5, "lat": 2})


def _write(ds: xr.Dataset, path: str, fmt: int, consolidated: bool, **kwargs) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(path, zarr_format=fmt, consolidated=consolidated, mode="w", **kwargs)
    return path


@pytest.fixture(
    scope="module",
    params=[(2, False), (2, True), (3, False), (3, True)],
    ids=["v2", "v2-consolidated", "v3", "v3-consolidated"],
)
def cf_store(request, tmp_path_factory) -> str:
    fmt, consolidated = request.param
    path = str(tmp_path_factory.mktemp("cf") / "cf.zarr")
    return _write(_cf_dataset(), path, fmt, consolidated)


def _codec_json(value):
    """A codec (zarr-python object, numcodecs object or JSON config) as comparable JSON."""
    import json

    if isinstance(value, tuple | list):
        return [_codec_json(v) for v in value]
    if value is None or isinstance(value, dict | int):
        return json.loads(json.dumps(value))
    if hasattr(value, "to_dict"):  # zarr-python v3 codec
        return json.loads(json.dumps(value.to_dict()))
    return value.get_config()  # numcodecs


def _assert_zarr_encoding_equal(ours: xr.Dataset, theirs: xr.Dataset) -> None:
    for name in theirs.variables:
        a, b = ours[name].encoding, theirs[name].encoding
        for key in ("compressors", "filters", "serializer", "shards"):
            assert (key in a) == (key in b), (name, key)
            assert _codec_json(a.get(key)) == _codec_json(b.get(key)), (name, key)
        assert tuple(a["chunks"]) == tuple(b["chunks"]), name
        assert a["preferred_chunks"] == b["preferred_chunks"], name


@pytest.mark.parametrize("decode_coords", [True, "all"])
def test_cf_dataset_identical_to_zarr_engine_eager(cf_store, decode_coords):
    ours = xr.open_dataset(cf_store, engine="zarrflow", decode_coords=decode_coords).load()
    theirs = xr.open_dataset(cf_store, engine="zarr", decode_coords=decode_coords).load()
    xr.testing.assert_identical(ours, theirs)
    _assert_zarr_encoding_equal(ours, theirs)
    assert ours["tas"].isnull().sum() == 2 * 5 * 7 and ours["wet"].dtype == bool
    assert ours["time"].dtype.kind == "M" and ours["lag"].dtype.kind == "m"
    assert ("time_bnds" in ours.coords) == (decode_coords == "all")


@pytest.mark.parametrize("chunks", [{}, "auto", {"time": 10}], ids=["stored", "auto", "explicit"])
def test_cf_dataset_identical_to_zarr_engine_with_dask_chunks(cf_store, chunks):
    ours = xr.open_dataset(cf_store, engine="zarrflow", chunks=chunks)
    theirs = xr.open_dataset(cf_store, engine="zarr", chunks=chunks)
    for name in theirs.variables:
        assert ours[name].chunks == theirs[name].chunks, name
    if chunks == {}:
        assert ours["tas"].chunks == ((5, 5, 2), (2, 2, 1), (7,))  # the stored chunks
    xr.testing.assert_identical(ours.compute(), theirs.compute())


def test_consolidated_keyword_as_the_zarr_engine(tmp_path):
    plain = _write(_cf_dataset(), str(tmp_path / "plain.zarr"), 3, False)
    for engine in ("zarr", "zarrflow"):
        with pytest.raises(Exception, match="onsolidated"):
            xr.open_dataset(plain, engine=engine, consolidated=True)
    xr.testing.assert_identical(
        xr.open_dataset(plain, engine="zarrflow", consolidated=False),
        xr.open_dataset(plain, engine="zarr", consolidated=False),
    )
    cons = _write(_cf_dataset(), str(tmp_path / "cons.zarr"), 2, True)
    xr.testing.assert_identical(
        xr.open_dataset(cons, engine="zarrflow", consolidated=True, cache_members=False),
        xr.open_dataset(cons, engine="zarr", consolidated=True),
    )
    with pytest.raises(TypeError, match="disagree"):
        xr.open_dataset(cons, engine="zarrflow", consolidated=True, use_consolidated=False)
    with pytest.raises(zf.ZarrflowError, match="mode must be 'r'"):
        xr.open_dataset(cons, engine="zarrflow", mode="r+")


def test_group_and_fill_value_mask_keywords(tmp_path):
    path = str(tmp_path / "groups.zarr")
    ds = xr.Dataset({"v": (("x",), np.array([1.0, 0.0, 3.0]))})
    for fmt in (2, 3):
        _write(ds, path + str(fmt), fmt, False, group="sub/leaf")
        for mask in (None, True, False):
            ours = xr.open_dataset(
                path + str(fmt),
                engine="zarrflow",
                group="sub/leaf",
                use_zarr_fill_value_as_mask=mask,
            )
            # the zarr engine's store reads the keyword (its open_dataset passes None on)
            store = xr.backends.ZarrStore.open_group(
                path + str(fmt), group="sub/leaf", mode="r", use_zarr_fill_value_as_mask=mask
            )
            theirs = xr.open_dataset(store)
            xr.testing.assert_identical(ours, theirs)


def test_sharded_dataset_chunks_and_encoding_match(tmp_path):
    ds = xr.Dataset({"v": (("t", "x"), np.arange(24 * 30, dtype="f4").reshape(24, 30))})
    path = _write(
        ds,
        str(tmp_path / "sharded.zarr"),
        3,
        False,
        encoding={"v": {"chunks": (4, 5), "shards": (8, 15)}},
    )
    ours = xr.open_dataset(path, engine="zarrflow", chunks={})
    theirs = xr.open_dataset(path, engine="zarr", chunks={})
    assert ours["v"].encoding["chunks"] == (4, 5) and ours["v"].encoding["shards"] == (8, 15)
    assert ours["v"].chunks == theirs["v"].chunks
    _assert_zarr_encoding_equal(ours, theirs)
    xr.testing.assert_identical(ours.compute(), theirs.compute())
    grouped = xr.open_dataset(path, engine="zarrflow", chunks={}, task_blocks=True)
    blocks = grouped["v"].chunks  # zarrflow's read-task blocks: whole shards (grouped)
    assert all(n % s == 0 for axis, s in zip(blocks, (8, 15), strict=True) for n in axis[:-1])
    assert blocks != ours["v"].chunks and len(blocks[0]) * len(blocks[1]) <= 6
    xr.testing.assert_identical(grouped.compute(), theirs.compute())


@pytest.mark.parametrize("fmt", [2, 3])
def test_round_trip_through_zarrflow_keeps_the_codecs(tmp_path, fmt):
    import numcodecs

    ds = _cf_dataset().chunk({"time": 6, "lat": 5})  # whole shards per dask block
    if fmt == 2:
        codecs = {"compressors": [numcodecs.Zlib(level=2)], "filters": [numcodecs.Delta("f8")]}
        encoding = {"tas": codecs, "lat": {"compressors": [numcodecs.BZ2(level=3)]}}
    else:
        gzip = {"name": "gzip", "configuration": {"level": 4}}
        encoding = {
            "tas": {"compressors": [gzip], "chunks": (3, 5, 7), "shards": (6, 5, 7)},
            "lat": {
                "compressors": [],
                "serializer": {"name": "bytes", "configuration": {"endian": "big"}},
            },
        }
    p = _write(ds, str(tmp_path / "p.zarr"), fmt, False, encoding=encoding)
    q = str(tmp_path / "q.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xr.open_dataset(p, engine="zarrflow").to_zarr(q, zarr_format=fmt, consolidated=False)
    src, dst = zf.open_group(p, mode="r"), zf.open_group(q, mode="r")
    assert sorted(src) == sorted(dst)
    for name in src:
        a, b = src[name], dst[name]
        assert (a.compressors, a.filters, a.serializer) == (b.compressors, b.filters, b.serializer)
        assert (a.chunks, a.shards, a.dtype) == (b.chunks, b.shards, b.dtype), name
    assert dst["tas"].compressors[0] != dst["time"].compressors[0]  # the choice survived
    xr.testing.assert_identical(
        xr.open_dataset(q, engine="zarr").load(), xr.open_dataset(p, engine="zarr").load()
    )
