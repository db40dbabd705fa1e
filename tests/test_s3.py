"""zarrflow on S3, against a real S3-compatible server (moto) on 127.0.0.1.

Every test here runs once per object-store backend (obstore and fsspec/s3fs,
the ``object_store`` fixture): the same store contract as memory, local and
zip (``test_storage.py``'s tests, run here with an S3 ``store``), arrays of
both formats, the Dask layer, how many requests opening costs, and how
requests overlap under the process-wide ``zarrflow.io_concurrency`` budget
(seen at a proxy in front of the server).
"""

from __future__ import annotations

import inspect
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import numpy as np
import pytest

import test_storage as _contract
import zarrflow as zf
from zarrflow.storage import FsspecStore, ObstoreStore, Store, store_from_url
from zarrflow.testing.latency_proxy import LatencyProxy

pytestmark = pytest.mark.timeout(120)

# the store contract ---------------------------------------------------------------------------
# Every contract test of test_storage.py that takes a ``store`` runs again here, where
# ``store`` is an S3 store (this module's fixture below overrides test_storage's).
_REPLACED = {
    "test_capabilities_and_url",  # asserts a local store: see test_s3_capabilities
    "test_concurrent_sets_and_gets",  # 900 requests: see test_s3_concurrent_sets_and_gets
}
for _name, _test in vars(_contract).items():
    if (
        _name.startswith("test_")
        and _name not in _REPLACED
        and "store" in inspect.signature(_test).parameters
    ):
        globals()[_name] = _test


@pytest.fixture(autouse=True)
def backend(object_store: str) -> str:
    """Every test of this module runs with each backend (conftest's ``object_store``)."""
    return object_store


@pytest.fixture
def store(s3_store_url: str, s3_storage_options: dict, backend: str) -> Iterator[Store]:
    store = store_from_url(s3_store_url, s3_storage_options)
    assert type(store) is {"obstore": ObstoreStore, "fsspec": FsspecStore}[backend]
    yield store


def test_s3_capabilities(store: Store) -> None:
    assert store.is_remote and store.supports_writes and store.supports_partial_reads
    assert store.url.startswith("s3://") and store.url in repr(store)
    assert store.retries_requests  # zarrflow's retries, never wrapped twice
    if isinstance(store, FsspecStore):
        assert store.fs.retries == 1  # zarrflow owns the retries (zarrflow.storage.remote)


def test_s3_concurrent_sets_and_gets(store: FsspecStore) -> None:
    items = {f"c/{i % 5}/{i}": bytes([i]) * (100 + i) for i in range(60)}
    keys = list(items)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda k: store.set(k, items[k]), keys[:30]))
        writes = [pool.submit(store.set, k, items[k]) for k in keys[30:]]
        reads = [pool.submit(store.get, k) for k in keys[:30]]
        assert [f.result() for f in reads] == [items[k] for k in keys[:30]]
        assert [f.result() for f in writes] == [None] * 30
        many = list(pool.map(store.get_many, [keys[i::6] for i in range(6)]))
    assert many == [[items[k] for k in keys[i::6]] for i in range(6)]
    assert sorted(store.list_prefix("c/")) == sorted(items)


def test_a_missing_node_fails_fast_naming_the_url(s3_store_url: str, s3_storage_options) -> None:
    slow_retries = {"zarrflow.retries": {"attempts": 50, "backoff": 1.0, "max_time": 60}}
    t0 = time.monotonic()
    with dask.config.set(slow_retries), pytest.raises(zf.NodeNotFoundError, match=s3_store_url):
        zf.open(s3_store_url, mode="r", storage_options=s3_storage_options)
    assert time.monotonic() - t0 < 10  # a 404 is an answer, not a failure: never retried


def test_missing_bucket_is_an_error_not_missing_data(s3_storage_options: dict) -> None:
    store = store_from_url("s3://no-such-bucket-here/a.zarr", s3_storage_options)
    with pytest.raises(zf.StoreError, match=r"'c/0' in s3://no-such-bucket-here.*no such bucket"):
        store.get("c/0")
    with pytest.raises(zf.StoreError, match="bucket"):
        zf.open("s3://no-such-bucket-here/a.zarr", mode="r", storage_options=s3_storage_options)


# arrays -----------------------------------------------------------------------------------


def _data(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.standard_normal(shape) * 1000).astype(dtype)


