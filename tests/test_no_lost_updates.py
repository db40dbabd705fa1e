"""Nothing is lost: conditional partial writes, consistent shard reads, safe metadata updates.

Writers and readers here are independent OS processes (plain forked
``multiprocessing``, no Dask, no shared lock; harnesses in
:mod:`zarrflow.testing.contention`), threads, or tasks on a real
``LocalCluster``. Each safety test was run once with its mechanism switched
off (``zarrflow.conditional_writes`` / ``zarrflow.consistent_reads`` False),
on 2026-12-04, and failed; the local controls are kept as tests:

* 4 processes x 125 read-modify-writes of their own columns of one chunk,
  local files: 171, 200 and 214 of 500 updates lost (shard: 182 and 183 of
  500, plus a read that did not decode); on moto's S3 the same harness with
  conditional writes loses 0 of 500 (benchmarks/bench_reliability.py).
* 2 reader processes x 5000 partial reads of a shard one process rewrites:
  96 mixed reads of 5000 with unpinned reads; 0 of 10,000 pinned.
* 2 processes x 60 appends: 26 of 120 rows lost without compare-and-swap.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest

import zarrflow as zf
from conftest import NO_CONDITIONS
from zarrflow.chunks.locks import lock_name
from zarrflow.storage import FsspecStore, LocalStore, MemoryStore, Store
from zarrflow.storage.wrapper import StoreWrapper
from zarrflow.testing.contention import run_appenders, run_counters, run_mixed_reads
from zarrflow.testing.faults import FaultyStore

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="forks the writer processes"),
]


def _counter_array(url: str, sharded: bool, options: dict | None = None) -> None:
    if sharded:  # two inner chunks of 4 in one shard: each writer half an inner chunk
        zf.create(url, shape=(1, 8), chunks=(1, 4), shards=(1, 8), dtype="i4",
                  storage_options=options)  # fmt: skip
    else:
        zf.create(url, shape=(1, 8), chunks=(1, 8), dtype="i4", storage_options=options)


# -- independent processes: partial writes of one chunk / shard ---------------------------------
@pytest.mark.parametrize("sharded", [False, True], ids=["chunk", "shard"])
def test_processes_writing_parts_of_one_chunk_lose_nothing(tmp_path: Path, sharded: bool) -> None:
    """4 processes x 125 rounds on one chunk (or shard) of local files: 0 of 500 lost."""
    url = str(tmp_path / "c.zarr")
    _counter_array(url, sharded)
    got = run_counters(url, None, processes=4, rounds=125)
    assert got == {"rounds": 500, "lost": 0, "corrupt_reads": 0}


@pytest.mark.parametrize("sharded", [False, True], ids=["chunk", "shard"])
def test_processes_on_s3_lose_nothing(s3_store_url: str, s3_storage_options: dict, sharded):
    """The same on moto's S3 (If-Match / If-None-Match PUTs), 3 x 25 rounds to stay quick.

    benchmarks/bench_reliability.py runs 4 x 125 (500 rounds) here: 0 lost.
    """
    _counter_array(s3_store_url, sharded, s3_storage_options)
    got = run_counters(s3_store_url, s3_storage_options, processes=3, rounds=25)
    assert got == {"rounds": 75, "lost": 0, "corrupt_reads": 0}


def test_without_conditional_writes_processes_lose_updates(tmp_path: Path) -> None:
    """The control: the same harness with plain writes loses updates (171-214 of 500)."""
    url = str(tmp_path / "c.zarr")
    _counter_array(url, False)
    got = run_counters(url, None, processes=4, rounds=100, conditional=False)
    assert got["lost"] > 0


# -- readers beside a writer rewriting shards ------------------------------------------------
def _shard_array(url: str, options: dict | None = None) -> None:
    a = zf.create(url, shape=(1, 64), chunks=(1, 4), shards=(1, 64), dtype="i4",
                  storage_options=options)  # fmt: skip
    a[...] = 1


def test_readers_never_see_a_mixed_shard(tmp_path: Path) -> None:
    """2 reader processes x 5000 partial reads while a process rewrites the shard: 0 mixed."""
    url = str(tmp_path / "s.zarr")
    _shard_array(url)
    got = run_mixed_reads(url, None, readers=2, reads=5000)
    assert (got["reads"], got["mixed"], got["corrupt"]) == (10_000, 0, 0)
    assert got["versions"] > 50  # the shard did change under the readers


def test_readers_never_see_a_mixed_shard_on_s3(s3_store_url: str, s3_storage_options: dict):
    """The same on moto's S3 (ranged GETs with If-Match), 2 x 40 reads (a few seconds;
    benchmarks/bench_reliability.py reads more)."""
    _shard_array(s3_store_url, s3_storage_options)
    got = run_mixed_reads(s3_store_url, s3_storage_options, readers=2, reads=40)
    assert (got["reads"], got["mixed"], got["corrupt"]) == (80, 0, 0)
    assert got["versions"] > 5


def test_without_pinned_reads_readers_see_mixed_shards(tmp_path: Path) -> None:
    """The control: unpinned ranged reads return two versions' values (96 of 5000)."""
    url = str(tmp_path / "s.zarr")
    _shard_array(url)
    got = run_mixed_reads(url, None, readers=2, reads=2000, conditional=False)
    assert got["mixed"] + got["corrupt"] > 0


