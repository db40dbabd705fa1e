"""Telemetry (issue 15): every chunk operation reports its phases; ``zf.profile()`` sums them."""

from __future__ import annotations

import math

import dask
import numpy as np
import pytest

import zarrflow as zf
from zarrflow.storage import LocalStore, MemoryStore
from zarrflow.telemetry import HOOKS, Event, add_hook, hook, remove_hook
from zarrflow.testing.faults import FaultyStore


def _phases(p: zf.Profile, operation: str) -> set[str]:
    return {t.phase for t in p.totals() if t.operation == operation}


def _sum(p: zf.Profile, operation: str, phase: str, field: str) -> int:
    return sum(
        getattr(t, field) for t in p.totals() if t.operation == operation and t.phase == phase
    )


def _stored_chunk_bytes(store: MemoryStore | LocalStore, prefix: str = "c/") -> int:
    return sum(len(store.get(k)) for k in store.list_prefix(prefix))


@pytest.fixture
def array(tmp_path):
    a = zf.create(
        str(tmp_path / "t.zarr"), shape=(40, 30), chunks=(10, 10), dtype="i4", compressor="zstd"
    )
    a[:] = np.arange(1200, dtype="i4").reshape(40, 30)
    return a


def test_read_reports_storage_decode_and_place_with_bytes_that_add_up(array):
    with zf.profile() as p:
        out = array[:]
    np.testing.assert_array_equal(out, np.arange(1200).reshape(40, 30))
    assert {"storage", "decode"} <= _phases(p, "read")
    nchunks = 12
    assert _sum(p, "read", "storage", "count") == nchunks
    assert _sum(p, "read", "storage", "nbytes") == _stored_chunk_bytes(array.store)
    assert _sum(p, "read", "decode", "count") == nchunks
    assert _sum(p, "read", "decode", "nbytes") == nchunks * 10 * 10 * 4
    detail = {t.detail for t in p.totals() if t.phase == "decode"}
    assert detail == {"bytes+zstd"}
    assert p.seconds("storage") > 0 and p.seconds("decode") > 0


def test_to_dask_reads_report_as_read(array):
    with zf.profile() as p:
        total = array.to_dask().sum().compute(scheduler="threads")
    assert int(total) == sum(range(1200))
    assert _sum(p, "read", "decode", "nbytes") == 12 * 400


def test_write_reports_encode_storage_and_lock_waits(tmp_path):
    a = zf.create(str(tmp_path / "w.zarr"), shape=(20, 20), chunks=(10, 10), dtype="f8")
    with zf.profile() as p:
        a[:] = 1.5  # whole chunks: encode + store
        a[5:15, 5:15] = 2.5  # partial chunks: lock, read, decode, encode, store
    assert {"encode", "storage", "lock_wait", "decode"} <= _phases(p, "write")
    assert _sum(p, "write", "encode", "count") == 8
    assert _sum(p, "write", "encode", "nbytes") == 8 * 800
    assert _sum(p, "write", "lock_wait", "count") == 4
    # what the write phase stored is what the store holds now (last writes: the 4 partial)
    stored = _stored_chunk_bytes(a.store)
    assert _sum(p, "write", "storage", "nbytes") > stored > 0
    assert "read" not in {t.operation for t in p.totals()}  # the RMW reads count as the write


def test_stream_and_map_name_their_operation(array):
    with zf.profile() as p:
        streamed = sum(int(c.sum()) for _, c in array.chunk_stream(parallel=2))
        mapped = sum(r for _, r in array.parallel_chunk_map(lambda i, c: int(c.sum())))
    assert streamed == mapped == sum(range(1200))
    for op in ("stream", "map"):
        assert {"storage", "decode"} <= _phases(p, op)
        assert _sum(p, op, "decode", "count") == 12
        assert _sum(p, op, "storage", "nbytes") == _stored_chunk_bytes(array.store)


