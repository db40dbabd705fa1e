"""Reliability under storage faults and under load.

Storage misbehaves through :class:`zarrflow.testing.faults.FaultyStore`:
seeded transient faults (``TransientStoreError``), permanent faults
(``StoreError``) on a fixed set of keys, and latency spikes. The promises
checked here (docs/reliability.md lists them):

* a parallel map retries a chunk whose read failed transiently and completes
  with the right data;
* under permanent faults every failed chunk index is reported, and what
  succeeded stays written and readable; no chunk is ever half old, half new;
* thousands of concurrent small reads and overlapping partial writes, from
  threads and from worker processes, lose no update, never deadlock and stay
  within a memory bound.

* every chunk operation (streams, maps, ``to_dask``, ``[]``, ``to_zarr``)
  retries transient faults;
* a parallel write tries every chunk and reports every failure in one
  ``ParallelChunkError``, raised only once no write is in flight.
"""

from __future__ import annotations

import contextlib
import itertools
import pickle
import random
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest

import zarrflow as zf
from zarrflow.storage import LocalStore, MemoryStore, Store
from zarrflow.testing.faults import FaultyStore, InjectedFault

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
pytestmark = pytest.mark.timeout(120)

SHAPE, CHUNKS = (60, 48), (10, 8)  # a 6 x 6 chunk grid
DATA = np.arange(np.prod(SHAPE), dtype="i4").reshape(SHAPE)


def grid(a: zf.Array) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(n) for n in a.chunk_grid_shape)))


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[LocalStore, zf.Array]:
    """A local array of DATA, opened through no wrapper."""
    store = LocalStore(tmp_path / "a.zarr")
    a = zf.create(store, shape=SHAPE, chunks=CHUNKS, dtype="i4", compressor="zstd")
    a[...] = DATA
    return store, a


def faulty(store: Store, **settings: Any) -> tuple[FaultyStore, zf.Array]:
    """The array in ``store`` opened read/write through a FaultyStore (chunk keys only)."""
    settings.setdefault("chunks_only", True)
    wrapped = FaultyStore(store, **settings)
    return wrapped, zf.open_array(wrapped, mode="r+")


def expected_failures(store: FaultyStore, a: zf.Array, op: str) -> set[tuple[int, ...]]:
    return {idx for idx in grid(a) if store.fails_permanently(op, a.chunk_key(idx))}


def assert_each_chunk_old_or_new(
    a: zf.Array, old: np.ndarray, new: np.ndarray
) -> dict[tuple[int, ...], str]:
    """Every chunk holds wholly its old or wholly its new content: which, per chunk."""
    state = {}
    for idx in grid(a):
        region = a.chunk_slices(idx)
        got = a.read_chunk(idx)[tuple(slice(0, s.stop - s.start) for s in region)]
        if np.array_equal(got, new[region]):
            state[idx] = "new"
        elif np.array_equal(got, old[region]):
            state[idx] = "old"
        else:
            raise AssertionError(f"chunk {idx} is neither old nor new: torn or garbage")
    return state


# -- the fault injector itself -----------------------------------------------------------------
def test_faults_are_reproducible_whatever_the_thread_order(tmp_path: Path) -> None:
    def run(order_seed: int) -> list[InjectedFault]:
        store = FaultyStore(MemoryStore(), transient=0.3, permanent=0.1, seed=11)
        keys = [f"c/{i}" for i in range(200)] * 3
        random.Random(order_seed).shuffle(keys)

        def touch(key: str) -> None:
            with contextlib.suppress(zf.StoreError):
                store.set(key, b"x")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(touch, keys))
        return sorted(store.faults, key=lambda f: (f.key, f.attempt))

    first, second = run(1), run(2)
    assert first == second and first
    assert {f.kind for f in first} == {"transient", "permanent"}


def test_transient_faults_never_exceed_the_run_bound() -> None:
    store = FaultyStore(MemoryStore(), transient=0.95, max_transient_run=2, seed=3)
    store.inner.set("k", b"v")
    for _ in range(50):
        value = None
        for _attempt in range(3):  # max_transient_run + 1 tries always get through
            try:
                value = store.get("k")
                break
            except zf.TransientStoreError:
                continue
        assert value == b"v"


def test_faulty_store_pickles_with_its_settings_and_targets_chunks_only() -> None:
    inner = MemoryStore(f"faults-{uuid.uuid4().hex}")
    store = FaultyStore(inner, permanent=1.0, chunks_only=True, latency=0.0, seed=5)
    clone = pickle.loads(pickle.dumps(store))
    assert clone.settings() == store.settings() and clone.url == store.url
    clone.set("a/zarr.json", b"{}")  # metadata is never faulted with chunks_only
    with pytest.raises(zf.StoreError, match="injected permanent fault"):
        clone.set("a/c/0", b"x")
    assert clone.written == {"a/zarr.json"} and len(clone.faults) == 1


