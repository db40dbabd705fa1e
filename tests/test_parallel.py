"""The Dask layer on the local schedulers: streams, maps, to_dask, to_zarr, safe writes."""

from __future__ import annotations

import itertools
import threading
import tracemalloc

import dask
import dask.array as da
import numpy as np
import pytest
from dask.highlevelgraph import HighLevelGraph

import zarrflow as zf
from conftest import NO_CONDITIONS, CountingStore
from zarrflow.storage import LocalStore, MemoryStore
from zarrflow.testing.barriers import BarrierStore


def seed(store, chunks=(10, 10), shape=(50, 40), dtype="int32"):
    a = zf.create(store, shape=shape, chunks=chunks, dtype=dtype)
    data = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    a[:] = data
    return a, data


def grid(a):
    return list(itertools.product(*(range(n) for n in a.chunk_grid_shape)))


# chunk_stream ------------------------------------------------------------------
@pytest.mark.parametrize("parallel", [1, 2, 4, 8])
def test_stream_ordered_yields_grid_order_with_right_data(parallel):
    a, data = seed(MemoryStore(), shape=(45, 38))  # ragged edges
    got = list(a.chunk_stream(parallel=parallel, scheduler="threads"))
    assert [idx for idx, _ in got] == grid(a)
    for idx, chunk in got:
        np.testing.assert_array_equal(chunk, data[a.chunk_slices(idx)])


def test_stream_unordered_yields_every_chunk_once():
    a, data = seed(MemoryStore())
    got = dict(a.chunk_stream(parallel=4, ordered=False, scheduler="threads"))
    assert sorted(got) == grid(a)
    for idx, chunk in got.items():
        np.testing.assert_array_equal(chunk, data[a.chunk_slices(idx)])


def test_filter_prevents_reads():
    inner = MemoryStore()
    seed(inner)
    store = CountingStore(inner)
    a = zf.open_array(store, mode="r")
    keep = {(0, 0), (2, 3), (4, 1)}
    got = [idx for idx, _ in a.chunk_stream(parallel=3, filter=lambda i: i in keep)]
    assert got == sorted(keep)
    assert store.chunk_reads() == 3
    assert set(store.reads) >= {a.chunk_key(i) for i in keep}


def test_early_stop_cancels_the_rest(tmp_path):
    # 256 KiB chunks: one chunk per task, so the window is 2 x parallel chunks
    a = zf.create(str(tmp_path / "big"), shape=(64 * 256, 256), chunks=(256, 256), dtype="f4")
    a[:] = 1.0
    store = CountingStore(a.store)
    b = zf.open_array(store, mode="r")
    stream = b.chunk_stream(parallel=4, scheduler="threads")
    taken = list(itertools.islice(stream, 5))
    stream.close()
    assert len(taken) == 5
    reads_at_stop = store.chunk_reads()
    assert reads_at_stop <= 5 + 2 * 4  # what was consumed plus the bounded window
    assert store.chunk_reads() == reads_at_stop  # and nothing more starts afterwards


def test_progress_callback_in_callers_thread():
    a, _ = seed(MemoryStore())
    calls = []
    caller = threading.get_ident()
    for _ in a.chunk_stream(
        parallel=4,
        filter=lambda i: i[0] < 2,
        progress_callback=lambda d, t: calls.append((d, t, threading.get_ident())),
    ):
        pass
    assert [(d, t) for d, t, _ in calls] == [(i, 8) for i in range(1, 9)]
    assert {tid for _, _, tid in calls} == {caller}


def test_skip_missing_streams_only_stored_chunks():
    a = zf.create(MemoryStore(), shape=(30, 30), chunks=(10, 10), dtype="i2")
    a[10:20, 0:10] = 1
    a[20:30, 20:30] = 2
    assert [i for i, _ in a.chunk_stream(skip_missing=True)] == [(1, 0), (2, 2)]
    assert len(list(a.chunk_stream())) == 9


def test_stream_error_names_the_chunk():
    store = MemoryStore()
    a, _ = seed(store)
    store.set(a.chunk_key((2, 1)), b"garbage")
    with pytest.raises(zf.ParallelChunkError, match=r"\(2, 1\)") as err:
        list(a.chunk_stream(parallel=4))
    assert err.value.failures[0].chunk_index == (2, 1)
    assert isinstance(err.value.__cause__, zf.CorruptChunkError)


