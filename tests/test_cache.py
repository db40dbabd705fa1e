"""The chunk cache (issue 15): hits skip decoding, nothing stale is served, the bound holds."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import dask
import numpy as np
import pytest

import zarrflow as zf
from zarrflow.chunks import CachedChunkIO, ChunkCache, ChunkIO
from zarrflow.chunks.cache import process_chunk_cache
from zarrflow.storage import NOT_MODIFIED, LocalStore, MemoryStore

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _decoded(p: zf.Profile) -> int:
    return sum(t.count for t in p.totals() if t.phase == "decode")


def _hits(p: zf.Profile) -> int:
    return sum(t.count for t in p.totals() if t.phase == "cache_hit")


@pytest.fixture
def local_array(tmp_path):
    a = zf.create(
        str(tmp_path / "a.zarr"),
        shape=(40, 40),
        chunks=(10, 10),
        dtype="i4",
        chunk_cache=2**20,
    )
    a[:] = np.arange(1600, dtype="i4").reshape(40, 40)
    return a


def test_off_by_default_on_per_array_or_by_config(tmp_path):
    plain = zf.create(str(tmp_path / "p.zarr"), shape=(4,), chunks=(2,), dtype="u1")
    assert type(plain.engine) is ChunkIO and plain.chunk_cache is None
    cached = zf.open(str(tmp_path / "p.zarr"), chunk_cache=4096)
    assert type(cached.engine) is CachedChunkIO and cached.chunk_cache.max_bytes == 4096
    with dask.config.set({"zarrflow.chunk_cache_bytes": 2**20}):
        a = zf.open_array(str(tmp_path / "p.zarr"), mode="r")
        b = zf.open_array(str(tmp_path / "p.zarr"), mode="r")
    assert a.chunk_cache is b.chunk_cache is not None  # one process-wide cache
    group = zf.open_group(str(tmp_path / "g.zarr"), mode="w", chunk_cache=2**20)
    x = group.create_array("x", shape=(4,), chunks=(2,), dtype="u1")
    assert x.chunk_cache is group.chunk_cache
    assert zf.open_group(str(tmp_path / "g.zarr"), chunk_cache=1024)["x"].chunk_cache.max_bytes == (
        1024
    )


def test_hits_skip_decoding(local_array):
    with zf.profile() as first:
        np.testing.assert_array_equal(local_array[:], np.arange(1600).reshape(40, 40))
    with zf.profile() as second:
        np.testing.assert_array_equal(local_array[:], np.arange(1600).reshape(40, 40))
    assert _decoded(first) == 16 and _hits(first) == 0
    assert _decoded(second) == 0 and _hits(second) == 16
    cache = local_array.chunk_cache
    assert (cache.hits, cache.misses) == (16, 16) and cache.hit_ratio == 0.5


def test_streams_and_maps_read_through_the_cache_and_get_their_own_copies(local_array):
    local_array[:]  # fills the cache
    with zf.profile() as p:
        for _, chunk in local_array.chunk_stream(parallel=2):
            chunk[...] = -1  # the caller's own array: the cached one is untouched
        sums = dict(local_array.parallel_chunk_map(lambda i, c: int(c.sum())))
    assert _decoded(p) == 0 and _hits(p) == 32
    assert sum(sums.values()) == sum(range(1600))
    np.testing.assert_array_equal(local_array[:], np.arange(1600).reshape(40, 40))


_WRITER = """
import sys, numpy as np, zarrflow as zf
a = zf.open_array(sys.argv[1], mode="r+")
a[0:10, 0:10] = np.full((10, 10), -7, dtype="i4")  # one whole chunk, same size on disk
"""


def _write_from_another_process(path: str) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    subprocess.run([sys.executable, "-c", _WRITER, path], env=env, check=True, timeout=120)


def test_another_process_write_is_never_served_stale(tmp_path):
    """The cached handle sees the other process's write (its generation changed).

    Shown to fail with the mechanism switched off: the second handle accepts a
    staleness bound (``max_age``), which skips revalidation by generation, and
    serves the old chunk after the same write.
    """
    path = str(tmp_path / "shared.zarr")
    a = zf.create(path, shape=(20, 20), chunks=(10, 10), dtype="i4", chunk_cache=2**20)
    a[:] = np.full((20, 20), 5, dtype="i4")
    trusting = zf.open_array(path, mode="r", chunk_cache=ChunkCache(2**20, max_age=3600))
    assert int(a[:].sum()) == int(trusting[:].sum()) == 2000  # both cached now
    assert len(a.chunk_cache) == len(trusting.chunk_cache) == 4
    _write_from_another_process(path)
    seen = a[:]
    assert (seen[0:10, 0:10] == -7).all() and (seen[10:, :] == 5).all()
    assert (trusting[0:10, 0:10] == 5).all()  # revalidation off: stale, as the bound allows


def test_a_write_through_zarrflow_drops_the_entries(tmp_path):
    """Even a cache that never revalidates (max_age) sees writes made through its arrays.

    Shown to fail with the mechanism switched off: with the drops in
    ``CachedChunkIO.write_from`` / ``write_chunk`` removed, the entries stay.
    """
    a = zf.create(
        str(tmp_path / "w.zarr"),
        shape=(20,),
        chunks=(5,),
        dtype="f8",
        chunk_cache=ChunkCache(2**20, max_age=3600),
    )
    a[:] = 1.0
    assert a[:].sum() == 20.0
    assert len(a.chunk_cache) == 4
    a[3:7] = 2.0  # partial chunks 0 and 1: their entries go
    assert len(a.chunk_cache) == 2
    np.testing.assert_array_equal(a[:8], [1, 1, 1, 2, 2, 2, 2, 1])
    a.write_chunk((3,), np.full(5, 9.0))
    assert a[:].tolist()[15:] == [9.0] * 5


def test_missing_chunks_and_deletes(tmp_path):
    a = zf.create(
        str(tmp_path / "m.zarr"),
        shape=(10,),
        chunks=(5,),
        dtype="i2",
        fill_value=3,
        chunk_cache=1000,
    )
    assert a[:].tolist() == [3] * 10 and len(a.chunk_cache) == 0
    a[:] = np.arange(10, dtype="i2")
    assert a[:].tolist() == list(range(10)) and len(a.chunk_cache) == 2
    other = zf.open_array(str(tmp_path / "m.zarr"))  # no cache: writes fill (deletes chunk 0)
    other[0:5] = np.full(5, 3, dtype="i2")
    assert a[:].tolist() == [3] * 5 + list(range(5, 10))
    assert len(a.chunk_cache) == 1


def test_the_byte_bound_holds_and_memory_stays_under_it(tmp_path):
    bound = 1 * 2**20  # 1 MiB of decoded chunks; the array is 16 MiB
    a = zf.create(str(tmp_path / "big.zarr"), shape=(2048, 2048), chunks=(128, 128), dtype="f4")
    a[:] = np.ones((2048, 2048), dtype="f4")
    b = zf.open_array(str(tmp_path / "big.zarr"), mode="r", chunk_cache=bound)
    b[0:128, 0:128]  # imports and first-use allocations happen before measuring
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(0, 2048, 256):
            for j in range(0, 2048, 256):
                assert b[i : i + 256, j : j + 256].sum() == 256 * 256
                assert b.chunk_cache.nbytes <= bound
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    cache = b.chunk_cache
    assert cache.nbytes <= bound and len(cache) == bound // (128 * 128 * 4)
    assert cache.evictions == 256 - len(cache)  # every chunk was cached, all but 16 evicted
    assert held <= bound + 256 * 1024  # the cache plus a little bookkeeping, never the array


def test_eviction_is_least_recently_used_first(tmp_path):
    chunk_bytes = 10 * 8
    a = zf.create(
        str(tmp_path / "lru.zarr"),
        shape=(50,),
        chunks=(10,),
        dtype="f8",
        chunk_cache=ChunkCache(3 * chunk_bytes),
    )
    a[:] = np.arange(50.0)
    cache, url = a.chunk_cache, a.store.url
    key = a.engine.key
    a[0:10], a[10:20], a[20:30]  # 0, 1, 2 cached
    a[0:10]  # 0 is now the most recent: 1 is the least
    a[30:40]  # 3 comes in, 1 goes
    assert [cache.get(url, key((i,))) is not None for i in range(4)] == [True, False, True, True]
    assert cache.evictions == 1


def test_a_chunk_larger_than_the_bound_is_not_cached(tmp_path):
    a = zf.create(
        str(tmp_path / "l.zarr"), shape=(100,), chunks=(100,), dtype="f8", chunk_cache=100
    )
    a[:] = 1.0
    assert a[:].sum() == 100 and len(a.chunk_cache) == 0


def test_threads_share_one_cache(local_array):
    local_array[:]  # cached
    with dask.config.set(scheduler="threads"):
        total = local_array.to_dask().sum().compute()
    assert int(total) == sum(range(1600))
    assert local_array.chunk_cache.hits == 16


def test_stores_without_generations_cache_only_under_a_staleness_bound(tmp_path):
    path = str(tmp_path / "z.zip")
    a = zf.create(path, shape=(10,), chunks=(5,), dtype="u1")
    a[:] = np.arange(10, dtype="u1")
    a.store.close()
    plain = zf.open_array(path, mode="r", chunk_cache=2**20)
    assert not plain.store.supports_generations and type(plain.engine) is ChunkIO
    bounded = zf.open_array(path, mode="r", chunk_cache=ChunkCache(2**20, max_age=60))
    assert type(bounded.engine) is CachedChunkIO
    with zf.profile() as p:
        bounded[:], bounded[:]
    assert _decoded(p) == 2 and _hits(p) == 2


@pytest.mark.parametrize("backend", ["obstore", "fsspec"])
def test_revalidation_on_s3_moves_no_bytes_when_unchanged(
    backend, s3_store_url, s3_storage_options
):
    with dask.config.set({"zarrflow.object_store": backend}):
        _revalidate_on_s3(backend, s3_store_url, s3_storage_options)


def _revalidate_on_s3(backend: str, s3_store_url: str, s3_storage_options: dict) -> None:
    a = zf.create(
        s3_store_url,
        shape=(30,),
        chunks=(10,),
        dtype="i8",
        storage_options=s3_storage_options,
        chunk_cache=2**20,
    )
    a[:] = np.arange(30)
    assert type(a.store).__name__ == {"obstore": "ObstoreStore", "fsspec": "FsspecStore"}[backend]
    a[:]
    with zf.profile() as p:
        np.testing.assert_array_equal(a[:], np.arange(30))
    assert _hits(p) == 3 and _decoded(p) == 0
    assert sum(t.nbytes for t in p.totals() if t.phase == "storage") == 0  # three 304s
    other = zf.open_array(s3_store_url, storage_options=s3_storage_options)
    other[10:20] = np.full(10, -1)
    np.testing.assert_array_equal(a[:], [*range(10), *[-1] * 10, *range(20, 30)])
    store = a.store
    generation = store.get_versioned(a.engine.key((0,))).generation
    assert store.get_if_changed(a.engine.key((0,)), generation) is NOT_MODIFIED


def test_get_if_changed_on_local_and_memory(tmp_path):
    for store in (LocalStore(str(tmp_path)), MemoryStore()):
        store.set("k", b"one")
        v = store.get_versioned("k")
        assert store.get_if_changed("k", v.generation) is NOT_MODIFIED
        store.set("k", b"two")
        changed = store.get_if_changed("k", v.generation)
        assert changed.data == b"two" and changed.generation != v.generation
        store.delete("k")
        assert store.get_if_changed("k", v.generation) is None


def _worker_cache_counts(token: str, max_bytes: int) -> tuple[int, int]:
    cache = process_chunk_cache(token, max_bytes)
    return cache.hits, cache.misses


def _read_twice(array: zf.Array) -> int:
    return int(array[:].sum()) + int(array[:].sum())


def test_on_a_cluster_each_worker_has_its_own_cache(client, tmp_path):
    a = zf.create(
        str(tmp_path / "c.zarr"), shape=(40,), chunks=(10,), dtype="i4", chunk_cache=2**20
    )
    a[:] = np.ones(40, dtype="i4")
    assert pickle.loads(pickle.dumps(a.chunk_cache)) is a.chunk_cache  # in-process: itself
    sums = client.run(_read_twice, a)
    assert set(sums.values()) == {80}
    counts = client.run(_worker_cache_counts, a.chunk_cache.token, a.chunk_cache.max_bytes)
    # each worker: 4 misses on its first read, 4 hits on its second (its own cache)
    assert set(counts.values()) == {(4, 4)} and len(counts) == 2
    assert (a.chunk_cache.hits, a.chunk_cache.misses) == (0, 0)  # the client read nothing


# -- the metadata cache -------------------------------------------------------------------------
_ATTRS_WRITER = """
import sys, zarrflow as zf
zf.open_array(sys.argv[1], mode="r+").attrs["version"] = 2
"""


def test_metadata_cache_opens_many_arrays_without_reparsing(tmp_path):
    from zarrflow.metadata.cache import default_metadata_cache

    g = zf.open_group(str(tmp_path / "h.zarr"), mode="w")
    for i in range(20):
        g.create_array(f"a{i}", shape=(4,), chunks=(2,), dtype="u1")
    with dask.config.set({"zarrflow.metadata_cache_entries": 101}):
        cache = default_metadata_cache()
        for _ in range(2):
            for i in range(20):
                assert zf.open_array(str(tmp_path / "h.zarr"), path=f"a{i}", mode="r").shape == (4,)
        assert (cache.misses, cache.hits) == (20, 20)
        members = zf.open_group(str(tmp_path / "h.zarr"), mode="r")
        for _ in range(2):  # a group's members: the second time from the cache
            assert [members[f"a{i}"].shape for i in range(3)] == [(4,)] * 3
        assert (cache.misses, cache.hits) == (20 + 1 + 3, 20 + 3) and len(cache) <= 101


def test_metadata_cache_never_serves_another_process_change(tmp_path):
    """A document another process rewrote is read again (its generation changed).

    Shown to fail with the mechanism switched off: under a staleness bound
    (``zarrflow.metadata_cache_max_age``) revalidation is skipped and the old
    attributes come back.
    """
    path = str(tmp_path / "m.zarr")
    a = zf.create(path, shape=(4,), chunks=(2,), dtype="u1", attributes={"version": 1})
    with dask.config.set({"zarrflow.metadata_cache_entries": 102}):
        assert zf.open_array(path, mode="r").attrs["version"] == 1
        with dask.config.set({"zarrflow.metadata_cache_max_age": 3600}):
            assert zf.open_array(path, mode="r").attrs["version"] == 1
        env = {**os.environ, "PYTHONPATH": SRC}
        subprocess.run([sys.executable, "-c", _ATTRS_WRITER, path], env=env, check=True)
        assert zf.open_array(path, mode="r").attrs["version"] == 2
        with dask.config.set({"zarrflow.metadata_cache_max_age": 3600}):
            assert zf.open_array(path, mode="r").attrs["version"] == 1  # stale, as allowed
    assert a.shape == (4,)


def test_metadata_cache_keeps_at_most_its_entries(tmp_path):
    from zarrflow.metadata.cache import MetadataCache

    store = LocalStore(str(tmp_path))
    cache = MetadataCache(max_entries=3)
    for i in range(5):
        store.set(f"n{i}/zarr.json", b"{}")
        assert cache.read(store, f"n{i}/zarr.json", bytes) == b"{}"
    assert len(cache) == 3
    assert cache.read(store, "missing/zarr.json", bytes) is None


def test_a_resize_drops_the_entries_of_the_chunks_it_deletes(tmp_path):
    """Shown to fail with the mechanism switched off: without the drop in
    ``resize_chunks`` the grown array reads the deleted chunks' old values."""
    a = zf.create(
        str(tmp_path / "r.zarr"),
        shape=(20,),
        chunks=(5,),
        dtype="i4",
        chunk_cache=ChunkCache(2**20, max_age=3600),
    )
    a[:] = np.arange(1, 21, dtype="i4")
    assert a[:].sum() == 210 and len(a.chunk_cache) == 4
    a.resize((8,))  # chunks 2 and 3 deleted, chunk 1 cut (a partial write)
    a.resize((20,))
    assert a[:].tolist() == [*range(1, 9), *[0] * 12]


