"""Store objects accepted wherever a URL is: Path, FSMap, (filesystem, path), zarr-python stores."""

from __future__ import annotations

import pathlib

import fsspec
import numpy as np
import pytest
import zarr
import zarr.storage

import zarrflow as zf
from zarrflow.storage import FsspecStore, LocalStore, store_from_url
from zarrflow.storage.zarr_adapter import ZarrPythonStore

DATA = np.arange(60, dtype="i4").reshape(6, 10)


def _roundtrip(target, read_back):
    """Write with zarrflow to ``target``, read with zarr-python through ``read_back``."""
    a = zf.create(target, shape=DATA.shape, chunks=(4, 3), shards=(4, 6), dtype="i4")
    a[:] = DATA
    np.testing.assert_array_equal(zf.open(target, mode="r")[:], DATA)
    np.testing.assert_array_equal(zarr.open_array(read_back, mode="r")[:], DATA)


def test_pathlib_path(tmp_path):
    target = pathlib.Path(tmp_path / "p.zarr")
    assert isinstance(store_from_url(target), LocalStore)
    _roundtrip(target, str(target))


def test_fsspec_mapper_and_filesystem_path_pair(tmp_path):
    local = fsspec.filesystem("file")
    assert isinstance(store_from_url(local.get_mapper(str(tmp_path / "m"))), LocalStore)
    _roundtrip(local.get_mapper(str(tmp_path / "m.zarr")), str(tmp_path / "m.zarr"))
    _roundtrip((local, str(tmp_path / "t.zarr")), str(tmp_path / "t.zarr"))
    memory = fsspec.filesystem("memory")
    store = store_from_url((memory, "/conv-pair/x.zarr"))
    assert isinstance(store, FsspecStore) and store.url == "memory:///conv-pair/x.zarr"
    _roundtrip(memory.get_mapper("/conv-map/x.zarr"), "memory:///conv-map/x.zarr")
    with pytest.raises(zf.StoreError, match="already configured"):
        zf.open((memory, "/x"), storage_options={"a": 1})


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_zarr_python_stores(tmp_path, kind):
    zs = zarr.storage.MemoryStore() if kind == "memory" else zarr.storage.LocalStore(tmp_path)
    assert isinstance(store_from_url(zs), ZarrPythonStore)
    g = zf.open_group(zs, mode="w")
    x = g.create_array("x", data=DATA, chunks=(4, 3), shards=(4, 6))
    assert sorted(zarr.open_group(zs, mode="r").array_keys()) == ["x"]
    np.testing.assert_array_equal(zarr.open_array(zs, path="x", mode="r")[:], DATA)
    # parallel paths: chunk_stream, to_dask and a partial (read-modify-write) update
    assert sum(int(c.sum()) for _, c in x.chunk_stream(parallel=3)) == int(DATA.sum())
    assert int(x.to_dask().sum().compute(scheduler="threads")) == int(DATA.sum())
    x[1:3, 2:8] = -1
    expected = DATA.copy()
    expected[1:3, 2:8] = -1
    np.testing.assert_array_equal(zarr.open_array(zs, path="x", mode="r")[:], expected)
    z = zarr.create_array(zs, name="y", shape=(5,), chunks=(2,), dtype="f8")
    z[:] = np.arange(5.0)
    np.testing.assert_array_equal(zf.open_array(zs, path="y", mode="r")[:], np.arange(5.0))
    with pytest.raises(zf.ReadOnlyError):
        zf.open_array(zs, path="y", mode="r")[0] = 1
    assert zf.open_array(zs, path="y", mode="r").nbytes_stored() == z.nbytes_stored()
    if kind == "local":  # the array travels to other processes as its zarr-python store
        import pickle

        np.testing.assert_array_equal(pickle.loads(pickle.dumps(x))[:], expected)


def test_icechunk_session_store_reads_and_writes(tmp_path):
    import icechunk  # in the test extra

    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    g = zf.open_group(session.store, mode="w")
    a = g.create_array("t", shape=(8, 8), chunks=(2, 4), dtype="f4", fill_value=np.nan)
    a[:4] = 1.5
    snapshot = session.commit("written by zarrflow")
    # zarr-python reads what zarrflow wrote, from the committed snapshot
    readonly = repo.readonly_session(snapshot_id=snapshot)
    got = zarr.open_array(readonly.store, path="t", mode="r")[:]
    assert np.all(got[:4] == 1.5) and np.isnan(got[4:]).all()
    # zarrflow reads what zarr-python wrote, and reads only its own snapshot
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="t", mode="r+")[4:] = 2.0
    session.commit("written by zarr-python")
    latest = repo.readonly_session("main")
    np.testing.assert_array_equal(zf.open_array(latest.store, path="t", mode="r")[4:], 2.0)
    old = zf.open_array(repo.readonly_session(snapshot_id=snapshot).store, path="t", mode="r")
    assert np.isnan(old[4:]).all()


def test_xarray_engine_reads_an_icechunk_session(tmp_path):
    import warnings

    import icechunk  # in the test extra
    import xarray as xr

    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    ds = xr.Dataset({"v": (("x",), np.arange(5.0), {"units": "m"})}, coords={"x": [1, 2, 3, 4, 5]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(session.store, consolidated=False, mode="w")
    session.commit("dataset")
    store = repo.readonly_session("main").store
    ours = xr.open_dataset(store, engine="zarrflow", consolidated=False, chunks={})
    theirs = xr.open_dataset(store, engine="zarr", consolidated=False, chunks={})
    assert ours["v"].chunks == theirs["v"].chunks
    xr.testing.assert_identical(ours.compute(), theirs.compute())
