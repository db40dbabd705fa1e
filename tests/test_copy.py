"""Copies that keep what xarray needs and cannot destroy data; ``to_zarr``'s write modes.

Everything here runs in-process on real stores (local directories, zip
files, memory); the console script's side is in ``test_cli.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest

import zarrflow as zf
from zarrflow.integrations.copy_target import CopyError, location, refuse_overlap
from zarrflow.integrations.copying import copy_node
from zarrflow.integrations.dataframe import from_dask_dataframe
from zarrflow.integrations.statistics import array_statistics
from zarrflow.integrations.xarray_conventions import (
    decode_fill_value_attr,
    encode_fill_value_attr,
)


def _files(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def array_dir(tmp_path: Path) -> Path:
    """A v3 array with every chunk written (16 chunks)."""
    path = tmp_path / "a.zarr"
    a = zf.create(path, shape=(40, 40), chunks=(10, 10), dtype="i4")
    a[:] = np.arange(1600, dtype="i4").reshape(40, 40)
    return path


# -- overlap: refused before anything is read or written --------------------------------
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("dst", ["same", "slash", "dotdot", "file-url", "inside", "symlink"])
def test_a_destination_overlapping_the_source_is_refused_untouched(
    array_dir, tmp_path, dst, overwrite
) -> None:
    """Shown failing once with ``refuse_overlap`` switched off (an early return): every
    case fails; ``same``/``--overwrite`` then deleted the source's chunks (issue 13)."""
    before = _files(array_dir)
    link = tmp_path / "link.zarr"
    link.symlink_to(array_dir)
    target = {
        "same": str(array_dir),
        "slash": f"{array_dir}/",
        "dotdot": str(tmp_path / "x" / ".." / "a.zarr"),
        "file-url": f"file://{array_dir}",
        "inside": str(array_dir / "copy"),
        "symlink": str(link),
    }[dst]
    with pytest.raises(CopyError, match="overlaps the source"):
        copy_node(array_dir, target, overwrite=overwrite)
    assert _files(array_dir) == before
    assert not (array_dir / "copy").exists()


def test_a_destination_holding_the_source_is_refused(tmp_path) -> None:
    g = zf.open_group(tmp_path / "g.zarr", mode="w")
    g.create_array("x", shape=(4,), chunks=(2,), dtype="i1")[:] = 7
    before = _files(tmp_path / "g.zarr")
    with pytest.raises(CopyError, match="the source lies inside it"):
        copy_node(tmp_path / "g.zarr" / "x", tmp_path / "g.zarr", overwrite=True)
    assert _files(tmp_path / "g.zarr") == before


def test_locations_normalise_urls_and_real_paths(tmp_path) -> None:
    assert location("s3://b//x/./y/") == location("S3://b/x/y") == "s3://b/x/y"
    assert location("memory://m/") == location("memory://m")
    assert location(zf.storage.LocalStore(tmp_path)) == location(str(tmp_path))
    refuse_overlap("s3://b/x", "s3://b/xy")  # a shared prefix is not containment
    with pytest.raises(CopyError, match="inside the source"):
        refuse_overlap("memory://m", "memory://m/sub")


# -- a failed copy leaves nothing that looks complete ---------------------------------------
def _corrupt_one_chunk(path: Path) -> None:
    (path / "c" / "3" / "3").write_bytes(b"not zstd at all")


def test_a_failed_local_copy_leaves_no_destination(array_dir, tmp_path) -> None:
    """Shown failing once with staging switched off (``Destination.writing`` yielding
    ``dst`` itself): the copy then left a half-written ``out.zarr`` behind."""
    _corrupt_one_chunk(array_dir)
    dst = tmp_path / "out.zarr"
    with pytest.raises(CopyError, match="nothing was written there") as info:
        copy_node(array_dir, dst)
    assert "c/3/3" in str(info.value)  # the cause names the chunk
    assert sorted(os.listdir(tmp_path)) == ["a.zarr"]  # no destination, no temporary left


def test_a_failed_overwrite_keeps_the_old_destination(array_dir, tmp_path) -> None:
    old = tmp_path / "old.zarr"
    zf.create(old, shape=(3,), chunks=(3,), dtype="u1")[:] = np.array([1, 2, 3], "u1")
    before = _files(old)
    _corrupt_one_chunk(array_dir)
    with pytest.raises(CopyError):
        copy_node(array_dir, old, overwrite=True)
    assert _files(old) == before
    assert sorted(os.listdir(tmp_path)) == ["a.zarr", "old.zarr"]


def test_a_failed_zip_copy_leaves_no_archive(array_dir, tmp_path) -> None:
    _corrupt_one_chunk(array_dir)
    with pytest.raises(CopyError):
        copy_node(array_dir, tmp_path / "out.zip")
    assert sorted(os.listdir(tmp_path)) == ["a.zarr"]


def test_a_failed_copy_to_memory_removes_what_it_wrote(array_dir) -> None:
    """Shown failing once with the clean-up switched off (the raw error, keys left)."""
    _corrupt_one_chunk(array_dir)
    url = "memory://copy-failed-dst"
    with pytest.raises(CopyError, match=r"the \d+ keys it had written were removed"):
        copy_node(array_dir, url)
    assert list(zf.storage.store_from_url(url).list_prefix("")) == []


