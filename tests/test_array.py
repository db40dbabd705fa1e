"""The Array: creation, selection, fill values, resize/append, attributes, errors, safety."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import dask
import numpy as np
import pytest

import zarrflow as zf
from conftest import NO_CONDITIONS
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
    with dask.config.set({"zarrflow.lock": "none", **NO_CONDITIONS}), ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda w: a.__setitem__((0, w), w + 1), range(n)))
    store.armed = False
    got = a[:].ravel().tolist()
    assert got != [1, 2, 3, 4]  # every writer read zeros: all but one update lost
    assert sum(v != 0 for v in got) == 1


# -- the local read path: trusted keys, no fstat, batched decoding ------------------------------

FAST_RETRIES = {"zarrflow.retries": {"attempts": 4, "backoff": 0.001, "max_backoff": 0.002}}


def _sparse_local(tmp_path, zarr_format=3, compressor="zstd"):
    """A float array on local files with NaN fill, edge chunks, missing chunks and rows."""
    url = str(tmp_path / "sparse.zarr")
    a = make(url, zarr_format, shape=(37, 45), chunks=(4, 5), dtype="f4", fill_value=np.nan,
             compressor=compressor)  # fmt: skip
    data = np.random.default_rng(1).random((37, 45), dtype="f4")
    model = np.full((37, 45), np.nan, "f4")
    for region in [(slice(0, 8),), (slice(20, 37), slice(10, 31)), (slice(9, 10), slice(44, 45))]:
        a[region] = model[region] = data[region]
    return zf.open(url, mode="r"), model


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
@pytest.mark.parametrize("compressor", ["zstd", "gzip", None])
def test_local_reads_match_numpy_for_every_selection_kind(
    tmp_path, zarr_format, compressor, scheduler
):
    a, model = _sparse_local(tmp_path, zarr_format, compressor)
    assert a.engine._local is not None  # the fast path is the one under test
    mask = np.random.default_rng(2).random((37, 45)) < 0.3
    cases = [
        (lambda: a[...], model),
        (lambda: a[::-3, 7], model[::-3, 7]),
        (lambda: a[None, 3:30, ...], model[None, 3:30, ...]),
        (lambda: a[-1, -1], model[-1, -1]),
        (lambda: a.oindex[[36, 1, 5], 2::4], model[[36, 1, 5], 2::4]),
        (lambda: a.vindex[[0, 36, 20, 9], [44, 0, 3, 44]], model[[0, 36, 20, 9], [44, 0, 3, 44]]),
        (lambda: a.vindex[mask], model[mask]),
        (lambda: a.to_dask(chunks_per_task=7).compute(), model),
    ]
    with dask.config.set({"scheduler": scheduler, "zarrflow.inline_chunks": 2}):
        for read, expected in cases:
            np.testing.assert_array_equal(read(), expected)


def test_local_fast_read_retries_transient_errors(tmp_path, monkeypatch):
    import errno
    import os

    a, model = _sparse_local(tmp_path)
    real_open, failures = os.open, []

    def flaky_open(path, *args, **kwargs):
        if f"{os.sep}c{os.sep}" in str(path) and len(failures) < 3:
            failures.append(path)
            raise OSError(errno.EAGAIN, "try again")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", flaky_open)
    with dask.config.set(FAST_RETRIES):
        np.testing.assert_array_equal(a[...], model)
    assert len(failures) == 3


def test_local_fast_read_passes_permanent_errors_naming_the_key(tmp_path, monkeypatch):
    import errno
    import os

    a, _ = _sparse_local(tmp_path)
    key = a.chunk_key((1, 2))
    real_open, tries = os.open, []

    def denied(path, *args, **kwargs):
        if str(path).endswith(key.replace("/", os.sep)):
            tries.append(path)
            raise PermissionError(errno.EACCES, "denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with dask.config.set(FAST_RETRIES), pytest.raises(zf.StoreError, match=key):
        a[...]
    assert len(tries) == 1


def test_a_short_local_read_is_read_again_before_calling_the_chunk_corrupt(tmp_path, monkeypatch):
    import os

    a, model = _sparse_local(tmp_path)
    real_read, cut = os.read, []

    def short_read(fd, n):
        data = real_read(fd, n)
        if not cut and len(data) > 8:  # one chunk comes back cut short, once
            cut.append(len(data))
            return data[:-5]
        return data

    monkeypatch.setattr(os, "read", short_read)
    np.testing.assert_array_equal(a[...], model)
    assert cut


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_corrupt_local_chunk_among_many_names_its_key(tmp_path, scheduler):
    url = str(tmp_path / "many.zarr")
    a = make(url, shape=(64, 64), chunks=(4, 4), dtype="u1")
    a[:] = np.arange(64 * 64).reshape(64, 64).astype("u1")
    key = a.chunk_key((9, 11))
    path = tmp_path / "many.zarr" / key
    path.write_bytes(path.read_bytes()[:-3])
    with dask.config.set(scheduler=scheduler), pytest.raises(zf.CorruptChunkError) as err:
        a[:]
    assert key in str(err.value) and a.name in str(err.value)


def test_local_fast_path_is_kept_only_for_plain_local_stores(tmp_path):
    from zarrflow.storage.readonly import ReadOnlyStore
    from zarrflow.testing.faults import FaultyStore

    url = str(tmp_path / "kinds.zarr")
    make(url)[:] = 1
    store = LocalStore(url)
    assert zf.open(store).engine._local == store
    assert zf.open(ReadOnlyStore(store)).engine._local == store
    assert zf.open(FaultyStore(store)).engine._local is None  # faults must reach every read
    assert make(MemoryStore()).engine._local is None


@pytest.mark.parametrize("compressor", ["zstd", "gzip"])
def test_local_reads_of_large_chunks_hold_few_chunks_at_once(tmp_path, compressor):
    import tracemalloc

    url = str(tmp_path / "large.zarr")
    a = make(url, shape=(2048, 2048), chunks=(256, 256), dtype="f4", compressor=compressor)
    data = np.random.default_rng(3).random((2048, 2048), dtype="f4")  # barely compressible
    a[:] = data
    chunk_bytes = 256 * 256 * 4
    with dask.config.set(scheduler="sync"):
        tracemalloc.start()
        try:
            got = a[:]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    np.testing.assert_array_equal(got, data)
    assert peak - got.nbytes < 16 * chunk_bytes, peak / chunk_bytes  # not all 64 chunks at once