def test_sharded_reads_and_writes_report(tmp_path):
    a = zf.create(
        str(tmp_path / "s.zarr"), shape=(16, 16), chunks=(4, 4), shards=(8, 8), dtype="u2"
    )
    with zf.profile() as p:
        a[:] = 7
        assert int(a[:].sum()) == 7 * 256
    assert {"encode", "storage"} <= _phases(p, "write")
    assert {"storage", "decode"} <= _phases(p, "read")
    assert _sum(p, "read", "decode", "count") == 16
    assert _sum(p, "read", "decode", "nbytes") == 16 * 4 * 4 * 2


def test_retries_are_counted(tmp_path):
    store = MemoryStore()
    a = zf.create(store, shape=(10,), chunks=(2,), dtype="u1")
    a[:] = np.arange(10, dtype="u1")
    faulty = FaultyStore(store, transient=1.0, max_transient_run=2, ops=("get",), match=r"c/\d$")
    b = zf.open_array(faulty, mode="r")
    with dask.config.set({"zarrflow.retries.backoff": 0.001}), zf.profile() as p:
        np.testing.assert_array_equal(b[:], np.arange(10))
    injected = len(faulty.faults_of("transient"))
    assert injected >= 5  # each of the 5 chunks failed at least once
    retries = [t for t in p.totals() if t.phase == "retry"]
    assert {t.detail for t in retries} == {"TransientStoreError"}
    # the batched read failed once (redone key by key): the others are retries
    assert sum(t.count for t in retries) == injected - 1


def test_a_raising_hook_is_removed_and_the_read_succeeds(array):
    calls = []

    def broken(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("broken hook")

    add_hook(broken)
    try:
        np.testing.assert_array_equal(array[:], np.arange(1200).reshape(40, 30))
        assert len(calls) == 1 and broken not in HOOKS
    finally:
        remove_hook(broken)


def test_no_hook_no_events_and_hooks_see_every_thread(array):
    assert HOOKS == []
    seen: list[Event] = []
    with hook(seen.append):
        list(array.chunk_stream(parallel=2, scheduler="threads"))
    assert HOOKS == []
    assert sum(e.count for e in seen if e.phase == "decode") == 12


def test_summary_and_dataframe(array):
    with zf.profile() as p:
        array[:]
    table = p.summary()
    assert "| read | storage |" in table and "| read | decode | bytes+zstd |" in table
    df = p.to_dataframe()
    assert set(df["phase"]) >= {"storage", "decode"}
    assert math.isclose(df["seconds"].sum(), sum(t.seconds for t in p.totals()))


def test_profile_gathers_the_workers_sums_on_a_cluster(client, tmp_path):
    a = zf.create(str(tmp_path / "c.zarr"), shape=(64, 64), chunks=(8, 8), dtype="f4")
    a[:] = 1.0
    with zf.profile() as p:
        total = a.to_dask().sum().compute()
        mapped = dict(a.parallel_chunk_map(lambda i, c: float(c.sum()), scheduler=client))
    assert float(total) == 64 * 64 and sum(mapped.values()) == 64 * 64
    assert p.workers == 2
    # no chunk was read in this process: every decode event came from the workers
    assert _sum(p, "read", "decode", "count") == 64
    assert _sum(p, "map", "decode", "count") == 64
    assert _sum(p, "map", "storage", "nbytes") == _stored_chunk_bytes(a.store)


def test_a_conditional_write_that_loses_a_race_reports_a_conflict():
    """Another writer lands between this write's read and its conditional write."""
    from zarrflow.chunks.conditional import read_modify_write
    from zarrflow.storage import MemoryStore

    store = MemoryStore()
    store.set("k", b"a")
    calls = []

    def merge(old: bytes | None) -> bytes:
        calls.append(old)
        if len(calls) == 1:
            store.set("k", b"b")  # the concurrent writer
        return old + b"+"

    with zf.profile() as p:
        read_modify_write(store, "k", merge, "doc")
    assert store.get("k") == b"b+"  # merged into the other writer's bytes, not over them
    assert calls == [b"a", b"b"]
    assert _sum(p, "write", "conflict", "count") == 1