def test_overwrite_replaces_a_node_but_never_a_foreign_directory(array_dir, tmp_path) -> None:
    old = tmp_path / "old.zarr"
    zf.create(old, shape=(3,), chunks=(3,), dtype="u1")[:] = 1
    b = copy_node(array_dir, old, overwrite=True)
    assert b.shape == (40, 40) and int(b[:].sum()) == int(np.arange(1600).sum())
    assert sorted(os.listdir(tmp_path)) == ["a.zarr", "old.zarr"]  # the old one is gone
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(CopyError, match="holds no Zarr array or group"):
        copy_node(array_dir, foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_without_overwrite_an_existing_node_is_refused_untouched(array_dir, tmp_path) -> None:
    old = tmp_path / "old.zarr"
    zf.open_group(old, mode="w")
    before = _files(old)
    with pytest.raises(zf.ContainsGroupError):
        copy_node(array_dir, old)
    assert _files(old) == before


# -- what xarray needs ------------------------------------------------------------------------
def _dataset():
    xr = pytest.importorskip("xarray")
    values = np.arange(48, dtype="f4").reshape(12, 4)
    values[1, 2] = np.nan
    ds = xr.Dataset(
        {"temp": (("time", "x"), values, {"units": "K", "long_name": "temperature"})},
        coords={"time": pd.date_range("2024-01-01", periods=12, freq="D"), "x": np.arange(4)},
        attrs={"title": "copy test"},
    )
    ds["temp"].encoding.update({"_FillValue": np.nan, "chunks": (5, 2)})
    return ds


@pytest.mark.parametrize(("src_format", "dst_format"), [(2, 3), (3, 2), (2, 2), (3, 3)])
def test_an_xarray_dataset_copies_identical_across_formats(tmp_path, src_format, dst_format):
    xr = pytest.importorskip("xarray")
    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    _dataset().to_zarr(src, zarr_format=src_format, mode="w", consolidated=True)
    copy_node(src, dst, zarr_format=dst_format)
    with (
        xr.open_dataset(src, engine="zarr") as expected,
        xr.open_dataset(dst, engine="zarr", consolidated=True) as got,
    ):
        xr.testing.assert_identical(got, expected)
        np.testing.assert_array_equal(got["temp"].values, expected["temp"].values)
    temp = zf.open_array(dst, path="temp", mode="r")
    assert temp.dimension_names == ("time", "x")
    assert np.isnan(temp.fill_value) and temp.attrs["units"] == "K"
    if dst_format == 2:
        attrs = json.loads((dst / "temp" / ".zattrs").read_text())
        assert attrs["_ARRAY_DIMENSIONS"] == ["time", "x"] and "_FillValue" not in attrs
    else:
        meta = json.loads((dst / "temp" / "zarr.json").read_text())
        assert meta["dimension_names"] == ["time", "x"]
        assert "_ARRAY_DIMENSIONS" not in meta["attributes"]


@pytest.mark.parametrize("dst_format", [2, 3])
def test_consolidated_metadata_is_kept_and_readable_by_zarr_python(tmp_path, dst_format):
    zarr = pytest.importorskip("zarr")
    src = tmp_path / "src.zarr"
    g = zf.open_group(src, mode="w", zarr_format=2, attributes={"k": 1})
    g.create_group("sub").create_array("y", shape=(6,), chunks=(3,), dtype="f8")[:] = 0.5
    zf.consolidate_metadata(src)
    plain = tmp_path / "plain.zarr"
    zf.open_group(plain, mode="w", zarr_format=2).create_array("z", shape=(2,), dtype="i1")
    copied = copy_node(src, tmp_path / "dst.zarr", zarr_format=dst_format)
    assert copied.zarr_format == dst_format
    root = zarr.open_consolidated(str(tmp_path / "dst.zarr"), zarr_format=dst_format)
    assert root.attrs["k"] == 1
    np.testing.assert_array_equal(root["sub/y"][:], np.full(6, 0.5))
    copy_node(plain, tmp_path / "plain-copy.zarr")  # not consolidated: neither is the copy
    assert not (tmp_path / "plain-copy.zarr" / ".zmetadata").exists()


def test_fill_value_attribute_round_trips() -> None:
    for value, dtype in ((np.nan, "f4"), (-9999.0, "f8"), (-1, "i2"), (True, "?")):
        encoded = encode_fill_value_attr(value, np.dtype(dtype))
        decoded = decode_fill_value_attr(encoded, np.dtype(dtype))
        assert decoded == value or (np.isnan(decoded) and np.isnan(value))
    assert decode_fill_value_attr("not base64!", np.dtype("f8")) is None


# -- huge arrays: refused up front, or read chunk by chunk ------------------------------------
def test_a_copy_too_large_for_one_graph_is_refused_before_writing(tmp_path) -> None:
    src = zf.create(tmp_path / "huge.zarr", shape=(10**15,), chunks=(10**6,), dtype="f8")
    src[:3] = [1, 2, 3]
    with pytest.raises(zf.ZarrflowError, match="1,000,000,000 chunks"):
        copy_node(tmp_path / "huge.zarr", tmp_path / "out.zarr")
    one = zf.create(tmp_path / "one.zarr", shape=(10**15,), chunks=(10**15,), dtype="f8")
    with pytest.raises(zf.ZarrflowError, match=r"one chunk \(1000000000000000,\) is 7276\.0 TiB"):
        copy_node(one.store.url, tmp_path / "out.zarr")
    assert sorted(os.listdir(tmp_path)) == ["huge.zarr", "one.zarr"]


def test_stats_read_only_stored_chunks_and_count_the_rest_as_fill(tmp_path) -> None:
    data = np.full((45, 33), -2.0)
    a = zf.create(tmp_path / "s.zarr", shape=data.shape, chunks=(10, 10), fill_value=-2.0)
    block = np.random.default_rng(3).normal(size=(17, 12))
    block[0, 0] = np.nan
    a[12:29, 25:37] = block[:, :8]  # touches the ragged last column of chunks
    data[12:29, 25:33] = block[:, :8]
    r = array_statistics(a)
    assert r["chunks_read"] == a.nchunks_initialized < a.nchunks
    assert r["count"] == np.count_nonzero(~np.isnan(data)) and r["nan_count"] == 1
    assert r["mean"] == pytest.approx(np.nanmean(data), rel=1e-12)
    assert r["std"] == pytest.approx(np.nanstd(data), rel=1e-12)
    assert (r["min"], r["max"]) == (np.nanmin(data), np.nanmax(data))


# -- to_zarr and from_dask_dataframe modes ----------------------------------------------------
def test_to_zarr_refuses_an_existing_node_by_default_and_leaves_it(tmp_path) -> None:
    """Before mode ``"w-"`` was the default this failed: ``to_zarr(x * 0, url)`` wrote zeros."""
    url = str(tmp_path / "t.zarr")
    x = da.arange(20, chunks=5)
    a = zf.to_zarr(x, url, chunks=(5,))
    before = _files(Path(url))
    with pytest.raises(zf.ContainsArrayError, match="refuses to replace it"):
        zf.to_zarr(x * 0, url)
    with pytest.raises(zf.ContainsArrayError):
        zf.to_zarr(x * 0, url, mode="x")
    zf.open_group(tmp_path / "g.zarr", mode="w")
    with pytest.raises(zf.ContainsGroupError):
        zf.to_zarr(x, str(tmp_path / "g.zarr"), mode="a")
    assert _files(Path(url)) == before
    np.testing.assert_array_equal(a[:], np.arange(20))


def test_to_zarr_modes_replace_append_and_region(tmp_path) -> None:
    url = str(tmp_path / "t.zarr")
    zf.to_zarr(da.arange(20, chunks=5), url, chunks=(5,))
    b = zf.to_zarr(da.ones(6, chunks=3, dtype="i2"), url, mode="w")  # replaced: new shape
    assert (b.shape, b.dtype) == ((6,), np.dtype("i2"))
    zf.to_zarr(da.full(6, 4, chunks=3, dtype="i2"), url, mode="r+")  # written into
    np.testing.assert_array_equal(zf.open_array(url, mode="r")[:], np.full(6, 4))
    zf.to_zarr(np.array([9, 9], dtype="i2"), url, region=(slice(1, 3),))  # region: r+
    np.testing.assert_array_equal(zf.open_array(url, mode="r")[:], [4, 9, 9, 4, 4, 4])
    c = zf.to_zarr(da.arange(4, chunks=2), str(tmp_path / "new.zarr"), mode="a")  # created
    np.testing.assert_array_equal(c[:], np.arange(4))
    with pytest.raises(zf.ArrayNotFoundError, match="writes into an existing array"):
        zf.to_zarr(da.arange(4, chunks=2), str(tmp_path / "missing.zarr"), mode="r+")
    with pytest.raises(zf.ZarrflowError, match="use mode 'r\\+' or 'a'"):
        zf.to_zarr(np.ones(2), url, region=(slice(0, 2),), mode="w")
    with pytest.raises(zf.ZarrflowError, match="contradicts mode='a'"):
        zf.to_zarr(np.ones(2), url, overwrite=True, mode="a")
    assert not (tmp_path / "missing.zarr").exists()


def test_from_dask_dataframe_modes(tmp_path) -> None:
    url = str(tmp_path / "df.zarr")
    from_dask_dataframe(pd.DataFrame({"x": [1, 2]}), url)
    before = _files(Path(url))
    with pytest.raises(zf.ContainsGroupError, match="mode='w'"):
        from_dask_dataframe(pd.DataFrame({"x": [3]}), url)
    with pytest.raises(zf.ZarrflowError, match="not supported"):
        from_dask_dataframe(pd.DataFrame({"x": [3]}), url, mode="a")
    assert _files(Path(url)) == before
    g = from_dask_dataframe(pd.DataFrame({"y": [2.5]}), url, mode="w")
    assert g.keys() == ["index", "y"]