ARRAYS = [
    pytest.param(dict(zarr_format=3, dtype="int32", compressor="zstd"), id="v3-zstd-i4"),
    pytest.param(
        dict(zarr_format=3, dtype="float64", compressor="gzip", chunk_key_encoding={"name": "v2"}),
        id="v3-gzip-f8-v2keys",
    ),
    pytest.param(dict(zarr_format=2, dtype="uint16", compressor="blosc"), id="v2-blosc-u2"),
    pytest.param(
        dict(zarr_format=2, dtype="float32", compressor=None, dimension_separator="/"),
        id="v2-raw-f4-nested",
    ),
]


@pytest.mark.parametrize("kwargs", ARRAYS)
def test_array_round_trip(s3_store_url: str, s3_storage_options: dict, kwargs: dict) -> None:
    data = _data((45, 38), kwargs["dtype"])
    a = zf.create(
        s3_store_url, shape=data.shape, chunks=(10, 10), storage_options=s3_storage_options,
        fill_value=0, **kwargs,
    )  # fmt: skip
    a[:] = data
    a[3:7, 30:] = 5  # a partial write: read-modify-write of the edge chunks
    data[3:7, 30:] = 5
    b = zf.open(s3_store_url, mode="r", storage_options=s3_storage_options)
    assert (b.shape, b.dtype, b.zarr_format) == (data.shape, data.dtype, kwargs["zarr_format"])
    np.testing.assert_array_equal(b[:], data)
    np.testing.assert_array_equal(b[11:29:3, ::-1][:, :5], data[11:29:3, ::-1][:, :5])
    assert b.nchunks_initialized == b.nchunks == 20


def test_sharded_array_round_trip(s3_store_url: str, s3_storage_options: dict) -> None:
    data = _data((40, 40), "int32")
    try:
        a = zf.create(
            s3_store_url, shape=data.shape, chunks=(5, 5), shards=(20, 20), dtype="int32",
            storage_options=s3_storage_options,
        )  # fmt: skip
    except (ImportError, NotImplementedError, zf.ZarrflowError) as e:
        pytest.skip(f"sharding is not available yet: {e}")
    a[:] = data
    b = zf.open(s3_store_url, mode="r", storage_options=s3_storage_options)
    np.testing.assert_array_equal(b[:], data)
    np.testing.assert_array_equal(b[7:13, 18:23], data[7:13, 18:23])  # ranged reads in a shard
    np.testing.assert_array_equal(b.to_dask().compute(), data)


def test_zarr_python_reads_what_zarrflow_wrote_on_s3(
    s3_store_url: str, s3_storage_options: dict
) -> None:
    zarr = pytest.importorskip("zarr")
    data = _data((30, 30), "int16")
    zf.create(
        s3_store_url, shape=data.shape, chunks=(8, 8), dtype="int16",
        storage_options=s3_storage_options,
    )[:] = data  # fmt: skip
    peer = zarr.storage.FsspecStore.from_url(
        s3_store_url, storage_options=s3_storage_options, read_only=True
    )
    np.testing.assert_array_equal(zarr.open_array(peer, mode="r")[:], data)


# the Dask layer ---------------------------------------------------------------------------


@pytest.fixture
def s3_array(s3_store_url: str, s3_storage_options: dict) -> tuple[zf.Array, np.ndarray]:
    data = _data((60, 50), "int32")
    a = zf.create(
        s3_store_url, shape=data.shape, chunks=(20, 10), dtype="int32",
        storage_options=s3_storage_options,
    )  # fmt: skip
    a[:] = data
    return a, data


def test_to_dask_on_s3(s3_array: tuple[zf.Array, np.ndarray]) -> None:
    a, data = s3_array
    x = a.to_dask()
    np.testing.assert_array_equal(x.compute(), data)
    np.testing.assert_array_equal(a.to_dask(chunks_per_task=1)[5:55:2].compute(), data[5:55:2])


def test_to_zarr_on_s3(s3_store_url: str, s3_storage_options: dict) -> None:
    x = da.from_array(_data((50, 40), "float32"), chunks=(25, 15))  # unaligned with the chunks
    out = zf.to_zarr(x, s3_store_url, chunks=(10, 10), storage_options=s3_storage_options)
    back = zf.open(s3_store_url, mode="r", storage_options=s3_storage_options)
    np.testing.assert_array_equal(back[:], x.compute())
    assert out.nchunks_initialized == 20


def test_chunk_stream_and_parallel_chunk_map_on_s3(s3_array: tuple[zf.Array, np.ndarray]) -> None:
    a, data = s3_array
    seen = {idx: chunk for idx, chunk in a.chunk_stream(parallel=4)}
    assert len(seen) == a.nchunks
    for (i, j), chunk in seen.items():
        np.testing.assert_array_equal(chunk, data[i * 20 : i * 20 + 20, j * 10 : j * 10 + 10])
    sums = dict(a.parallel_chunk_map(lambda idx, chunk: int(chunk.sum()), max_concurrency=4))
    assert sum(sums.values()) == int(data.sum())


