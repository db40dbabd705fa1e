"""The chunk engine (``zarrflow.chunks``): its contract, its one batched read, its pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import zarrflow as zf
from conftest import CountingStore
from zarrflow.chunks import ChunkEngine, ChunkIO, ShardIO, open_engine
from zarrflow.chunks.resize import append_shape, resize_chunks
from zarrflow.errors import CorruptChunkError, StoreError, ValueShapeError
from zarrflow.indexing import BasicIndexer
from zarrflow.storage import LocalStore, MemoryStore
from zarrflow.testing.faults import FaultyStore


def filled(store, shards=None, shape=(10, 9), chunks=(4, 4)):
    a = zf.create(store, shape=shape, chunks=chunks, shards=shards, dtype="int32", fill_value=-1)
    data = np.arange(np.prod(shape), dtype="int32").reshape(shape)
    a[:] = data
    a[8:, :] = -1  # the last row of chunks all fill: never stored
    data[8:, :] = -1
    return a, data


def regions(engine, indices):
    return [
        tuple(
            slice(i * c, min((i + 1) * c, s))
            for i, c, s in zip(idx, engine.inner_shape, engine.shape, strict=True)
        )
        for idx in indices
    ]


@pytest.mark.parametrize("shards", [None, (8, 8)])
def test_open_engine_picks_the_implementation_and_keeps_the_contract(shards):
    a, _ = filled(MemoryStore(), shards)
    engine = open_engine(a.store, a.path, a.metadata)
    assert type(engine) is (ShardIO if shards else ChunkIO)
    assert isinstance(engine, ChunkEngine) and isinstance(a.engine, ChunkEngine)
    assert engine.chunk_shape == (shards or (4, 4))
    assert engine.inner_shape == (4, 4)
    assert engine.inner_grid_shape == (3, 3)
    assert engine.chunk_grid_shape == ((2, 2) if shards else (3, 3))


@pytest.mark.parametrize("shards", [None, (8, 8)])
def test_an_engine_pickles_as_store_path_and_metadata(shards, tmp_path):
    shards = shards and (80, 80)
    a, data = filled(LocalStore(tmp_path / "a"), shards, shape=(400, 400), chunks=(40, 40))
    blob = pickle.dumps(a.engine)
    assert len(blob) < 8_000 < data.nbytes  # no data, no decoded state
    engine = pickle.loads(blob)
    out = np.empty((400, 400), "int32")
    engine.read_into(out, BasicIndexer((slice(None),) * 2, engine.shape, engine.chunk_shape))
    np.testing.assert_array_equal(out, data)


@pytest.mark.parametrize("shards", [None, (8, 8)])
@pytest.mark.parametrize("kind", ["memory", "local"])
def test_read_chunks_returns_trimmed_chunks_like_the_array(shards, kind, tmp_path):
    store = MemoryStore() if kind == "memory" else LocalStore(tmp_path / "a")
    a, data = filled(store, shards)
    grid = list(np.ndindex(*a.engine.inner_grid_shape))
    got = a.engine.read_chunks(grid)
    assert [i for i, _ in got] == grid
    for (_, chunk), region in zip(got, regions(a.engine, grid), strict=True):
        np.testing.assert_array_equal(chunk, data[region])
        assert chunk.flags.writeable  # a chunk is the caller's own
    backwards = grid[::-1]  # across shards, out of order: results follow the request
    assert [i for i, _ in a.engine.read_chunks(backwards)] == backwards
    chunk = dict(got)[(2, 0)]
    assert chunk.shape == (2, 4) and (chunk == -1).all()  # never stored: the fill value


def test_one_batched_fetch_for_a_batch_of_chunks():
    a, _ = filled(MemoryStore())
    counting = CountingStore(a.store)
    b = zf.open_array(counting, mode="r")
    before = sum(counting.reads.values())
    b.engine.read_chunks([(0, 0), (0, 1), (1, 2)])
    assert sum(counting.reads.values()) - before == 3  # one get_many of three keys


@pytest.mark.parametrize("shards", [None, (8, 8)])
def test_a_corrupt_chunk_fails_alone(shards):
    a, data = filled(MemoryStore(), shards)
    key = a.engine.key((0, 0))
    a.store.set(key, b"\x00garbage" * 3)
    indices = list(np.ndindex(*a.engine.inner_grid_shape))
    got = dict(a.engine.read_chunks(indices))
    failed = {i for i, c in got.items() if isinstance(c, BaseException)}
    in_first = {(0, 0)} if shards is None else {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert failed == in_first
    assert all(isinstance(got[i], CorruptChunkError) and key in str(got[i]) for i in failed)
    for idx, region in zip(indices, regions(a.engine, indices), strict=True):
        if idx not in failed:
            np.testing.assert_array_equal(got[idx], data[region])


def test_a_key_the_store_cannot_read_fails_alone():
    a, data = filled(MemoryStore())
    faulty = FaultyStore(a.store, permanent=1.0, ops=("get",), match=r"c/1/1$")
    engine = zf.open_array(faulty, mode="r").engine
    got = dict(engine.read_chunks([(1, 0), (1, 1), (1, 2)]))
    assert isinstance(got[(1, 1)], StoreError)
    np.testing.assert_array_equal(got[(1, 0)], data[4:8, 0:4])
    np.testing.assert_array_equal(got[(1, 2)], data[4:8, 8:9])


@pytest.mark.parametrize("shards", [None, (8, 8)])
def test_resize_chunks_clears_what_a_shrink_leaves(shards):
    a, data = filled(MemoryStore(), shards)
    assert resize_chunks(a.engine, (5, 6)) == (5, 6)
    a.resize(5, 6)  # the metadata, as Array.resize writes it (the chunks are already clear)
    a.resize(10, 9)
    expected = np.full((10, 9), -1, "int32")
    expected[:5, :6] = data[:5, :6]
    np.testing.assert_array_equal(a[:], expected)
    with pytest.raises(ValueShapeError, match="non-negative"):
        resize_chunks(a.engine, (5,))


def test_append_shape_checks_the_data():
    assert append_shape("a", (2, 3), (4, 3), 0) == ((6, 3), (slice(2, 6), slice(None)))
    assert append_shape("a", (2, 3), (2, 1), -1)[0] == (2, 4)
    with pytest.raises(ValueShapeError, match="cannot append"):
        append_shape("a", (2, 3), (4, 2), 0)
    with pytest.raises(ValueShapeError, match="out of range"):
        append_shape("a", (2, 3), (4, 3), 2)