def chunk_sum(idx: tuple[int, ...], chunk: np.ndarray) -> int:
    """A map function defined at module level (cheap to ship to cluster workers)."""
    return int(chunk.sum())


# -- transient faults ------------------------------------------------------------------------
@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_parallel_chunk_map_retries_transient_read_faults(seeded, scheduler: str) -> None:
    store, a = seeded
    wrapped, b = faulty(store, transient=0.4, max_transient_run=2, ops=("get",), seed=2)
    sums = dict(b.parallel_chunk_map(chunk_sum, max_concurrency=4, retries=2, scheduler=scheduler))
    assert sums == {idx: int(DATA[a.chunk_slices(idx)].sum()) for idx in grid(a)}
    assert wrapped.faults_of("transient"), "no fault was injected: the test proves nothing"


def test_parallel_chunk_map_retries_transient_faults_on_the_cluster(client, seeded) -> None:
    store, a = seeded
    _, b = faulty(store, transient=0.4, max_transient_run=2, ops=("get",), seed=4)
    sums = dict(b.parallel_chunk_map(chunk_sum, retries=2, scheduler=client))
    assert sums == {idx: int(DATA[a.chunk_slices(idx)].sum()) for idx in grid(a)}


def test_latency_spikes_are_load_not_errors(seeded) -> None:
    store, a = seeded
    _, b = faulty(store, latency=0.02, latency_rate=0.3, seed=6)
    got = list(b.chunk_stream(parallel=8, ordered=True, scheduler="threads"))
    assert [idx for idx, _ in got] == grid(a)
    for idx, chunk in got:
        np.testing.assert_array_equal(chunk, DATA[a.chunk_slices(idx)])


def _stream(b: zf.Array) -> Any:
    return dict(b.chunk_stream(parallel=4, scheduler="threads"))


def _to_dask(b: zf.Array) -> Any:
    return b.to_dask(chunks_per_task=1).compute(scheduler="threads")


def _getitem(b: zf.Array) -> Any:
    return b[...]


def _setitem(b: zf.Array) -> Any:
    b[...] = DATA + 1


def _to_zarr(b: zf.Array) -> Any:
    zf.to_zarr(da.from_array(DATA + 1, chunks=(20, 16)), b, scheduler="threads")


@pytest.mark.parametrize(
    ("operation", "ops"),
    [
        (_stream, ("get",)),
        (_to_dask, ("get",)),
        (_getitem, ("get",)),
        (_setitem, ("set",)),
        (_to_zarr, ("set",)),
    ],
    ids=["chunk_stream", "to_dask", "getitem", "setitem", "to_zarr"],
)
def test_transient_faults_are_retried_by_every_operation(
    seeded, operation: Callable[[zf.Array], Any], ops: tuple[str, ...]
) -> None:
    store, _ = seeded
    _, b = faulty(store, transient=0.3, max_transient_run=1, ops=ops, seed=8)
    operation(b)
    c = zf.open_array(store, mode="r")
    assert np.array_equal(c[...], DATA) or np.array_equal(c[...], DATA + 1)


# -- permanent faults ------------------------------------------------------------------------
@pytest.mark.parametrize("scheduler", ["sync", "threads", "cluster"])
def test_map_reports_every_chunk_that_failed_to_read(request, seeded, scheduler: str) -> None:
    store, a = seeded
    wrapped, b = faulty(store, permanent=0.25, ops=("get",), seed=9)
    bad = expected_failures(wrapped, b, "get")
    assert 0 < len(bad) < a.nchunks
    sched = request.getfixturevalue("client") if scheduler == "cluster" else scheduler
    results = dict(b.parallel_chunk_map(chunk_sum, retries=1, on_error="return", scheduler=sched))
    assert sorted(results) == grid(a)
    failed = {idx for idx, r in results.items() if isinstance(r, zf.ChunkFailure)}
    assert failed == bad
    for idx in bad:
        failure = results[idx]
        assert failure.chunk_index == idx and isinstance(failure.exception, zf.StoreError)
        assert b.chunk_key(idx) in str(failure.exception)
    for idx in set(grid(a)) - bad:
        assert results[idx] == int(DATA[a.chunk_slices(idx)].sum())