def test_bounded_memory_of_a_parallel_stream(tmp_path):
    chunk_bytes = 256 * 256 * 4
    a = zf.create(str(tmp_path / "m"), shape=(160 * 256, 256), chunks=(256, 256), dtype="f4")
    for i in range(0, a.shape[0], 4096):  # write in slabs, not all at once
        a[i : i + 4096] = np.arange(4096 * 256, dtype="f4").reshape(4096, 256)
    tracemalloc.start()
    try:
        total = 0.0
        for _, chunk in a.chunk_stream(parallel=8, ordered=False, scheduler="threads"):
            total += float(chunk[0, 0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert a.nbytes == 160 * chunk_bytes
    assert peak < 30 * chunk_bytes, f"peak {peak / chunk_bytes:.1f} chunks"


# parallel_chunk_map ------------------------------------------------------------
def test_map_results_and_reduce():
    a, data = seed(MemoryStore())
    sums = dict(a.parallel_chunk_map(lambda i, c: int(c.sum()), max_concurrency=4))
    assert sums == {i: int(data[a.chunk_slices(i)].sum()) for i in grid(a)}
    assert a.reduce_chunks(lambda i, c: int(c.max()), max) == int(data.max())


def test_map_timeout_names_the_chunk():
    a, _ = seed(MemoryStore())
    release = threading.Event()

    def fn(idx, chunk):
        if idx == (1, 1):
            release.wait(30)
        return idx

    try:
        with pytest.raises(zf.ChunkTimeoutError, match=r"\(1, 1\)"):
            list(a.parallel_chunk_map(fn, max_concurrency=2, timeout=0.3))
        results = list(a.parallel_chunk_map(fn, max_concurrency=2, timeout=0.3, on_error="return"))
        failed = [r for _, r in results if isinstance(r, zf.ChunkFailure)]
        assert [f.chunk_index for f in failed] == [(1, 1)]
        assert isinstance(failed[0].exception, zf.ChunkTimeoutError)
        assert len(results) == a.nchunks
    finally:
        release.set()


def test_map_retries_and_on_error_return():
    a, _ = seed(MemoryStore())
    attempts: dict = {}
    lock = threading.Lock()

    def flaky(idx, chunk):
        with lock:
            attempts[idx] = attempts.get(idx, 0) + 1
            n = attempts[idx]
        if idx[0] == 0 and n < 3:
            raise OSError(f"transient {idx}")
        if idx == (4, 3):
            raise ValueError("permanent")
        return n

    results = dict(a.parallel_chunk_map(flaky, max_concurrency=3, retries=2, on_error="return"))
    assert all(results[(0, j)] == 3 for j in range(4))
    failure = results[(4, 3)]
    assert isinstance(failure, zf.ChunkFailure) and isinstance(failure.exception, ValueError)
    assert attempts[(4, 3)] == 3
    with pytest.raises(zf.ParallelChunkError, match=r"\(4, 3\).*ZeroDivisionError"):
        list(a.parallel_chunk_map(lambda i, c: 1 / 0 if i == (4, 3) else 1))


def test_progressbar_sees_stream_tasks(capsys):
    from dask.diagnostics import ProgressBar

    a, _ = seed(MemoryStore(), chunks=(50, 40), shape=(500, 40))
    with ProgressBar(out=None) as pbar:
        for _ in a.chunk_stream(parallel=2, scheduler="threads"):
            pass
    assert pbar._state is not None  # the local scheduler's callbacks ran for our graph


# to_dask -------------------------------------------------------------------------
def test_to_dask_round_trip_and_names():
    a, data = seed(MemoryStore(), shape=(45, 38))
    x = a.to_dask(chunks_per_task=1)
    assert x.chunks == ((10, 10, 10, 10, 5), (10, 10, 10, 8))
    assert x.name.startswith("zarrflow-read-")
    assert x.name == a.to_dask(chunks_per_task=1).name  # deterministic
    np.testing.assert_array_equal(x.compute(), data)
    np.testing.assert_array_equal(a.to_dask().compute(scheduler="sync"), data)
    np.testing.assert_array_equal(x[3:17, ::3].compute(), data[3:17, ::3])


def test_to_dask_groups_small_chunks_on_chunk_boundaries():
    a = zf.create(MemoryStore(), shape=(4096, 4096), chunks=(64, 64), dtype="u1")
    with dask.config.set({"zarrflow.parallelism": 2}):
        x = a.to_dask()
    assert x.chunksize == (1024, 4096)  # 4 MiB of whole chunks per task
    assert all(c % 64 == 0 for c in x.chunks[0])


def test_to_dask_of_a_million_chunks_is_lazy():
    a = zf.create(MemoryStore(), shape=(100_000, 100_000), chunks=(100, 100), dtype="f4")
    x = a.to_dask(chunks_per_task=1)
    assert x.npartitions == 1_000_000
    graph = x.__dask_graph__()
    assert isinstance(graph, HighLevelGraph)
    layer = graph.layers[x.name]
    assert not isinstance(layer, dict) and type(layer).__name__ == "Blockwise"


def test_sum_over_a_million_missing_chunks():
    a = zf.create(MemoryStore(), shape=(10_000, 10_000), chunks=(10, 10), dtype="f4", fill_value=1)
    assert a.nchunks == 1_000_000
    assert float(a.to_dask().sum().compute()) == 1e8


@pytest.mark.parametrize(
    ("shape", "chunks", "per_task"),
    [
        ((45, 38), (10, 10), 1),
        ((45, 38), (10, 10), None),
        ((7, 9, 11), (3, 4, 5), 2),
        ((5,), (2,), 1),
    ],
)
def test_to_dask_compute_returns_the_one_output_the_tasks_filled(shape, chunks, per_task):
    a, data = seed(MemoryStore(), chunks=chunks, shape=shape)
    x = a.to_dask(chunks_per_task=per_task)
    for scheduler in ("threads", "sync"):
        (got,) = dask.compute(x, scheduler=scheduler)  # the graph, with the shared output
        np.testing.assert_array_equal(got, data)
        assert got.flags.owndata and got.flags.writeable  # no final concatenate: the output itself
        np.testing.assert_array_equal(x.compute(scheduler=scheduler), data)  # read_all
    again = dask.compute(x)[0]
    assert not np.shares_memory(got, again)
    np.testing.assert_array_equal(x.compute(num_workers=1), data)  # options: Dask's compute
    total, whole = dask.compute(x.sum(), x)
    assert total == data.sum()
    np.testing.assert_array_equal(whole, data)
    np.testing.assert_array_equal(x.persist().compute(), data)
    np.testing.assert_array_equal(x.compute(optimize_graph=False), data)
    assert type(x) is type(x + 1) is type(x[1:]) is da.Array  # plain dask arrays


def test_to_dask_compute_reads_in_tasks_that_callbacks_see():
    from dask.callbacks import Callback

    a, data = seed(MemoryStore(), shape=(45, 38))
    started = []
    with Callback(start_state=lambda dsk, state: started.append(len(state["ready"]))):
        np.testing.assert_array_equal(a.to_dask().compute(), data)
    assert started and started[0] >= 1  # a graph ran on the threaded scheduler


def test_to_dask_compute_on_processes_reads_each_block_apart(tmp_path):
    a, data = seed(str(tmp_path / "p"), shape=(45, 38))
    got = a.to_dask(chunks_per_task=4).compute(scheduler="processes", num_workers=2)
    np.testing.assert_array_equal(got, data)


def test_a_returned_output_is_never_written_again():
    """The optimised graph run twice: the second run must not write into the first's result.

    Shown to fail with the mechanism switched off (``SharedOutput.claim`` keeping
    its array once every region was handed out, and handing a region out again):
    the second run then decoded into ``first`` and the -1s were overwritten.
    """
    from zarrflow.parallel.dask_output import assemble

    a, data = seed(MemoryStore(), shape=(45, 38))
    x = a.to_dask(chunks_per_task=2)
    keys = x.__dask_keys__()
    graph = dict(x.__dask_optimize__(x.__dask_graph__(), keys))
    first = assemble(dask.threaded.get(graph, keys))
    assert first.flags.owndata
    first[...] = -1
    second = assemble(dask.threaded.get(graph, keys))
    np.testing.assert_array_equal(second, data)
    assert (first == -1).all()


def test_shared_output_hands_each_region_out_once():
    from zarrflow.parallel.dask_output import SharedOutput

    out = SharedOutput((4, 4), "i2", nblocks=2)
    top = out.claim((0, 0), (slice(0, 2), slice(0, 4)))
    again = out.claim((0, 0), (slice(0, 2), slice(0, 4)))  # a second run's task, say
    assert again.shape == (2, 4) and not np.shares_memory(top, again)
    bottom = out.claim((1, 0), (slice(2, 4), slice(0, 4)))
    assert bottom.base is top.base
    fresh = out.claim((0, 0), (slice(0, 2), slice(0, 4)))  # complete: a new array from now on
    assert fresh.base is not top.base


# to_zarr --------------------------------------------------------------------------
def test_to_zarr_aligned_and_unaligned(tmp_path):
    data = np.random.default_rng(2).normal(size=(90, 70)).astype("f4")
    x = da.from_array(data, chunks=(30, 35))
    a = zf.to_zarr(x, str(tmp_path / "aligned"), chunks=(15, 35))
    np.testing.assert_array_equal(a[:], data)
    assert zf.plan_write(x.chunks, a, (slice(0, 90), slice(0, 70))).strategy == "aligned"
    y = da.from_array(data, chunks=(17, 23))
    for strategy in ("auto", "lock"):
        b = zf.to_zarr(y, str(tmp_path / strategy), chunks=(10, 10), strategy=strategy)
        np.testing.assert_array_equal(b[:], data)
    with pytest.raises(zf.ZarrflowError, match="aligned"):
        zf.to_zarr(y, str(tmp_path / "x"), chunks=(10, 10), strategy="aligned")


def test_to_zarr_region_keeps_the_rest(tmp_path):
    a = zf.create(str(tmp_path / "r"), shape=(40, 40), chunks=(10, 10), dtype="i4", fill_value=-1)
    a[:] = 5
    block = da.from_array(np.arange(13 * 17, dtype="i4").reshape(13, 17), chunks=(6, 5))
    zf.to_zarr(block, a, region=(slice(3, 16), slice(20, 37)))
    expected = np.full((40, 40), 5, "i4")
    expected[3:16, 20:37] = np.arange(13 * 17).reshape(13, 17)
    np.testing.assert_array_equal(a[:], expected)
    with pytest.raises(zf.ValueShapeError, match="region"):
        zf.to_zarr(block, a, region=(slice(0, 5), slice(0, 5)))


def test_to_zarr_compute_false_returns_delayed(tmp_path):
    x = da.ones((20, 20), chunks=7, dtype="i2")
    target = zf.create(str(tmp_path / "d"), shape=(20, 20), chunks=(5, 5), dtype="i2")
    delayed = zf.to_zarr(x, target, compute=False)
    assert target.nchunks_initialized == 0
    plan = delayed.compute()
    assert plan.strategy == "rechunk" and target[:].sum() == 400


def test_to_zarr_on_processes_scheduler(tmp_path):
    x = da.from_array(np.arange(100, dtype="i8"), chunks=13)
    a = zf.to_zarr(x, str(tmp_path / "p"), chunks=(10,), scheduler="processes")
    np.testing.assert_array_equal(a[:], np.arange(100))
    with pytest.raises(zf.ZarrflowError, match="multiprocessing"):
        zf.to_zarr(x, a, strategy="lock", scheduler="processes")


def _interleaved(n_blocks: int, width: int) -> tuple[da.Array, np.ndarray]:
    """Blocks of width ``width``; every chunk of width ``2 * width + 1`` has several writers."""
    values = np.repeat(np.arange(1, n_blocks + 1, dtype="i4"), width)[None, :].repeat(3, 0)
    return da.from_array(values, chunks=(3, width)), values


def test_to_zarr_lock_strategy_loses_nothing(tmp_path):
    x, values = _interleaved(64, 3)
    a = zf.create(LocalStore(tmp_path / "l"), shape=values.shape, chunks=(3, 7), dtype="i4")
    zf.to_zarr(x, a, strategy="lock", scheduler="threads")
    np.testing.assert_array_equal(a[:], values)


def test_to_zarr_without_locks_loses_updates():
    """The safety switched off: four blocks share one chunk and all read it first."""
    x, values = _interleaved(4, 1)
    store = BarrierStore(4)
    a = zf.create(store, shape=values.shape, chunks=(3, 4), dtype="i4")
    with dask.config.set({"zarrflow.lock": "none", **NO_CONDITIONS, "num_workers": 4}):
        zf.to_zarr(x, a, strategy="lock", scheduler="threads")
    store.armed = False
    got = a.read_chunk((0, 0))
    assert not np.array_equal(got, values)
    assert (got[0] != 0).sum() == 1  # only the last writer's column survived


def test_parallel_setitem_spanning_many_chunks(tmp_path):
    a = zf.create(str(tmp_path / "s"), shape=(300, 300), chunks=(20, 20), dtype="f8")
    data = np.random.default_rng(3).random((300, 300))
    a[:] = data
    a[5:295, 7:293] = data[5:295, 7:293] * 2  # partial edge chunks, in parallel
    expected = data.copy()
    expected[5:295, 7:293] *= 2
    np.testing.assert_array_equal(a[:], expected)
