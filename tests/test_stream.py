"""The stream engine on local threads: batch hand-off, its memory bound, inline short streams.

``zarrflow.stream_inline_seconds`` set to 0 forces every stream onto Dask
tasks, so that the threaded path is exercised even on these small arrays.
"""

from __future__ import annotations

import itertools
import threading

import dask
import numpy as np
import pytest
from dask.callbacks import Callback

import zarrflow as zf
from conftest import CountingStore
from zarrflow.parallel.driver import _workers, run_chunk_tasks
from zarrflow.parallel.scheduling import Backend
from zarrflow.storage import MemoryStore

THREADS = Backend("threads")


@pytest.fixture
def on_tasks():
    """Every stream runs as Dask tasks, however short."""
    with dask.config.set({"zarrflow.stream_inline_seconds": 0}):
        yield


def seed(shape=(60, 50), chunks=(10, 10), dtype="int32"):
    a = zf.create(MemoryStore(), shape=shape, chunks=chunks, dtype=dtype)
    data = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    a[:] = data
    return a, data


def grid(a):
    return list(itertools.product(*(range(n) for n in a.chunk_grid_shape)))


# batch hand-off ------------------------------------------------------------------
@pytest.mark.parametrize("parallel", [2, 3, 8])
@pytest.mark.parametrize("batch", [1, 4, 7])
def test_batches_keep_grid_order(on_tasks, parallel, batch):
    indices = [(i,) for i in range(103)]  # not a multiple of any batch size
    got = list(
        run_chunk_tasks(
            lambda i: i[0] * 2, indices, backend=THREADS, parallel=parallel, batch=batch
        )
    )
    assert got == [(i, i[0] * 2) for i in indices]


@pytest.mark.parametrize("batch", [1, 5])
def test_unordered_batches_yield_every_index_once(on_tasks, batch):
    indices = [(i,) for i in range(101)]
    got = list(
        run_chunk_tasks(
            lambda i: i, indices, backend=THREADS, parallel=4, ordered=False, batch=batch
        )
    )
    assert sorted(got) == [(i, i) for i in indices]


def test_stream_of_small_chunks_on_tasks(on_tasks):
    a, data = seed(shape=(95, 83))  # 400-byte chunks: many per task; ragged edges
    for ordered in (True, False):
        got = list(a.chunk_stream(parallel=4, ordered=ordered, scheduler="threads"))
        assert sorted(idx for idx, _ in got) == grid(a)
        if ordered:
            assert [idx for idx, _ in got] == grid(a)
        for idx, chunk in got:
            np.testing.assert_array_equal(chunk, data[a.chunk_slices(idx)])


@pytest.mark.parametrize("ordered", [True, False])
def test_chunks_read_never_outrun_the_window(on_tasks, ordered):
    """Chunks started minus chunks handed over stays within 2 × parallel × batch."""
    parallel, batch = 2, 3
    window = 2 * parallel * batch
    lock = threading.Lock()
    counts = {"started": 0, "consumed": 0, "most": 0}

    def work(idx):
        with lock:
            counts["started"] += 1
            counts["most"] = max(counts["most"], counts["started"] - counts["consumed"])
        return idx

    indices = [(i,) for i in range(300)]
    for _ in run_chunk_tasks(
        work, indices, backend=THREADS, parallel=parallel, ordered=ordered, batch=batch
    ):
        with lock:
            counts["consumed"] += 1
    assert counts["started"] == 300
    assert counts["most"] <= window


def test_a_stuck_first_chunk_fills_the_window_and_no_more(on_tasks):
    """Ordered: while chunk 0 is stuck, the other thread reads up to the window, then waits."""
    parallel, batch = 2, 2
    window = 2 * parallel * batch
    # chunk 0's batch is claimed by one thread, stuck in chunk 0; the other thread
    # claims the following batches until ``window`` chunks are held: chunk 0 plus
    # window - batch more.
    full = 1 + window - batch
    cond = threading.Condition()
    started: list[tuple[int, ...]] = []
    consumed = []

    def work(idx):
        with cond:
            started.append(idx)
            assert len(started) - len(consumed) <= window
            cond.notify_all()
            if idx == (0,):
                assert cond.wait_for(lambda: len(started) >= full, timeout=30), started
                held_when_released = len(started)
                assert held_when_released == full, started
        return idx

    stream = run_chunk_tasks(
        work, [(i,) for i in range(40)], backend=THREADS, parallel=parallel, batch=batch
    )
    for idx, _ in stream:
        with cond:
            consumed.append(idx)
    assert consumed == [(i,) for i in range(40)]


def test_early_stop_cancels_batches(on_tasks):
    a, _ = seed(shape=(2000, 10), chunks=(1, 10))  # 2000 chunks of 40 bytes
    store = CountingStore(a.store)
    b = zf.open_array(store, mode="r")
    stream = b.chunk_stream(parallel=4, scheduler="threads")
    taken = list(itertools.islice(stream, 5))
    stream.close()
    assert len(taken) == 5
    reads_at_stop = store.chunk_reads()
    batch = 64  # 40-byte chunks: the most chunks per task
    assert reads_at_stop <= 5 + 2 * 4 * batch
    assert reads_at_stop < b.nchunks
    assert store.chunk_reads() == reads_at_stop  # nothing starts after the close