# opening costs --------------------------------------------------------------------------------


@pytest.fixture
def proxy(s3_server) -> Iterator[LatencyProxy]:
    with LatencyProxy(s3_server.endpoint_url) as p:
        yield p


def _consolidated_group(url: str, options: dict, zarr_format: int) -> None:
    g = zf.open_group(url, mode="w", zarr_format=zarr_format, storage_options=options)
    g.create_array("x", shape=(10,), chunks=(5,), dtype="i4")
    g.create_group("sub").create_array("y", shape=(4, 4), dtype="f8")
    zf.consolidate_metadata(url, storage_options=options)


#: what opening costs, in HTTP requests: zarr.json alone (v3: all there is), then, when it is
#: missing, one batch of the v2 documents (.zarray, .zgroup, .zattrs, and .zmetadata in mode "r")
V3_OPEN, V2_BATCH = 1, 4


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_opening_a_consolidated_hierarchy_reads_no_member_metadata(
    s3_server, s3_store_url: str, proxy: LatencyProxy, zarr_format: int
) -> None:
    options = s3_server.storage_options(proxy.url)
    _consolidated_group(s3_store_url, options, zarr_format)
    proxy.reset_counters()
    g = zf.open_group(s3_store_url, mode="r", storage_options=options)
    opened = proxy.requests
    assert g["sub/y"].shape == (4, 4) and g["x"].chunks == (5,)
    assert proxy.requests == opened  # members come from the consolidated metadata
    assert opened == (V3_OPEN if zarr_format == 3 else V3_OPEN + V2_BATCH)  # was 5 for both


def test_opening_a_consolidated_v3_group_costs_one_request(
    s3_server, s3_store_url: str, proxy: LatencyProxy
) -> None:
    options = s3_server.storage_options(proxy.url)
    _consolidated_group(s3_store_url, options, 3)
    proxy.reset_counters()
    zf.open_group(s3_store_url, mode="r", storage_options=options)
    assert proxy.requests == 1


def test_a_v2_hierarchy_of_known_format_opens_in_one_batch(
    s3_server, s3_store_url: str, proxy: LatencyProxy
) -> None:
    options = s3_server.storage_options(proxy.url)
    _consolidated_group(s3_store_url, options, 2)
    proxy.delay = 0.05  # long enough that a batch's requests are seen in flight together
    proxy.reset_counters()
    g = zf.open_group(s3_store_url, mode="r", zarr_format=2, storage_options=options)
    assert g["sub/y"].shape == (4, 4)
    assert proxy.requests == proxy.peak_in_flight == V2_BATCH  # no zarr.json: one round trip


@pytest.mark.parametrize("mode", ["r", "r+", "a"])
def test_opening_a_v3_array_costs_one_request(
    s3_server, s3_store_url: str, proxy: LatencyProxy, mode: str
) -> None:
    options = s3_server.storage_options(proxy.url)
    zf.create(s3_store_url, shape=(10,), chunks=(5,), dtype="i4", storage_options=options)
    for open_ in (zf.open, zf.open_array):
        proxy.reset_counters()
        a = open_(s3_store_url, mode=mode, storage_options=options)
        assert proxy.requests == 1 and a.shape == (10,) and a.zarr_format == 3


@pytest.mark.parametrize(("zarr_format", "expected"), [(None, 1 + 3), (2, 3)])
def test_opening_a_v2_array_costs_one_batch(
    s3_server, s3_store_url: str, proxy: LatencyProxy, zarr_format: int | None, expected: int
) -> None:
    options = s3_server.storage_options(proxy.url)
    zf.create(
        s3_store_url, shape=(10,), chunks=(5,), dtype="i4", zarr_format=2,
        storage_options=options,
    )  # fmt: skip
    proxy.delay = 0.05
    proxy.reset_counters()
    a = zf.open_array(s3_store_url, mode="r", zarr_format=zarr_format, storage_options=options)
    assert a.zarr_format == 2 and a.chunks == (5,)
    # zarr.json (unless the format is given), then .zarray, .zgroup, .zattrs together
    assert proxy.requests == expected and proxy.peak_in_flight == 3