# -- appends and metadata -------------------------------------------------------------------------
def test_two_processes_appending_lose_no_row(tmp_path: Path) -> None:
    """2 processes x 60 one-row appends (chunks of 4 rows: shared edge chunks): 120 rows."""
    url = str(tmp_path / "a.zarr")
    zf.create(url, shape=(0, 3), chunks=(4, 3), dtype="i4")
    assert run_appenders(url, None, processes=2, rounds=60) == {"rows": 120, "lost": 0}
    assert zf.open_array(url, mode="r").shape == (120, 3)


def test_two_threads_appending_lose_no_row(tmp_path: Path) -> None:
    """Two handles in two threads, 60 appends each: every row once, none at the fill value."""
    url = str(tmp_path / "a.zarr")
    zf.create(url, shape=(0, 3), chunks=(4, 3), dtype="i4")
    start = threading.Barrier(2, timeout=30)

    def work(ident: int) -> None:
        a = zf.open_array(url, mode="r+")
        start.wait()
        for _ in range(60):
            a.append(np.full((1, 3), ident, "i4"))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(work, [1, 2]))
    got = zf.open_array(url, mode="r")[...]
    assert got.shape == (120, 3)
    assert sorted(np.unique(got[:, 0], return_counts=True)[1].tolist()) == [60, 60]
    assert (got == got[:, :1]).all()  # no torn row


def test_a_stale_handle_setting_attributes_keeps_the_shape(tmp_path: Path) -> None:
    """Handle B, opened before A appended, sets an attribute: A's rows stay (was: reverted)."""
    url = str(tmp_path / "a.zarr")
    zf.create(url, shape=(2, 2), chunks=(2, 2), dtype="i4", attributes={"a": 1})
    a = zf.open_array(url, mode="r+")
    b = zf.open_array(url, mode="r+")
    a.append(np.ones((3, 2), "i4"))
    a.attrs["from_a"] = True
    b.attrs["from_b"] = True
    c = zf.open_array(url, mode="r")
    assert c.shape == (5, 2)
    assert dict(c.attrs) == {"a": 1, "from_a": True, "from_b": True}
    assert b.shape == (5, 2) and dict(b.attrs) == dict(c.attrs)  # B took what is stored
    del b.attrs["a"]
    assert dict(zf.open_array(url, mode="r").attrs) == {"from_a": True, "from_b": True}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_stale_resize_keeps_attributes_and_a_group_keeps_its_members(tmp_path, zarr_format):
    url = str(tmp_path / "g.zarr")
    g = zf.open_group(url, mode="w", zarr_format=zarr_format)
    g.create_array("x", shape=(4,), chunks=(2,), dtype="u1")
    a, b = zf.open_array(url + "/x", mode="r+"), zf.open_array(url + "/x", mode="r+")
    a.attrs["units"] = "m"
    b.resize(6)  # b never saw "units"
    c = zf.open_array(url + "/x", mode="r")
    assert c.shape == (6,) and dict(c.attrs) == {"units": "m"}
    g1, g2 = zf.open_group(url, mode="r+"), zf.open_group(url, mode="r+")
    g1.attrs["one"] = 1
    g2.attrs["two"] = 2
    assert dict(zf.open_group(url, mode="r").attrs) == {"one": 1, "two": 2}


def test_concurrent_attribute_writers_in_threads_keep_every_key(tmp_path: Path) -> None:
    url = str(tmp_path / "a.zarr")
    zf.create(url, shape=(2,), chunks=(2,), dtype="u1")
    handles = [zf.open_array(url, mode="r+") for _ in range(4)]
    start = threading.Barrier(4, timeout=30)

    def work(k: int) -> None:
        start.wait()
        for i in range(15):
            handles[k].attrs[f"h{k}-{i}"] = i

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert len(zf.open_array(url, mode="r").attrs) == 60


