"""The Dask layer on a real distributed LocalCluster with 2 worker processes."""

from __future__ import annotations

import itertools
import operator
import sys
import threading
import uuid

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest

import zarrflow as zf
from conftest import NO_CONDITIONS
from zarrflow.storage import LocalStore
from zarrflow.testing.barriers import ClusterBarrierStore

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/


@pytest.fixture
def seeded(tmp_path):
    a = zf.create(str(tmp_path / "seed.zarr"), shape=(50, 40), chunks=(10, 10), dtype="int32")
    data = np.arange(2000, dtype="int32").reshape(50, 40)
    a[:] = data
    return a, data


def grid(a):
    return list(itertools.product(*(range(n) for n in a.chunk_grid_shape)))


def test_stream_on_the_cluster(client, seeded):
    a, data = seeded
    got = list(a.chunk_stream(parallel=4, scheduler=client))
    assert [i for i, _ in got] == grid(a)
    for idx, chunk in got:
        np.testing.assert_array_equal(chunk, data[a.chunk_slices(idx)])
    unordered = dict(a.chunk_stream(parallel=3, ordered=False, scheduler=client))
    assert sorted(unordered) == grid(a)
    filtered = [i for i, _ in a.chunk_stream(parallel=2, filter=lambda i: i[1] == 0)]
    assert filtered == [(r, 0) for r in range(5)]
    progress = []
    stream = a.chunk_stream(
        parallel=2, scheduler=client, progress_callback=lambda d, t: progress.append((d, t))
    )
    first = list(itertools.islice(stream, 3))
    stream.close()
    assert len(first) == 3 and progress == [(1, 20), (2, 20), (3, 20)]


def test_default_scheduler_is_the_active_client(client, seeded):
    a, data = seeded
    sums = dict(a.parallel_chunk_map(lambda i, c: int(c.sum())))  # scheduler=None
    assert sums == {i: int(data[a.chunk_slices(i)].sum()) for i in grid(a)}
    prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert "zarrflow-map" in prefixes


def test_map_timeout_retries_and_errors_on_the_cluster(client, seeded):
    a, _ = seeded
    gate = f"gate-{uuid.uuid4().hex}"

    def slow(idx, chunk):
        if idx == (2, 2):
            from distributed import Event

            Event(gate).wait(30)
        return idx

    event = __import__("distributed").Event(gate, client=client)
    try:
        results = dict(
            a.parallel_chunk_map(
                slow, max_concurrency=4, timeout=1.0, on_error="return", scheduler=client
            )
        )
        assert isinstance(results[(2, 2)], zf.ChunkFailure)
        assert isinstance(results[(2, 2)].exception, zf.ChunkTimeoutError)
        assert sum(not isinstance(r, zf.ChunkFailure) for r in results.values()) == a.nchunks - 1
    finally:
        event.set()

    def broken(idx, chunk):
        if idx == (0, 1):
            raise ValueError("bad chunk")
        return 1

    with pytest.raises(zf.ParallelChunkError, match=r"\(0, 1\)"):
        list(a.parallel_chunk_map(broken, retries=1, scheduler=client))


def test_reduce_combines_on_the_workers(client, seeded):
    """reduce_chunks is a tree of tasks: leaves fold batches, merges fold leaves, on workers."""
    a, data = seeded
    caller, seen, progress = threading.get_ident(), set(), []

    def report(done, total):
        seen.add(threading.get_ident())
        progress.append((done, total))

    with dask.config.set({"zarrflow.task_target_bytes": 800}):  # 2 chunks a leaf: 10 leaves
        total = a.reduce_chunks(
            lambda i, c: int(c.sum()), operator.add, scheduler=client, progress_callback=report
        )
        assert total == int(data.sum())
        assert progress == [(d, 20) for d in range(1, 21)] and seen == {caller}
        prefixes = client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.task_prefixes)
        )
        assert {"zarrflow-map", "zarrflow-reduce"} <= set(prefixes)
        assert a.reduce_chunks(lambda i, c: int(c.max()), max, initial=10**6) == 10**6
        odd = a.reduce_chunks(
            lambda i, c: 1, operator.add, filter=lambda i: i[1] % 2 == 1, scheduler=client
        )
        assert odd == 10

        def broken(idx, chunk):
            if idx == (3, 2):
                raise ValueError("bad chunk")
            return 1

        with pytest.raises(zf.ParallelChunkError, match=r"\(3, 2\)"):
            a.reduce_chunks(broken, operator.add, scheduler=client)
        with pytest.raises(TypeError):
            a.reduce_chunks(lambda i, c: 1, operator.add, filter=lambda i: False)


def test_to_dask_and_getitem_on_the_cluster(client, seeded):
    a, data = seeded
    np.testing.assert_array_equal(a.to_dask().compute(), data)
    np.testing.assert_array_equal(a[5:45, 3:33], data[5:45, 3:33])  # a graph on the client
    prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert "zarrflow-read" in prefixes


def test_to_zarr_on_the_cluster(client, tmp_path):
    data = np.random.default_rng(5).normal(size=(60, 50)).astype("f4")
    for strategy, blocks in (("auto", (20, 25)), ("auto", (13, 17)), ("lock", (13, 17))):
        url = str(tmp_path / f"{strategy}-{blocks[0]}")
        a = zf.to_zarr(da.from_array(data, chunks=blocks), url, chunks=(10, 10), strategy=strategy)
        np.testing.assert_array_equal(zf.open(url, mode="r")[:], data)
    region = zf.create(str(tmp_path / "region"), shape=(80, 80), chunks=(10, 10), dtype="f4")
    zf.to_zarr(da.from_array(data, chunks=(7, 9)), region, region=(slice(5, 65), slice(15, 65)))
    expected = np.zeros((80, 80), "f4")
    expected[5:65, 15:65] = data
    np.testing.assert_array_equal(region[:], expected)
    prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert "zarrflow-write" in prefixes
    assert a.nchunks_initialized == a.nchunks


def _interleaved(n_blocks: int, width: int):
    values = np.repeat(np.arange(1, n_blocks + 1, dtype="i4"), width)[None, :].repeat(3, 0)
    return da.from_array(values, chunks=(3, width)), values


def test_distributed_locks_lose_nothing(client, tmp_path):
    x, values = _interleaved(48, 2)  # chunks of 5 columns: 2-3 writers each
    a = zf.create(LocalStore(tmp_path / "l"), shape=values.shape, chunks=(3, 5), dtype="i4")
    zf.to_zarr(x, a, strategy="lock", scheduler=client)
    np.testing.assert_array_equal(a[:], values)


def test_without_locks_the_cluster_loses_updates(client, workers_without_conditions, tmp_path):
    """The safety switched off: two workers read one chunk before either writes it."""
    store = ClusterBarrierStore.on(client, tmp_path / "nolock", 2)
    x, values = _interleaved(2, 2)
    a = zf.create(store, shape=values.shape, chunks=(3, 4), dtype="i4")
    with dask.config.set({"zarrflow.lock": "none", **NO_CONDITIONS}):
        zf.to_zarr(x, a, strategy="lock", scheduler=client)
    got = LocalStore(tmp_path / "nolock")
    b = zf.open_array(got, mode="r")
    assert not np.array_equal(b[:], values)  # one writer's columns were lost