def test_map_raise_mode_names_the_failed_chunk(seeded) -> None:
    store, _ = seeded
    wrapped, b = faulty(store, permanent=0.25, ops=("get",), seed=9)
    bad = expected_failures(wrapped, b, "get")
    with pytest.raises(zf.ParallelChunkError) as err:
        list(b.parallel_chunk_map(lambda i, c: 1, max_concurrency=3, scheduler="threads"))
    assert err.value.failures and {f.chunk_index for f in err.value.failures} <= bad
    assert isinstance(err.value.__cause__, zf.StoreError)


def test_stream_stops_at_a_failed_chunk_and_names_it(seeded) -> None:
    store, a = seeded
    wrapped, b = faulty(store, permanent=0.25, ops=("get",), seed=9)
    bad = expected_failures(wrapped, b, "get")
    seen = []
    with pytest.raises(zf.ParallelChunkError) as err:
        for idx, chunk in b.chunk_stream(parallel=1):
            np.testing.assert_array_equal(chunk, DATA[a.chunk_slices(idx)])
            seen.append(idx)
    first_bad = min(bad)
    assert [f.chunk_index for f in err.value.failures] == [first_bad]
    assert seen == [idx for idx in grid(a) if idx < first_bad]


@pytest.mark.parametrize(("parallel", "scheduler"), [(1, "sync"), (4, "threads"), (4, "cluster")])
def test_stream_reports_every_chunk_that_failed_to_read(
    request, seeded, parallel: int, scheduler: str
) -> None:
    store, a = seeded
    wrapped, b = faulty(store, permanent=0.25, ops=("get",), seed=9)
    bad = expected_failures(wrapped, b, "get")
    sched = request.getfixturevalue("client") if scheduler == "cluster" else scheduler
    got = dict(b.chunk_stream(parallel=parallel, scheduler=sched, on_error="return"))
    assert sorted(got) == grid(a)
    failed = {idx for idx, c in got.items() if isinstance(c, zf.ChunkFailure)}
    assert failed == bad
    for idx in bad:
        assert isinstance(got[idx].exception, zf.StoreError)
        assert b.chunk_key(idx) in str(got[idx].exception)
    for idx in set(grid(a)) - bad:
        np.testing.assert_array_equal(got[idx], DATA[a.chunk_slices(idx)])