# -- failed writes ---------------------------------------------------------------------------------
def test_a_failing_chunk_in_a_locked_to_zarr_is_listed_once_and_keeps_its_content(tmp_path):
    """Four blocks write parts of each chunk; chunk c/0/0 fails for good: old, listed once."""
    store = LocalStore(tmp_path / "a.zarr")
    a = zf.create(store, shape=(3, 8), chunks=(3, 4), dtype="i4")
    a[...] = 1
    bad = FaultyStore(store, permanent=1.0, ops=("set",), match=r"c/0/0$")
    b = zf.open_array(bad, mode="r+")
    x = da.full((3, 8), 7, chunks=(3, 1), dtype="i4")
    with pytest.raises(zf.ParallelChunkError) as err:
        zf.to_zarr(x, b, strategy="lock", scheduler="threads")
    assert [f.chunk_index for f in err.value.failures] == [(0, 0)]
    got = zf.open_array(store, mode="r")[...]
    np.testing.assert_array_equal(got[:, :4], 1)  # exactly the old content
    np.testing.assert_array_equal(got[:, 4:], 7)


class _FailsOnce(FaultyStore):
    """Every conditional write of one key fails (permanently) once, then succeeds."""

    def __init__(self, inner: Store, key: str) -> None:
        super().__init__(inner)
        self.key, self.failed = key, threading.Event()
        self.lock = threading.Lock()

    def set_if(self, key: str, value: bytes, condition: Any) -> str:
        with self.lock:
            first = key == self.key and not self.failed.is_set()
            if first:
                self.failed.set()
        if first:
            raise zf.StoreError(f"injected: writing {key!r} failed")
        return super().set_if(key, value, condition)


def test_a_write_failing_once_lands_whole_or_not_at_all(tmp_path: Path) -> None:
    """Each block's part of a chunk is one conditional write: the failed one is wholly absent."""
    store = LocalStore(tmp_path / "a.zarr")
    a = zf.create(store, shape=(3, 4), chunks=(3, 4), dtype="i4")
    a[...] = 1
    b = zf.open_array(_FailsOnce(store, "c/0/0"), mode="r+")
    x = da.from_array(np.arange(2, 14, dtype="i4").reshape(3, 4), chunks=(3, 1))
    with pytest.raises(zf.ParallelChunkError) as err:
        zf.to_zarr(x, b, strategy="lock", scheduler="threads")
    assert [f.chunk_index for f in err.value.failures] == [(0, 0)]
    got = zf.open_array(store, mode="r")[...]
    new = np.arange(2, 14, dtype="i4").reshape(3, 4)
    columns = [("new" if (got[:, j] == new[:, j]).all() else "old") for j in range(4)]
    assert all((got[:, j] == 1).all() for j in range(4) if columns[j] == "old")
    assert columns.count("old") == 1  # the one failed block's part, wholly old


