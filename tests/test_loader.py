"""zarrflow.batches: shuffled training batches, every row once per epoch, bounded memory."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import zarrflow as zf


@pytest.fixture
def table(tmp_path):
    """A group of three arrays sharing a leading axis of 1000 rows (100-row chunks)."""
    g = zf.open_group(str(tmp_path / "t.zarr"), mode="w")
    n = 1000
    g.create_array("row", shape=(n,), chunks=(100,), dtype="i8")[:] = np.arange(n)
    x = g.create_array("x", shape=(n, 3), chunks=(100, 3), dtype="f4")
    x[:] = np.arange(3 * n, dtype="f4").reshape(n, 3)
    g.create_array("y", shape=(n,), chunks=(250,), dtype="i2")[:] = np.arange(n) % 7
    return g


def _rows(batches) -> list[int]:
    return [int(r) for b in batches for r in b["row"]]


def test_every_row_once_per_epoch_and_members_stay_aligned(table):
    seen = list(zf.batches(table, batch_size=64, seed=1, epochs=2))
    per_epoch = len(seen) // 2
    assert per_epoch == 16  # 15 full batches and one of 40
    for epoch in (seen[:per_epoch], seen[per_epoch:]):
        rows = _rows(epoch)
        assert sorted(rows) == list(range(1000))
        for b in epoch:  # the arrays' rows travel together
            np.testing.assert_array_equal(b["x"][:, 0], 3 * b["row"].astype("f4"))
            np.testing.assert_array_equal(b["y"], b["row"] % 7)
    assert _rows(seen[:per_epoch]) != _rows(seen[per_epoch:])  # each epoch reshuffles


def test_same_seed_same_batches_other_seed_other_order(table):
    a = _rows(zf.batches(table, batch_size=50, seed=7))
    b = _rows(zf.batches(table, batch_size=50, seed=7))
    c = _rows(zf.batches(table, batch_size=50, seed=8))
    assert a == b
    assert a != c
    assert sorted(c) == list(range(1000))


def test_shuffle_mixes_rows_across_chunks(table):
    first = next(iter(zf.batches(table, batch_size=100, seed=3, shuffle_buffer=400)))
    chunks_touched = {int(r) // 100 for r in first["row"]}
    assert len(chunks_touched) > 1  # a batch is not one chunk in disguise


def test_unshuffled_is_in_order_and_drop_last(table):
    out = list(zf.batches(table, batch_size=300, shuffle=False, drop_last=True))
    assert [len(b["row"]) for b in out] == [300, 300, 300]
    assert _rows(out) == list(range(900))
    assert len(zf.batches(table, batch_size=300, drop_last=True)) == 3
    assert len(zf.batches(table, batch_size=300)) == 4


def test_forms_single_array_and_tuple(table):
    (batch,) = list(zf.batches(table["row"], batch_size=1000, shuffle=False))
    assert isinstance(batch, np.ndarray)
    np.testing.assert_array_equal(batch, np.arange(1000))
    x, y = next(iter(zf.batches([table["x"], table["y"]], batch_size=10, seed=0)))
    assert x.shape == (10, 3) and y.shape == (10,)


def test_arrays_must_share_the_leading_axis(tmp_path, table):
    other = zf.create(str(tmp_path / "o.zarr"), shape=(999,), chunks=(100,), dtype="i4")
    with pytest.raises(zf.ValueShapeError, match="leading axis"):
        zf.batches({"a": table["row"], "b": other}, batch_size=10)


def test_memory_stays_bounded(tmp_path):
    """Peak traced memory of one epoch over a 64 MiB array stays a few blocks' worth."""
    a = zf.create(
        str(tmp_path / "big.zarr"),
        shape=(4096, 4096),
        chunks=(64, 4096),
        dtype="f4",
        compressor=None,
    )
    for start in range(0, 4096, 512):
        a[start : start + 512] = 1.0
    block = 64 * 4096 * 4  # 1 MiB
    a[0:64].sum()  # warm up: the first read imports dask.array, which tracemalloc would count
    a.to_dask()
    tracemalloc.start()
    try:
        total = 0
        for batch in zf.batches(a, batch_size=32, seed=0, prefetch=2, parallel=2):
            total += len(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 4096
    # buffer (4 batches + a block, and its shuffled copy) + 2 blocks in flight, each
    # with its read tasks' chunks + 2 queued batches + the one being consumed
    assert peak < 20 * block, f"peak {peak / 2**20:.1f} MiB for a 64 MiB array"


def test_breaking_out_stops_the_reads(tmp_path):
    a = zf.create(str(tmp_path / "s.zarr"), shape=(10_000,), chunks=(10,), dtype="i4")
    a[:] = np.arange(10_000)
    stream = zf.batches(a, batch_size=10, seed=0, prefetch=1, parallel=2, shuffle_buffer=0)
    next(stream)
    stream.close()
    read = stream.blocks_read
    assert read < 20  # of 1000 blocks
    assert not any(t.name == "zarrflow-batches" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(StopIteration):
        next(stream)
    assert stream.blocks_read == read


def test_errors_reach_the_consumer(tmp_path):
    a = zf.create(str(tmp_path / "c.zarr"), shape=(100,), chunks=(10,), dtype="i4")
    a[:] = 1
    (tmp_path / "c.zarr" / "c" / "3").write_bytes(b"not zstd")
    with pytest.raises(zf.CorruptChunkError):
        list(zf.batches(a, batch_size=10, shuffle=False))


def test_batches_on_a_cluster(client, table):
    rows = _rows(zf.batches(table, batch_size=128, seed=5, scheduler=client))
    assert sorted(rows) == list(range(1000))
    assert rows == _rows(zf.batches(table, batch_size=128, seed=5, scheduler="threads"))