def test_many_threads_read_through_one_small_cache(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    data = np.arange(256 * 256, dtype="i4").reshape(256, 256)
    a = zf.create(str(tmp_path / "t.zarr"), shape=data.shape, chunks=(16, 16), dtype="i4")
    a[:] = data
    bound = 20 * 16 * 16 * 4  # 20 of the 256 chunks
    b = zf.open_array(str(tmp_path / "t.zarr"), mode="r", chunk_cache=bound)
    rng = np.random.default_rng(3)
    windows = [tuple(rng.integers(0, 200, 2)) for _ in range(400)]

    def read(w):
        i, j = w
        got = b[i : i + 40, j : j + 40]
        assert b.chunk_cache.nbytes <= bound
        return np.array_equal(got, data[i : i + 40, j : j + 40])

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(read, windows))
    cache = b.chunk_cache
    assert cache.nbytes <= bound and cache.hits > 0 and cache.evictions > 0
    assert cache.nbytes == sum(
        e.chunk.nbytes
        for k in b.engine.stored_chunk_coords()
        if (e := cache.get(b.store.url, b.engine.key(k))) is not None
    )


def test_sharded_and_variable_length_arrays_are_not_cached(tmp_path):
    sharded = zf.create(
        str(tmp_path / "s.zarr"), shape=(8,), chunks=(2,), shards=(4,), dtype="u1", chunk_cache=1000
    )
    strings = zf.create(
        str(tmp_path / "t.zarr"), shape=(4,), chunks=(2,), dtype=str, chunk_cache=1000
    )
    assert type(sharded.engine).__name__ == "ShardIO"
    assert type(strings.engine) is ChunkIO