def test_sharded_stream_reports_every_inner_chunk_of_a_failed_shard(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s.zarr")
    a = zf.create(store, shape=SHAPE, chunks=(5, 8), shards=(20, 16), dtype="i4")
    a[...] = DATA
    b = zf.open_array(FaultyStore(store, permanent=1.0, ops=("get",), match=r"c/1/2$"), mode="r")
    got = dict(b.chunk_stream(parallel=2, scheduler="threads", on_error="return"))
    inner = list(itertools.product(range(12), range(6)))  # streams go by inner chunk
    assert sorted(got) == inner
    failed = {idx for idx, c in got.items() if isinstance(c, zf.ChunkFailure)}
    assert failed == {(i, j) for i in range(4, 8) for j in range(4, 6)}  # shard (1, 2)
    for i, j in set(inner) - failed:
        np.testing.assert_array_equal(got[i, j], DATA[5 * i : 5 * i + 5, 8 * j : 8 * j + 8])


@pytest.mark.parametrize("scheduler", ["threads", "cluster"])
def test_map_writes_under_permanent_faults_keep_what_succeeded(
    request, tmp_path: Path, scheduler: str
) -> None:
    """``fn`` writes each chunk into a target; the target's store fails some keys for good."""
    target_store = LocalStore(tmp_path / "target.zarr")
    old = np.full(SHAPE, -1, "i4")
    zf.create(target_store, shape=SHAPE, chunks=CHUNKS, dtype="i4")[...] = old
    source = zf.create(MemoryStore(), shape=SHAPE, chunks=CHUNKS, dtype="i4")
    source[...] = DATA
    if scheduler == "cluster":  # workers do not share a MemoryStore: read from disk
        source = zf.to_zarr(source.to_dask(), str(tmp_path / "source.zarr"), chunks=CHUNKS)
    wrapped, target = faulty(target_store, permanent=0.3, ops=("set",), seed=12)
    bad = expected_failures(wrapped, target, "set")
    assert 0 < len(bad) < target.nchunks

    def copy_chunk(idx: tuple[int, ...], chunk: np.ndarray) -> int:
        target[target.chunk_slices(idx)] = chunk
        return idx[0]

    sched = request.getfixturevalue("client") if scheduler == "cluster" else scheduler
    results = dict(source.parallel_chunk_map(copy_chunk, on_error="return", scheduler=sched))
    failed = {i for i, r in results.items() if isinstance(r, zf.ChunkFailure)}
    assert failed == bad
    state = assert_each_chunk_old_or_new(zf.open_array(target_store, mode="r"), old, DATA)
    assert {i for i, s in state.items() if s == "old"} == bad


@pytest.mark.parametrize("how", ["setitem", "to_zarr"])
def test_failed_writes_leave_every_chunk_old_or_new(seeded, how: str) -> None:
    store, a = seeded
    wrapped, b = faulty(store, permanent=0.2, ops=("set",), seed=13)
    bad = expected_failures(wrapped, b, "set")
    new = DATA * 2 + 1
    with pytest.raises(zf.ParallelChunkError) as err:
        if how == "setitem":
            b[...] = new
        else:
            zf.to_zarr(da.from_array(new, chunks=(20, 16)), b, scheduler="threads")
    assert {f.chunk_index for f in err.value.failures} == bad
    for f in err.value.failures:
        assert isinstance(f.exception, zf.StoreError) and b.chunk_key(f.chunk_index) in str(
            f.exception
        )
    assert isinstance(err.value.__cause__, zf.StoreError)
    assert b.chunk_key(min(bad)) in str(err.value)
    written = {i for i in grid(a) if b.chunk_key(i) in set(wrapped.written)}
    state = assert_each_chunk_old_or_new(zf.open_array(store, mode="r"), DATA, new)
    assert {i for i, s in state.items() if s == "old"} == bad  # every other chunk was tried
    assert written == set(grid(a)) - bad


class _StragglerStore(FaultyStore):
    """Chunk ``c/0/0`` fails for good; ``c/1/0`` is written once the caller got the error.

    Were in-flight writes waited for, the straggler would wait out its 3 s timeout
    and land before the call returned; no timing decides the outcome.
    """

    def __init__(self, inner: Store) -> None:
        super().__init__(inner, permanent=1.0, ops=("set",), match=r"c/0/0$")
        self.failed = threading.Event()
        self.returned = threading.Event()
        self.straggler_done = threading.Event()

    def set(self, key: str, value: bytes) -> None:
        if key.endswith("c/1/0"):
            self.failed.wait(10)
            self.returned.wait(3)
            super().set(key, value)
            self.straggler_done.set()
            return
        try:
            super().set(key, value)
        except zf.StoreError:
            self.failed.set()
            raise

    def __reduce__(self) -> tuple[Any, ...]:  # pragma: no cover - threads only
        raise TypeError("in-process only")


@pytest.mark.parametrize("how", ["setitem", "to_zarr"])
def test_no_write_lands_after_a_failed_write_returned(tmp_path: Path, how: str) -> None:
    store = _StragglerStore(LocalStore(tmp_path / "s.zarr"))
    a = zf.create(store, shape=(20, 10), chunks=(10, 10), dtype="i4")  # chunks c/0/0, c/1/0
    with dask.config.set({"zarrflow.inline_chunks": 1}), pytest.raises(zf.ParallelChunkError):
        if how == "setitem":
            a[...] = 1
        else:
            zf.to_zarr(da.ones((20, 10), chunks=(10, 10), dtype="i4"), a, scheduler="threads")
    written_when_returned = set(store.written)
    store.returned.set()
    assert store.straggler_done.wait(10)
    assert set(store.written) == written_when_returned, "a write landed after the error"


def test_no_write_lands_after_a_failed_source_block_returned(tmp_path: Path) -> None:
    """The same guarantee when the error is not a store's: a source block fails to compute."""
    store = _StragglerStore(LocalStore(tmp_path / "s.zarr"))
    a = zf.create(store, shape=(20, 10), chunks=(10, 10), dtype="i4")

    def source(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        if block_info[0]["chunk-location"][0] == 0:
            store.failed.set()
            raise ValueError("source block 0 cannot be computed")
        return block

    x = da.ones((20, 10), chunks=(10, 10), dtype="i4").map_blocks(source, dtype="i4")
    with pytest.raises(ValueError, match="source block 0"):
        zf.to_zarr(x, a, scheduler="threads")
    written_when_returned = set(store.written)
    store.returned.set()
    assert store.straggler_done.wait(10)
    assert set(store.written) == written_when_returned, "a write landed after the error"


def test_to_zarr_reports_every_failed_chunk(seeded) -> None:
    store, _ = seeded
    wrapped, b = faulty(store, permanent=0.2, ops=("set",), seed=13)
    bad = expected_failures(wrapped, b, "set")
    with pytest.raises(zf.ParallelChunkError) as err:
        zf.to_zarr(da.from_array(DATA + 5, chunks=CHUNKS), b, scheduler="threads")
    assert {f.chunk_index for f in err.value.failures} == bad


def test_failed_metadata_write_keeps_the_old_metadata(seeded) -> None:
    store, _ = seeded
    wrapped = FaultyStore(store, permanent=1.0, ops=("set",), match=r"zarr\.json$")
    b = zf.open_array(wrapped, mode="r+")
    with pytest.raises(zf.StoreError, match=r"zarr\.json"):
        b.attrs["units"] = "m"
    assert "units" not in b.attrs
    with pytest.raises(zf.StoreError, match=r"zarr\.json"):
        b.resize(70, 48)
    assert b.shape == SHAPE
    c = zf.open_array(store, mode="r")
    assert c.shape == SHAPE and dict(c.attrs) == {}
    np.testing.assert_array_equal(c[...], DATA)


# -- concurrency under load ------------------------------------------------------------------
def _owner_columns(owner: int, owners: int, width: int) -> list[int]:
    return list(range(owner, width, owners))


class RssPeak:
    """The peak resident memory of this process while the block runs (sampled every 5 ms)."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


@pytest.mark.timeout(90)
def test_thousands_of_concurrent_reads_and_partial_writes_from_threads(tmp_path: Path) -> None:
    """16 threads share every chunk; each owns some columns and overwrites them again and again.

    Any lost update (a read-modify-write racing another on the same chunk) leaves
    some column behind its owner's last value; a deadlock trips the timeout.
    """
    owners, rounds, reads_per_round = 16, 25, 6
    shape, chunks = (24, 64), (8, 8)  # every chunk has 8 owners
    store = FaultyStore(LocalStore(tmp_path / "load.zarr"), latency=0.002, latency_rate=0.05)
    a = zf.create(store, shape=shape, chunks=chunks, dtype="i4", fill_value=0)
    start = threading.Barrier(owners, timeout=30)

    def work(owner: int) -> list[str]:
        rng = random.Random(owner)
        cols = _owner_columns(owner, owners, shape[1])
        problems = []
        start.wait()
        for k in range(1, rounds + 1):
            col = cols[k % len(cols)]
            a[rng.randrange(0, 8) : rng.randrange(16, 24), col] = k  # part of 2-3 chunks
            a[:, col] = k  # the whole column: still a partial write of each chunk
            for _ in range(reads_per_round):
                r, c = rng.randrange(0, 20), rng.randrange(0, 60)
                window = a[r : r + 4, c : c + 4]
                if window.min() < 0 or window.max() > rounds:
                    problems.append(f"impossible values read at {(r, c)}: {window}")
        return problems

    with RssPeak() as rss, ThreadPoolExecutor(owners) as pool:
        futures = [pool.submit(work, owner) for owner in range(owners)]
        problems = [p for f in futures for p in f.result(timeout=80)]
    assert not problems, problems[:3]
    expected = np.zeros(shape, "i4")
    for owner in range(owners):
        cols = _owner_columns(owner, owners, shape[1])
        for k in range(1, rounds + 1):
            expected[:, cols[k % len(cols)]] = k
    np.testing.assert_array_equal(zf.open_array(store.inner, mode="r")[...], expected)
    assert store.calls["get"] > 2000 and store.calls["set"] > 1000, store.calls
    assert rss.growth < 200 << 20, f"resident memory grew by {rss.growth / 2**20:.0f} MiB"


def _process_writer(a: zf.Array, column: int, rounds: int) -> int:
    """A task on a cluster worker: overwrite ``column`` in halves, reading neighbours too."""
    for k in range(1, rounds + 1):
        a[: a.shape[0] // 2, column] = column * 100 + k
        a[a.shape[0] // 2 :, column] = column * 100 + k
        a[:, max(0, column - 2) : column + 2].sum()
    return column


@pytest.mark.timeout(90)
def test_overlapping_partial_writes_from_worker_processes(client, tmp_path: Path) -> None:
    """Tasks on two worker processes (two threads each) write columns of shared chunks."""
    columns, rounds = 40, 2
    a = zf.create(
        LocalStore(tmp_path / "procs.zarr"), shape=(6, columns), chunks=(3, 10), dtype="i4"
    )
    futures = client.map(_process_writer, [a] * columns, range(columns), [rounds] * columns)
    assert sorted(client.gather(futures)) == list(range(columns))
    expected = np.tile(np.arange(columns, dtype="i4") * 100 + rounds, (6, 1))
    np.testing.assert_array_equal(a[...], expected)
