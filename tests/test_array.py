"""The Array: creation, selection, fill values, resize/append, attributes, errors, safety."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import dask
import numpy as np
import pytest

import zarrflow as zf
from zarrflow.storage import LocalStore, MemoryStore


@pytest.fixture(params=[2, 3], ids=["v2", "v3"])
def zarr_format(request):
    return request.param


def make(store, zarr_format=3, shape=(20, 30), chunks=(6, 7), dtype="int32", **kw):
    return zf.create(store, shape=shape, chunks=chunks, dtype=dtype, zarr_format=zarr_format, **kw)


def test_create_write_reopen_read(tmp_path, zarr_format):
    url = str(tmp_path / "a.zarr")
    a = make(url, zarr_format)
    data = np.arange(600, dtype="int32").reshape(20, 30)
    a[:] = data
    b = zf.open(url, mode="r")
    assert isinstance(b, zf.Array)
    assert (b.shape, b.chunks, b.dtype, b.zarr_format) == ((20, 30), (6, 7), np.int32, zarr_format)
    np.testing.assert_array_equal(b[:], data)
    assert b.chunk_grid_shape == (4, 5) and b.nchunks == 20
    assert b.nchunks_initialized == 20


@pytest.mark.parametrize(
    "selection",
    [
        (slice(None),),
        (3, slice(2, 25)),
        (-1, -3),
        (slice(None, None, 3), slice(1, None, 4)),
        (slice(None, None, -2), slice(25, 2, -3)),
        (Ellipsis, 4),
        (slice(5, 5),),
        (slice(18, 100), slice(-5, None)),
    ],
)
def test_basic_selection_matches_numpy(memory_store, selection):
    a = make(memory_store)
    data = np.random.default_rng(0).integers(-1000, 1000, (20, 30)).astype("int32")
    a[:] = data
    np.testing.assert_array_equal(a[selection], data[selection])
    expected = data.copy()
    value = np.full(np.shape(expected[selection]), 7, dtype="int32")
    expected[selection] = value
    a[selection] = value
    np.testing.assert_array_equal(a[:], expected)


def test_scalar_read_and_broadcast_write(memory_store):
    a = make(memory_store, fill_value=5)
    assert a[3, 4] == 5 and np.ndim(a[3, 4]) == 0
    a[2:9, :] = 11
    assert int(a[2:9, :].min()) == 11 and a[1, 0] == 5


def test_get_set_slice(memory_store):
    a = make(memory_store)
    block = np.arange(4 * 9, dtype="int32").reshape(4, 9)
    a.set_slice(block, start=(5, 10))
    np.testing.assert_array_equal(a.get_slice(start=(5, 10), stop=(9, 19)), block)
    np.testing.assert_array_equal(
        a.get_slice(start=(5, 10), stop=(9, 19), step=(2, 3)), block[::2, ::3]
    )
    with pytest.raises(zf.ValueShapeError):
        a.set_slice(np.zeros(5, "int32"), start=(0, 0))


def test_orthogonal_and_coordinate_selection(memory_store):
    a = make(memory_store)
    data = np.arange(600, dtype="int32").reshape(20, 30)
    a[:] = data
    rows, cols = np.array([0, 19, 7, 7]), np.array([29, 0, 3])
    np.testing.assert_array_equal(a.oindex[rows, cols], data[np.ix_(rows, cols)])
    mask = np.zeros(30, bool)
    mask[[1, 8, 22]] = True
    np.testing.assert_array_equal(a.oindex[2:6, mask], data[2:6][:, mask])
    pts = (np.array([0, 19, 5]), np.array([29, 0, 14]))
    np.testing.assert_array_equal(a.vindex[pts], data[pts])
    full_mask = data % 7 == 0
    np.testing.assert_array_equal(a.vindex[full_mask], data[full_mask])
    a.vindex[pts] = -1
    data[pts] = -1
    a.oindex[rows[:2], cols[:2]] = -2
    data[np.ix_(rows[:2], cols[:2])] = -2
    np.testing.assert_array_equal(a[:], data)


def test_missing_chunks_read_fill_and_fill_chunks_not_stored(memory_store, zarr_format):
    a = make(memory_store, zarr_format, dtype="float32", fill_value=np.nan)
    assert np.isnan(a[:]).all() and a.nchunks_initialized == 0
    a[0:6, 0:7] = 1.0
    assert a.nchunks_initialized == 1
    a[0:6, 0:7] = np.nan  # back to the fill value: the chunk is deleted
    assert a.nchunks_initialized == 0
    b = make(MemoryStore(), zarr_format, dtype="float32", fill_value=0, write_empty_chunks=True)
    b[:] = 0
    assert b.nchunks_initialized == b.nchunks


def test_edge_chunks_hold_fill_beyond_the_shape(memory_store):
    a = make(memory_store, shape=(10,), chunks=(4,), dtype="int16", fill_value=-1)
    a[:] = np.arange(10, dtype="int16")
    stored_last = a.read_chunk((2,))
    assert stored_last.tolist() == [8, 9, -1, -1]


def test_resize_shrink_then_grow_shows_no_stale_data(memory_store, zarr_format):
    a = make(memory_store, zarr_format, shape=(10, 10), chunks=(4, 4), fill_value=0)
    a[:] = 9
    a.resize(5, 6)
    assert a.shape == (5, 6) and a.nchunks_initialized == 4
    a.resize((10, 10))
    expected = np.zeros((10, 10), "int32")
    expected[:5, :6] = 9
    np.testing.assert_array_equal(a[:], expected)
    assert zf.open(memory_store, mode="r").shape == (10, 10)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_append_along_any_axis(memory_store, axis):
    a = make(memory_store, shape=(3, 4), chunks=(2, 2))
    base = np.arange(12, dtype="int32").reshape(3, 4)
    a[:] = base
    extra = np.full((3, 4), 5, "int32") if axis == 0 else np.full((3, 5), 5, "int32")
    new_shape = a.append(extra, axis=axis)
    expected = np.concatenate([base, extra], axis=axis)
    assert new_shape == expected.shape
    np.testing.assert_array_equal(a[:], expected)
    with pytest.raises(zf.ValueShapeError):
        a.append(np.zeros((7, 7), "int32"), axis=0)


def test_attrs_persist(tmp_path, zarr_format):
    url = str(tmp_path / "a.zarr")
    a = make(url, zarr_format, attributes={"units": "m"})
    a.attrs["scale"] = 2.5
    a.attrs.update({"name": "depth", "tags": [1, 2]})
    del a.attrs["units"]
    assert dict(zf.open(url, mode="r").attrs) == {"scale": 2.5, "name": "depth", "tags": [1, 2]}
    with pytest.raises(zf.ReadOnlyError):
        zf.open(url, mode="r").attrs["x"] = 1


def test_wrong_shape_and_dtype_raise_before_writing(memory_store):
    a = make(memory_store)
    a[:] = 3
    before = {k: memory_store.get(k) for k in memory_store.list_prefix("")}
    with pytest.raises(zf.ValueShapeError, match="shape"):
        a[0:5, 0:5] = np.ones((4, 4), "int32")
    with pytest.raises(zf.ValueShapeError, match="float64"):
        a[:] = np.ones((20, 30), "float64")
    with pytest.raises(zf.ValueShapeError):
        a[:] = "text"
    with pytest.raises(zf.SelectionError, match="20, 30"):
        a[20, 0] = 1
    with pytest.raises(zf.SelectionError):
        a[0:2, 0:2, 0:2]
    assert {k: memory_store.get(k) for k in memory_store.list_prefix("")} == before


def test_read_only_mode_writes_nothing(tmp_path):
    url = str(tmp_path / "a.zarr")
    make(url)[:] = 1
    ro = zf.open(url, mode="r")
    for attempt in (
        lambda: ro.__setitem__(slice(None), 2),
        lambda: ro.resize(3, 3),
        lambda: ro.append(np.zeros((1, 30), "int32")),
        lambda: ro.write_chunk((0, 0), np.zeros((6, 7), "int32")),
    ):
        with pytest.raises(zf.ReadOnlyError):
            attempt()
    assert (zf.open(url, mode="r")[:] == 1).all() and zf.open(url).shape == (20, 30)


def test_corrupt_chunk_names_array_and_key(memory_store, zarr_format):
    a = make(memory_store, zarr_format)
    a[:] = 1
    key = a.chunk_key((1, 2))
    memory_store.set(key, memory_store.get(key)[:-7])
    with pytest.raises(zf.CorruptChunkError) as err:
        a[:]
    assert key in str(err.value) and a.name in str(err.value)


def test_corrupt_metadata_is_a_metadata_error(memory_store, zarr_format):
    make(memory_store, zarr_format)
    key = "zarr.json" if zarr_format == 3 else ".zarray"
    memory_store.set(key, b"{not json")
    with pytest.raises(zf.MetadataError, match=key.replace(".", r"\.")):
        zf.open(memory_store, mode="r")


def test_modes(tmp_path):
    url = str(tmp_path / "m.zarr")
    with pytest.raises(zf.NodeNotFoundError):
        zf.open(url, mode="r")
    with pytest.raises(zf.NodeNotFoundError):
        zf.open_array(url, mode="r+")
    a = zf.open(url, mode="w", shape=(4,), chunks=(2,), dtype="i2")
    a[:] = 4
    with pytest.raises(zf.ContainsArrayError):
        zf.open(url, mode="w-", shape=(4,), dtype="i2")
    assert zf.open(url, mode="a")[:].tolist() == [4, 4, 4, 4]
    b = zf.open(url, mode="w", shape=(2,), dtype="i2")  # replaces
    assert b.shape == (2,) and b.nchunks_initialized == 0
    with pytest.raises(zf.ZarrflowError, match="mode"):
        zf.open(url, mode="q")


def test_pickle_carries_url_and_metadata_not_data(tmp_path):
    url = str(tmp_path / "p.zarr")
    a = make(url, shape=(500, 500), chunks=(100, 100))
    a[:] = np.random.default_rng(1).integers(0, 100, (500, 500))
    payload = pickle.dumps(a)
    assert len(payload) < 4000
    b = pickle.loads(payload)
    np.testing.assert_array_equal(b[:], a[:])


def test_repr_and_info(memory_store):
    a = make(memory_store)
    a[:6, :7] = 1
    assert "shape=(20, 30)" in repr(a)
    info = a.info
    assert info["Chunks stored"] == "1 / 20" and info["Shape"] == (20, 30)
    assert "Compression ratio" in repr(info)


def _hammer(a, writer: int, n_writers: int) -> None:
    """Writer ``w`` owns columns w, w + n, w + 2n, ...: every write is partial."""
    for col in range(writer, a.shape[1], n_writers):
        a[:, col] = writer + 1


def test_concurrent_partial_writes_lose_nothing(tmp_path):
    a = make(LocalStore(tmp_path / "c"), shape=(4, 64), chunks=(4, 64), dtype="int32")
    n = 8
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda w: _hammer(a, w, n), range(n)))
    expected = np.array([[c % n + 1 for c in range(64)]] * 4, dtype="int32")
    np.testing.assert_array_equal(a[:], expected)


class _BarrierStore(MemoryStore):
    """Makes every reader of a chunk wait until all writers have read it."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=30)
        self.armed = False

    def get(self, key):
        value = super().get(key)
        if self.armed and key.startswith("c/"):
            self.barrier.wait()
        return value


def test_without_locks_partial_writes_do_lose_updates():
    """The safety switched off: the no-lost-update test above can fail."""
    n = 4
    store = _BarrierStore(n)
    a = make(store, shape=(1, n), chunks=(1, n), dtype="int32")
    a[:] = 0
    store.armed = True
    with dask.config.set({"zarrflow.lock": "none"}), ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda w: a.__setitem__((0, w), w + 1), range(n)))
    store.armed = False
    got = a[:].ravel().tolist()
    assert got != [1, 2, 3, 4]  # every writer read zeros: all but one update lost
    assert sum(v != 0 for v in got) == 1