def test_error_inside_a_batch_names_the_chunk(on_tasks):
    store = MemoryStore()
    a = zf.create(store, shape=(40, 40), chunks=(4, 4), dtype="int32")  # 64-byte chunks
    a[:] = 1
    store.set(a.chunk_key((3, 5)), b"garbage")
    with pytest.raises(zf.ParallelChunkError, match=r"\(3, 5\)") as err:
        list(a.chunk_stream(parallel=4, scheduler="threads"))
    assert err.value.failures[0].chunk_index == (3, 5)
    results = dict(
        a.parallel_chunk_map(lambda i, c: int(c.sum()), max_concurrency=3, on_error="return")
    )
    assert isinstance(results.pop((3, 5)), zf.ChunkFailure)
    assert set(results.values()) == {16}


def test_a_filter_that_raises_reaches_the_consumer(on_tasks):
    a, _ = seed()

    def bad(idx):
        if idx == (4, 2):
            raise KeyError("filter broke")
        return True

    with pytest.raises(KeyError, match="filter broke"):
        list(a.chunk_stream(parallel=3, filter=bad, scheduler="threads"))


def test_interleaved_streams_do_not_wait_for_each_other(on_tasks):
    # 2000 chunks each, more than either window: each stream's threads wait on its consumer
    a, _ = seed(shape=(2000, 10), chunks=(1, 10))
    b, _ = seed(shape=(10, 2000), chunks=(10, 1))
    pairs = zip(a.chunk_stream(parallel=2), b.chunk_stream(parallel=2), strict=True)
    assert sum(1 for _ in pairs) == 2000


def test_threads_are_kept_between_streams(on_tasks):
    a, _ = seed()

    def task_threads():
        return {t for t in threading.enumerate() if t.name.startswith("zarrflow-task")}

    list(a.chunk_stream(parallel=3))
    before = task_threads()
    list(a.chunk_stream(parallel=3))
    assert task_threads() == before


def test_tasks_are_named_for_the_diagnostics(on_tasks):
    a, _ = seed()
    keys = []

    class Keys(Callback):
        def _pretask(self, key, dsk, state):
            keys.append(key)

    with Keys():
        list(a.chunk_stream(parallel=2))
        list(a.parallel_chunk_map(lambda i, c: 1, max_concurrency=2))
    names = {k[0].rsplit("-", 2)[0] for k in keys}
    assert names == {"zarrflow-read", "zarrflow-map"}


# short streams stay inline -------------------------------------------------------
def test_a_short_stream_stays_in_the_callers_thread():
    a, data = seed()
    caller = threading.get_ident()
    threads = set()

    def fn(idx, chunk):
        threads.add(threading.get_ident())
        return int(chunk.sum())

    with dask.config.set({"zarrflow.stream_inline_seconds": 60}):
        sums = dict(a.parallel_chunk_map(fn, max_concurrency=4))
    assert threads == {caller}
    assert sums == {i: int(data[a.chunk_slices(i)].sum()) for i in grid(a)}


def test_a_long_stream_goes_parallel_after_its_first_chunk():
    a, data = seed()
    caller = threading.get_ident()
    threads = []

    def fn(idx, chunk):
        threads.append(threading.get_ident())
        return int(chunk.sum())

    # any first chunk projects the stream past a limit this small
    with dask.config.set({"zarrflow.stream_inline_seconds": 1e-12}):
        sums = list(a.parallel_chunk_map(fn, max_concurrency=4))
    assert sums == [(i, int(data[a.chunk_slices(i)].sum())) for i in grid(a)]
    assert threads[0] == caller
    assert caller not in threads[1:]


def test_local_diagnostics_see_a_short_stream():
    a, _ = seed()
    keys = []

    class Keys(Callback):
        def _pretask(self, key, dsk, state):
            keys.append(key)

    with dask.config.set({"zarrflow.stream_inline_seconds": 60}), Keys():
        assert len(list(a.chunk_stream(parallel=2))) == a.nchunks
    assert keys and all(k[0].startswith("zarrflow-read-") for k in keys)


def test_workers_follow_what_a_chunk_spends_its_time_on(monkeypatch):
    monkeypatch.setattr("zarrflow.parallel.driver.default_parallelism", lambda: 2)
    assert _workers(8, cpu=1.0, wall=1.0) == 2  # decoding: one thread per core
    assert _workers(8, cpu=0.5, wall=1.0) == 4  # half waiting: twice as many
    assert _workers(8, cpu=0.01, wall=1.0) == 8  # waiting on storage: all it asked for
    assert _workers(3, cpu=0.01, wall=1.0) == 3
    assert _workers(1, cpu=1.0, wall=1.0) == 1
    assert _workers(8, cpu=0.0, wall=0.0) == 8  # nothing measured


def test_sharded_stream_on_tasks_keeps_shard_order(on_tasks):
    data = np.arange(40 * 30, dtype="i4").reshape(40, 30)
    a = zf.create(MemoryStore(), shape=data.shape, chunks=(4, 5), shards=(8, 10), dtype="i4")
    a[:] = data
    got = list(a.chunk_stream(parallel=3, scheduler="threads"))
    assert [i for i, _ in got][:5] == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2)]  # shard by shard
    assert sorted(i for i, _ in got) == list(itertools.product(range(10), range(6)))
    for (r, c), chunk in got:
        np.testing.assert_array_equal(chunk, data[r * 4 : r * 4 + 4, c * 5 : c * 5 + 5])