# -- locks ------------------------------------------------------------------------------------
def test_a_symlinked_root_shares_the_real_paths_locks(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    assert lock_name(LocalStore(link).url, "c/0") == lock_name(LocalStore(real).url, "c/0")


def test_threads_through_a_symlink_and_the_real_path_lose_nothing_by_locks_alone(tmp_path):
    """Conditional writes off: the real-path lock alone keeps 2 x 200 partial writes."""
    real = tmp_path / "real"
    zf.create(str(real), shape=(1, 2), chunks=(1, 2), dtype="i4")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    arrays = [zf.open_array(str(real), mode="r+"), zf.open_array(str(link), mode="r+")]
    start = threading.Barrier(2, timeout=30)

    def work(k: int) -> None:
        start.wait()
        for i in range(200):
            arrays[k][0, k] = i + 1

    with dask.config.set(NO_CONDITIONS), ThreadPoolExecutor(2) as pool:
        list(pool.map(work, range(2)))
    assert arrays[0][0].tolist() == [200, 200]


# -- the cluster: a client thread beside tasks, a paused worker ---------------------------------
def test_a_client_thread_beside_locked_cluster_writes_loses_nothing(client, tmp_path: Path):
    """Cluster tasks write row 0 of each chunk (distributed locks) while a client thread
    writes row 1 of the same chunks (a thread lock): different locks, no update lost.

    Control, run once with conditional writes off (client and workers): round 1
    already lost the cluster's update of columns 44-47 (reverted to 0 by the client).
    """
    url = str(tmp_path / "a.zarr")
    a = zf.create(url, shape=(2, 64), chunks=(2, 8), dtype="i4")
    rounds = 3
    done = threading.Event()

    def client_writes() -> int:
        n = 0
        while not done.is_set() or n < rounds:
            n += 1
            a[1, :] = n
        return n

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(client_writes)
        try:
            for r in range(1, rounds + 1):
                x = da.full((1, 64), r, chunks=(1, 2), dtype="i4")
                zf.to_zarr(x, a, region=(slice(0, 1), slice(None)), strategy="lock",
                           scheduler=client)  # fmt: skip
                assert (zf.open_array(url, mode="r")[0] == r).all()
        finally:
            done.set()
        n = future.result(timeout=60)
    got = zf.open_array(url, mode="r")[...]
    assert (got[0] == rounds).all() and (got[1] == n).all()


class _PausingStore(LocalStore):
    """A LocalStore whose first versioned read of ``c/0/0`` in a worker stops there:
    it sets ``<name>-reached`` and waits for ``<name>-go`` (distributed Events)."""

    def __init__(self, root: str, name: str) -> None:
        super().__init__(root)
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (_PausingStore, (self.root, self.name))

    def get_versioned(self, key: str):
        found = super().get_versioned(key)
        self._maybe_pause(key)
        return found

    def get(self, key: str):  # the read of a plain (unconditional) read-modify-write
        found = super().get(key)
        self._maybe_pause(key)
        return found

    def _maybe_pause(self, key: str) -> None:
        if key != "c/0/0" or os.environ.get("ZARRFLOW_TEST_NO_PAUSE") is not None:
            return
        from distributed import Event, get_worker

        try:
            get_worker()
        except ValueError:  # the client itself: never pause
            return
        os.environ["ZARRFLOW_TEST_NO_PAUSE"] = "1"  # once per worker process
        Event(f"{self.name}-reached").set()
        Event(f"{self.name}-go").wait(60)


def test_a_paused_worker_that_outlived_its_lock_retries_against_fresh_data(client, tmp_path):
    """A worker reads a chunk for a partial write and is SIGSTOPped there; meanwhile the
    client writes another part of that chunk; SIGCONT: the worker's conditional write
    fails and is merged into the fresh bytes, so both parts survive.

    Control, run once with conditional writes off: the worker's stale write put
    back row 1 as it read it, ``[[5, 5, 0, 0], [0, 0, 0, 0]]``.
    """
    from distributed import Event

    name = f"pause-{os.getpid()}-{tmp_path.name}"
    root = str(tmp_path / "a.zarr")
    zf.create(root, shape=(2, 4), chunks=(2, 4), dtype="i4")
    client.run(os.environ.pop, "ZARRFLOW_TEST_NO_PAUSE", None)
    store = _PausingStore(root, name)
    b = zf.open_array(store, mode="r+")
    future = client.submit(b.__setitem__, (0, slice(0, 2)), 5, pure=False)
    assert Event(f"{name}-reached", client=client).wait(60)
    flags = client.run(lambda: (os.getpid(), os.environ.get("ZARRFLOW_TEST_NO_PAUSE")))
    paused = [pid for pid, flag in flags.values() if flag == "1"]  # the worker holding the read
    assert len(paused) == 1
    os.kill(paused[0], signal.SIGSTOP)
    try:
        zf.open_array(root, mode="r+")[1, :] = 9  # the client: a thread lock, not the worker's
    finally:
        os.kill(paused[0], signal.SIGCONT)
    Event(f"{name}-go", client=client).set()
    future.result(timeout=60)
    got = zf.open_array(root, mode="r")[...]
    assert got.tolist() == [[5, 5, 0, 0], [9, 9, 9, 9]]


class _AttrsChangeWhileListing(MemoryStore):
    """Sets a root attribute (through another handle) the first time the hierarchy is listed."""

    def __init__(self, generations: bool = True) -> None:
        super().__init__()
        self.generations, self.armed = generations, False

    @property
    def supports_generations(self) -> bool:
        return self.generations

    def list_dir(self, prefix: str) -> list[str]:
        if self.armed:
            self.armed = False
            zf.open_group(self, mode="r+").attrs["late"] = 1
        return super().list_dir(prefix)

    def list_prefix(self, prefix: str):
        if self.armed:
            self.armed = False
            zf.open_group(self, mode="r+").attrs["late"] = 1
        return super().list_prefix(prefix)


@pytest.mark.parametrize("generations", [True, False], ids=["cas", "control"])
def test_consolidating_keeps_an_attribute_set_meanwhile(generations: bool) -> None:
    """An attribute set while the hierarchy is collected survives consolidation (v3);
    the control, a store without generations, loses it (a documented limit)."""
    store = _AttrsChangeWhileListing(generations)
    g = zf.open_group(store, mode="w")
    g.create_array("x", shape=(2,), dtype="u1")
    store.armed = True
    zf.consolidate_metadata(store)
    assert not store.armed  # the attribute was set during the consolidation
    attrs = dict(zf.open_group(store, mode="r").attrs)
    assert attrs == ({"late": 1} if generations else {})
    assert "x" in zf.open_group(store, mode="r", use_consolidated=True)


class _RequestLog(StoreWrapper):
    """Records each write call by kind: ``("set" | "set_if" | "delete" | "delete_if", key)``."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.log: list[tuple[str, str]] = []

    def set(self, key: str, value: bytes) -> None:
        self.log.append(("set", key))
        super().set(key, value)

    def set_if(self, key: str, value: bytes, condition: Any) -> str:
        self.log.append(("set_if", key))
        return super().set_if(key, value, condition)

    def delete(self, key: str) -> None:
        self.log.append(("delete", key))
        super().delete(key)

    def delete_if(self, key: str, condition: Any) -> None:
        self.log.append(("delete_if", key))
        super().delete_if(key, condition)


@pytest.mark.parametrize("sharded", [False, True], ids=["chunks", "shards"])
def test_on_s3_every_partial_write_is_conditional(s3_store_url, s3_storage_options, sharded):
    """The request log on moto's S3: partial chunk/shard writes (and an all-fill partial
    write) are set_if/delete_if; whole-chunk writes are plain PUTs; metadata is set_if."""
    kw = {"chunks": (2, 2), "shards": (2, 4)} if sharded else {"chunks": (2, 4)}
    zf.create(s3_store_url, shape=(2, 8), dtype="i4", storage_options=s3_storage_options, **kw)
    log = _RequestLog(FsspecStore(s3_store_url, s3_storage_options))
    a = zf.open_array(log, mode="r+")
    a[:, :4] = 1  # whole chunk (or shard) c/0/0
    whole = list(log.log)
    log.log.clear()
    a[0, 4:6] = 2  # part of c/0/1 (absent: IfAbsent)
    a[1, 5:8] = 3  # part of c/0/1 again (IfGeneration)
    a[0, 4:6] = 0  # back to fill...
    a[1, 5:8] = 0  # ...the chunk is all fill: delete_if
    partial = list(log.log)
    log.log.clear()
    a.attrs["k"] = 1
    a.resize(2, 12)
    meta = list(log.log)
    assert whole == [("set", "c/0/0")]
    assert partial == [("set_if", "c/0/1")] * 3 + [("delete_if", "c/0/1")]
    assert meta and all(kind == "set_if" for kind, _ in meta)
    assert a[...].tolist() == [[1] * 4 + [0] * 8] * 2


def _read_in_child(url: str, options: dict, results: Any) -> None:
    b = zf.open_array(url, mode="r", storage_options=options)
    results.put(b[:, 4:60:8])


def test_remote_partial_reads_of_several_shards_overlap_and_survive_a_fork(
    s3_store_url: str, s3_storage_options: dict
) -> None:
    """Pinned reads of several S3 shards go side by side on a shared pool; a process
    forked after the parent used that pool reads too (the pool is started afresh).

    Control, run once without the at-fork reset: the child hung (queue.Empty).
    """
    import multiprocessing

    data = np.arange(8 * 64, dtype="f4").reshape(8, 64)
    a = zf.create(s3_store_url, shape=data.shape, chunks=(8, 4), shards=(8, 16), dtype="f4",
                  storage_options=s3_storage_options)  # fmt: skip
    a[...] = data
    b = zf.open_array(s3_store_url, mode="r", storage_options=s3_storage_options)
    np.testing.assert_array_equal(b[:, 4:60:8], data[:, 4:60:8])  # 4 shards, part of each
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(s3_store_url, s3_storage_options, results))
    child.start()
    got = results.get(timeout=60)
    child.join(30)
    assert child.exitcode == 0
    np.testing.assert_array_equal(got, data[:, 4:60:8])