@pytest.mark.parametrize(
    ("open_", "error"),
    [
        (zf.open, zf.NodeNotFoundError),
        (zf.open_array, zf.ArrayNotFoundError),
        (zf.open_group, zf.GroupNotFoundError),
    ],
)
@pytest.mark.parametrize("mode", ["r", "r+"])
def test_opening_nothing_over_s3_is_not_found(
    s3_store_url: str, s3_storage_options: dict, open_, error: type, mode: str
) -> None:
    zf.create(s3_store_url + "/other", shape=(2,), dtype="i1", storage_options=s3_storage_options)
    where = re.escape(f"at '{s3_store_url}/missing' (mode '{mode}')")
    with pytest.raises(error, match=f"^no (array or group|array|group) {where}$"):
        open_(s3_store_url, path="missing", mode=mode, storage_options=s3_storage_options)


def test_asking_for_the_other_kind_over_s3_is_refused(
    s3_store_url: str, s3_storage_options: dict
) -> None:
    g = zf.open_group(s3_store_url, mode="w", storage_options=s3_storage_options)
    g.create_array("x", shape=(2,), dtype="i1")
    zf.consolidate_metadata(s3_store_url, storage_options=s3_storage_options)
    with pytest.raises(zf.ContainsGroupError, match="is a group, not an array"):
        zf.open_array(s3_store_url, mode="r", storage_options=s3_storage_options)
    with pytest.raises(zf.ContainsArrayError, match="is an array, not a group"):
        zf.open_group(s3_store_url, path="x", mode="r", storage_options=s3_storage_options)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_read_write_modes_see_the_live_hierarchy_not_the_consolidated_one(
    s3_store_url: str, s3_storage_options: dict, zarr_format: int
) -> None:
    _consolidated_group(s3_store_url, s3_storage_options, zarr_format)
    writer = zf.open_group(s3_store_url, mode="r+", storage_options=s3_storage_options)
    writer.create_array("late", shape=(3,), dtype="u1")  # added after consolidation
    for mode in ("r+", "a"):
        g = zf.open_group(s3_store_url, mode=mode, storage_options=s3_storage_options)
        assert sorted(g) == ["late", "sub", "x"] and g["late"].shape == (3,)
    snapshot = zf.open_group(s3_store_url, mode="r", storage_options=s3_storage_options)
    assert sorted(snapshot) == ["sub", "x"]  # mode "r" opens from the consolidated metadata
    live = zf.open_group(
        s3_store_url, mode="r", use_consolidated=False, storage_options=s3_storage_options
    )
    assert sorted(live) == ["late", "sub", "x"]


# latency hiding ---------------------------------------------------------------------------


def test_a_batch_overlaps_its_requests_up_to_io_concurrency(
    s3_server, s3_store_url: str, proxy: LatencyProxy
) -> None:
    store = store_from_url(s3_store_url, s3_server.storage_options(proxy.url))
    values = {f"c/{i}": bytes([i]) * 100 for i in range(24)}
    store.set_many(values)
    proxy.delay = 0.05
    for limit in (4, 12):
        proxy.reset_counters()
        with dask.config.set({"zarrflow.io_concurrency": limit}):
            assert store.get_many(list(values)) == list(values.values())
        assert proxy.requests == 24
        assert 2 <= proxy.peak_in_flight <= limit  # overlapped, and never above the budget


def test_the_budget_is_shared_by_all_threads(
    s3_server, s3_store_url: str, proxy: LatencyProxy
) -> None:
    store = store_from_url(s3_store_url, s3_server.storage_options(proxy.url))
    store.set_many({f"k{i}": b"v" for i in range(24)})
    proxy.delay = 0.05
    proxy.reset_counters()
    keys = [f"k{i}" for i in range(24)]
    results: list[list[bytes | None]] = []
    with dask.config.set({"zarrflow.io_concurrency": 6}):
        threads = [threading.Thread(target=lambda: results.append(store.get_many(keys)))
                   for _ in range(3)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [[b"v"] * 24] * 3
    assert 2 <= proxy.peak_in_flight <= 6  # 3 threads × 24 keys, never more than 6 at once


def test_writes_are_one_request_per_chunk(s3_server, s3_store_url: str, proxy) -> None:
    store = store_from_url(s3_store_url, s3_server.storage_options(proxy.url))
    proxy.reset_counters()
    store.set_many({f"c/{i}": bytes(5000) for i in range(10)})
    assert proxy.requests == 10  # no "Expect: 100-continue" round trip before each body
    proxy.reset_counters()
    assert store.get_many([f"c/{i}" for i in range(10)]) == [bytes(5000)] * 10
    assert proxy.requests == 10  # no HEAD before each GET
