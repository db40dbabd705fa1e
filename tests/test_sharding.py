"""Zarr v3 sharding: the codec, partial reads by byte range, safe shard writes, Dask, interop.

The oracles are zarr-python 3 and tensorstore writing and reading the same
files; request patterns are checked by counting what a wrapped store is asked.
"""

from __future__ import annotations

import itertools
import sys
from concurrent.futures import ThreadPoolExecutor

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest

import zarrflow as zf
from conftest import NO_CONDITIONS, CountingStore
from zarrflow.codecs import ChunkSpec, CodecPipeline, ShardingCodec, coalesce_ranges
from zarrflow.codecs.sharding import MISSING
from zarrflow.parallel.dask_read import sharded_block_shape
from zarrflow.storage import LocalStore, MemoryStore, RangeByteRequest, SuffixByteRequest
from zarrflow.testing.barriers import BarrierStore, ClusterBarrierStore

zarr = pytest.importorskip("zarr")
ts = pytest.importorskip("tensorstore")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/

pytestmark = [
    pytest.mark.filterwarnings("ignore::zarr.errors.UnstableSpecificationWarning"),
    pytest.mark.filterwarnings("ignore::zarr.errors.ZarrUserWarning"),
]

LE = {"name": "bytes", "configuration": {"endian": "little"}}
BE = {"name": "bytes", "configuration": {"endian": "big"}}
CRC = {"name": "crc32c"}
ZSTD = {"name": "zstd", "configuration": {"level": 1, "checksum": False}}
GZIP = {"name": "gzip", "configuration": {"level": 1}}
BLOSC = {
    "name": "blosc",
    "configuration": {
        "cname": "lz4",
        "clevel": 5,
        "shuffle": "shuffle",
        "typesize": 4,
        "blocksize": 0,
    },
}
TRANSPOSE = {"name": "transpose", "configuration": {"order": [1, 0]}}


def sharding(inner, codecs=(LE,), index_codecs=(LE, CRC), location="end") -> dict:
    return {
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": list(inner),
            "codecs": list(codecs),
            "index_codecs": list(index_codecs),
            "index_location": location,
        },
    }


def sample(shape=(37, 29), dtype="int32", seed=0) -> np.ndarray:
    """Ragged data with empty (zero) regions: a whole empty shard and empty inner chunks."""
    data = np.random.default_rng(seed).integers(1, 1000, shape).astype(dtype)
    data[16:32, 0:20] = 0  # shard (1, 0) of 16 x 20 shards: never stored
    data[0:4, 0:10] = 0  # two empty inner chunks of shard (0, 0)
    return data


# -- create() and the codec ----------------------------------------------------------------
def test_create_with_shards_writes_a_sharding_codec():
    a = zf.create(MemoryStore(), shape=(37, 29), chunks=(4, 5), shards=(16, 20), dtype="i4")
    # zarr-python's convention: chunks is the inner chunk, shards the shard
    assert (a.chunks, a.shards) == ((4, 5), (16, 20))
    assert (a.metadata.chunks, a.metadata.inner_chunks) == ((16, 20), (4, 5))
    assert (a.chunk_grid_shape, a.nchunks) == ((10, 6), 60)
    assert (a.shard_grid_shape, a.nshards) == ((3, 2), 6)
    (codec,) = a.metadata.codecs
    assert codec["name"] == "sharding_indexed"
    assert codec["configuration"]["index_codecs"] == [LE, CRC]
    assert codec["configuration"]["codecs"][-1]["name"] == "zstd"  # the default compressor
    for bad, message in (((10, 20), "multiple"), ((16,), "2 positive"), ((0, 20), "positive")):
        with pytest.raises(zf.MetadataError, match=message):
            zf.create(MemoryStore(), shape=(37, 29), chunks=(4, 5), shards=bad, dtype="i4")
    with pytest.raises(zf.MetadataError, match="not both"):
        zf.create(MemoryStore(), shape=(8,), chunks=(2,), shards=(4,), codecs=[sharding([2])])


@pytest.mark.parametrize("location", ["start", "end"])
@pytest.mark.parametrize("inner_codecs", [[LE], [TRANSPOSE, BE, ZSTD], [LE, GZIP, CRC]])
def test_selections_round_trip(location, inner_codecs):
    data = sample()
    codecs = [sharding((4, 5), inner_codecs, location=location)]
    a = zf.create(MemoryStore(), shape=data.shape, chunks=(16, 20), codecs=codecs, dtype="i4")
    a[:] = data
    np.testing.assert_array_equal(a[:], data)
    for sel in (np.s_[3:20, 5:9], np.s_[::-3, 1::7], np.s_[36, :], np.s_[..., -1], np.s_[5]):
        np.testing.assert_array_equal(a[sel], data[sel])
    rows, cols = [0, 17, 36, 3], [28, 0, 19]
    np.testing.assert_array_equal(a.oindex[rows, cols], data[np.ix_(rows, cols)])
    np.testing.assert_array_equal(a.vindex[rows[:3], cols], data[rows[:3], cols])
    mask = data % 7 == 0
    np.testing.assert_array_equal(a.vindex[mask], data[mask])
    a.vindex[rows[:3], cols] = -5
    data[rows[:3], cols] = -5
    a.oindex[[1, 30], [2, 25]] = -6
    data[np.ix_([1, 30], [2, 25])] = -6
    a[10:33, 3:27:2] = 7
    data[10:33, 3:27:2] = 7
    np.testing.assert_array_equal(a[:], data)


def test_codec_alone_in_a_pipeline_and_nested_sharding():
    spec_codecs = [sharding([2, 2], [sharding([1, 2])], location="start")]
    p = CodecPipeline.from_v3(spec_codecs, np.dtype("u2"), (4, 4))
    shard = np.arange(16, dtype="u2").reshape(4, 4)
    shard[:2, :2] = 0
    np.testing.assert_array_equal(p.decode(p.encode(shard)), shard)
    a = zf.create(MemoryStore(), shape=(6, 6), chunks=(4, 4), codecs=spec_codecs, dtype="u2")
    data = np.arange(36, dtype="u2").reshape(6, 6)
    a[:] = data
    np.testing.assert_array_equal(a[1:5, 2:], data[1:5, 2:])
    with pytest.raises(zf.CodecError, match="fixed encoded size"):
        ShardingCodec({"chunk_shape": [2], "index_codecs": [LE, ZSTD]}, ChunkSpec((4,), "u1"))
    with pytest.raises(zf.CodecError, match="evenly divide"):
        ShardingCodec({"chunk_shape": [3]}, ChunkSpec((4,), np.dtype("u1")))


def test_coalesce_ranges_merges_small_gaps_only():
    assert coalesce_ranges([(0, 10), (10, 20), (25, 30), (100, 110)], gap=5) == [
        (0, 30, [0, 1, 2]),
        (100, 110, [3]),
    ]
    assert coalesce_ranges([(0, 10), (11, 20)], gap=0) == [(0, 10, [0]), (11, 20, [1])]


# -- interop with zarr-python and tensorstore ------------------------------------------------
CASES = {
    "end-crc": ("int32", [sharding((4, 5), [LE, ZSTD])]),
    "end-nocrc-transpose-be": ("int32", [sharding((4, 5), [TRANSPOSE, BE], [LE])]),
    "start-crc-blosc": ("int32", [sharding((4, 5), [LE, BLOSC], location="start")]),
    "start-nocrc-be-gzip": ("float64", [sharding((4, 5), [BE, GZIP], [LE], "start")]),
    "end-uint8-crc-inner": ("uint8", [sharding((8, 10), [{"name": "bytes"}, CRC])]),
}


def _write(writer: str, path, dtype: str, codecs: list, data: np.ndarray) -> None:
    if writer == "zarrflow":
        a = zf.create(str(path), shape=data.shape, chunks=(16, 20), codecs=codecs, dtype=dtype)
        a[:] = data
    elif writer == "zarr":
        zf.create(str(path), shape=data.shape, chunks=(16, 20), codecs=codecs, dtype=dtype)
        zarr.open_array(str(path), mode="r+")[:] = data
    else:
        zf.create(str(path), shape=data.shape, chunks=(16, 20), codecs=codecs, dtype=dtype)
        t = ts.open({"driver": "zarr3", "kvstore": f"file://{path}/"}, open=True).result()
        t.write(data).result()


def _read(reader: str, path) -> np.ndarray:
    if reader == "zarrflow":
        return zf.open(str(path), mode="r")[:]
    if reader == "zarr":
        return zarr.open_array(str(path), mode="r")[:]
    return ts.open({"driver": "zarr3", "kvstore": f"file://{path}/"}).result().read().result()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("zarrflow", "zarr"),
        ("zarrflow", "tensorstore"),
        ("zarr", "zarrflow"),
        ("tensorstore", "zarrflow"),
    ],
)
def test_interop(tmp_path, case, writer, reader):
    dtype, codecs = CASES[case]
    data = sample(dtype=dtype)
    _write(writer, tmp_path / "a", dtype, codecs, data)
    np.testing.assert_array_equal(_read(reader, tmp_path / "a"), data)
    assert not (tmp_path / "a" / "c" / "1" / "0").exists()  # the all-empty shard
    if reader == "zarrflow":
        a = zf.open(str(tmp_path / "a"), mode="r")
        np.testing.assert_array_equal(a[3:20, 5:9], data[3:20, 5:9])
        np.testing.assert_array_equal(a.vindex[[0, 36], [0, 28]], data[[0, 36], [0, 28]])


def test_zarr_python_created_array_with_its_defaults(tmp_path):
    data = sample()
    z = zarr.create_array(
        str(tmp_path), shape=data.shape, chunks=(4, 5), shards=(16, 20), dtype="i4"
    )
    z[:] = data
    a = zf.open(str(tmp_path), mode="r")
    assert (a.chunks, a.shards) == ((4, 5), (16, 20))
    np.testing.assert_array_equal(a[:], data)
    a = zf.open(str(tmp_path), mode="r+")
    a[1:3, 1:3] = -1  # a partial shard rewrite of zarr-python's (Morton-ordered) shard
    data[1:3, 1:3] = -1
    np.testing.assert_array_equal(z[:], data)


def test_empty_inner_chunks_are_left_out(tmp_path):
    data = sample()
    a = zf.create(str(tmp_path), shape=data.shape, chunks=(4, 5), shards=(16, 20), dtype="i4")
    a[:] = data
    index = a.engine.codec.decode_index(a.engine.codec.index_bytes(a.store.get("c/0/0")))
    assert [i for i, (off, _) in enumerate(index.tolist()) if off == MISSING] == [0, 1]
    assert a.nshards_initialized == 5  # of 6: shard (1, 0) is all fill
    # zarr-python's count: the in-bounds inner chunks of the stored shards
    assert a.nchunks_initialized == 16 + 8 + 8 + 8 + 4
    a[0:16, 20:29] = 0  # a shard made empty by a partial write is deleted
    assert not (tmp_path / "c" / "0" / "1").exists()
    b = zf.create(
        str(tmp_path / "b"),
        shape=(8,),
        chunks=(2,),
        shards=(4,),
        dtype="i4",
        write_empty_chunks=True,
    )
    b[:] = 0
    assert (b.nshards_initialized, b.nchunks_initialized) == (2, 4)


def test_partial_write_keeps_untouched_inner_chunk_bytes():
    a = zf.create(MemoryStore(), shape=(16, 20), chunks=(4, 5), shards=(16, 20), dtype="i4")
    a[:] = sample()[:16, :20] + 1
    split = a.engine.reader.split_whole
    before = [bytes(p) for p in split("c/0/0", a.store.get("c/0/0"))[1]]
    a[5, 6] = 0
    after = [bytes(p) for p in split("c/0/0", a.store.get("c/0/0"))[1]]
    changed = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
    assert changed == [5]  # inner chunk (1, 1) only


# -- requests: ranged reads, coalescing ------------------------------------------------------
class RequestLog(CountingStore):
    """A counting store that also records each request: (kind, key, byte request)."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.log: list[tuple[str, str, object]] = []

    def get(self, key):
        self.log.append(("get", key, None))
        return super().get(key)

    def get_range(self, key, request):
        self.log.append(("range", key, request))
        return super().get_range(key, request)

    def chunk_requests(self) -> list[tuple[str, str, object]]:
        return [r for r in self.log if not r[1].endswith("zarr.json")]


@pytest.fixture
def logged():
    inner = MemoryStore()
    a = zf.create(inner, shape=(32, 64), chunks=(4, 8), shards=(16, 32), dtype="f4")
    a[:] = np.random.default_rng(1).random((32, 64), dtype="f4")
    store = RequestLog(inner)
    return zf.open_array(store, mode="r"), store, a[:]


def test_one_inner_chunk_costs_two_ranged_reads(logged):
    a, store, data = logged
    np.testing.assert_array_equal(a[5:7, 9:12], data[5:7, 9:12])
    (index, chunk) = store.chunk_requests()
    assert index == ("range", "c/0/0", SuffixByteRequest(a.engine.codec.index_size))
    assert chunk[:2] == ("range", "c/0/0") and isinstance(chunk[2], RangeByteRequest)


def test_a_row_of_inner_chunks_coalesces(logged):
    a, store, data = logged
    np.testing.assert_array_equal(a[4:6, :], data[4:6, :])  # 8 inner chunks in 2 shards
    requests = store.chunk_requests()
    assert len(requests) == 4  # per shard: the index, then one coalesced range
    assert [r[1] for r in requests].count("c/0/1") == 2
    store.log.clear()
    with dask.config.set({"zarrflow.shard_coalesce_gap": 0}):
        a.oindex[4, [0, 16]]  # inner chunks 0 and 2 of a row: a gap between them
    assert len(store.chunk_requests()) == 3


def test_whole_and_missing_shards_cost_one_request(logged):
    a, store, data = logged
    np.testing.assert_array_equal(a[16:32, 0:32], data[16:32, 0:32])
    assert store.chunk_requests() == [("get", "c/1/0", None)]
    b = zf.create(RequestLog(MemoryStore()), shape=(32, 32), chunks=(4, 4), shards=(16, 16))
    b.store.log.clear()
    assert (b[0:2, 0:2] == 0).all() and len(b.store.chunk_requests()) == 1


def test_stream_fetches_each_shard_once(logged):
    a, store, data = logged
    got = dict(a.chunk_stream(parallel=4, filter=lambda i: i[1] % 2 == 0))
    assert len(got) == 8 * 4
    for (r, c), chunk in got.items():
        np.testing.assert_array_equal(chunk, data[r * 4 : r * 4 + 4, c * 8 : c * 8 + 8])
    per_shard = {k: sum(1 for r in store.chunk_requests() if r[1] == k) for k in ("c/0/0", "c/1/1")}
    assert all(n <= 4 for n in per_shard.values())  # the index, then a few coalesced ranges
    indexes = [r for r in store.chunk_requests() if isinstance(r[2], SuffixByteRequest)]
    assert len(indexes) == 4  # one index request per shard


# -- streams and Dask -------------------------------------------------------------------------
def test_stream_and_map_iterate_inner_chunks():
    data = sample()
    a = zf.create(MemoryStore(), shape=data.shape, chunks=(4, 5), shards=(16, 20), dtype="i4")
    a[:] = data
    got = list(a.chunk_stream(parallel=3, scheduler="threads"))
    assert sorted(i for i, _ in got) == list(itertools.product(range(10), range(6)))
    assert [i for i, _ in got][:5] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]  # shard by shard
    for (r, c), chunk in got:
        np.testing.assert_array_equal(chunk, data[r * 4 : r * 4 + 4, c * 5 : c * 5 + 5])
    sums = dict(a.parallel_chunk_map(lambda i, ch: int(ch.sum()), max_concurrency=2, timeout=30))
    assert sum(sums.values()) == int(data.sum()) and len(sums) == 60
    stored = [i for i, _ in a.chunk_stream(skip_missing=True)]
    assert (0, 0) not in stored and (4, 0) not in stored and (0, 2) in stored
    progress = []
    list(a.chunk_stream(skip_missing=True, progress_callback=lambda d, t: progress.append((d, t))))
    assert progress[-1] == (len(stored), len(stored))
    assert a.reduce_chunks(lambda i, ch: int(ch.max()), max) == int(data.max())


def test_to_dask_reads_whole_shards_and_to_zarr_writes_one_per_shard(tmp_path):
    data = sample(shape=(70, 90))
    x = da.from_array(data, chunks=(13, 17))
    a = zf.to_zarr(x, str(tmp_path / "a"), chunks=(4, 5), shards=(16, 20), compressor="zstd")
    np.testing.assert_array_equal(a[:], data)
    y = a.to_dask()
    assert all(c % 16 == 0 for c in y.chunks[0][:-1]) and all(c % 20 == 0 for c in y.chunks[1][:-1])
    np.testing.assert_array_equal(y.compute(), data)
    plan = zf.plan_write(x.chunks, a, (slice(0, 70), slice(0, 90)))
    assert plan.strategy == "rechunk" and all(c % 16 == 0 for c in plan.chunks[0][:-1])
    for strategy in ("auto", "lock"):
        b = zf.create(str(tmp_path / strategy), shape=data.shape, chunks=(4, 5), shards=(16, 20))
        zf.to_zarr(x, b, strategy=strategy, scheduler="threads")
        np.testing.assert_array_equal(b[:], data)
    big = zf.create(
        MemoryStore(), shape=(4096, 4096), chunks=(256, 256), shards=(2048, 4096), dtype="f8"
    )
    blocks = sharded_block_shape(big.engine)  # 64 MiB shards: inner chunks tiling a shard
    assert blocks[0] <= 2048 and 2048 % blocks[0] == 0 and 4096 % blocks[1] == 0


# -- no lost updates ----------------------------------------------------------------------
def test_partial_shard_writes_from_threads_lose_nothing(tmp_path):
    a = zf.create(
        LocalStore(tmp_path / "t"), shape=(3, 96), chunks=(3, 4), shards=(3, 96), dtype="i4"
    )
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda j: a.__setitem__((slice(None), j), j + 1), range(96)))
    np.testing.assert_array_equal(a[:], np.arange(1, 97)[None, :].repeat(3, 0))
    values = np.repeat(np.arange(1, 33, dtype="i4"), 3)[None, :].repeat(3, 0)
    b = zf.create(LocalStore(tmp_path / "l"), shape=values.shape, chunks=(3, 4), shards=(3, 16))
    zf.to_zarr(da.from_array(values, chunks=(3, 3)), b, strategy="lock", scheduler="threads")
    np.testing.assert_array_equal(b[:], values)


def test_without_locks_partial_shard_writes_lose_updates():
    """The safety switched off: four blocks share one shard and all read it first."""
    values = np.arange(1, 5, dtype="i4")[None, :].repeat(3, 0)
    store = BarrierStore(4)
    a = zf.create(store, shape=values.shape, chunks=(3, 1), shards=(3, 4), dtype="i4")
    with dask.config.set({"zarrflow.lock": "none", **NO_CONDITIONS, "num_workers": 4}):
        zf.to_zarr(da.from_array(values, chunks=(3, 1)), a, strategy="lock", scheduler="threads")
    store.armed = False
    got = a[:]
    assert (got[0] != 0).sum() == 1  # only the last writer's column survived


def test_distributed_shard_locks_lose_nothing(client, tmp_path):
    values = np.repeat(np.arange(1, 9, dtype="i4"), 3)[None, :].repeat(3, 0)
    a = zf.create(
        LocalStore(tmp_path / "d"), shape=values.shape, chunks=(3, 2), shards=(3, 6), dtype="i4"
    )
    zf.to_zarr(da.from_array(values, chunks=(3, 3)), a, strategy="lock", scheduler=client)
    np.testing.assert_array_equal(a[:], values)


def test_without_locks_the_cluster_loses_shard_updates(
    client, workers_without_conditions, tmp_path
):
    store = ClusterBarrierStore.on(client, tmp_path / "nolock", 2)
    values = np.arange(1, 5, dtype="i4")[None, :].repeat(3, 0)
    a = zf.create(store, shape=values.shape, chunks=(3, 1), shards=(3, 4), dtype="i4")
    with dask.config.set({"zarrflow.lock": "none", **NO_CONDITIONS}):
        zf.to_zarr(da.from_array(values, chunks=(3, 2)), a, strategy="lock", scheduler=client)
    got = zf.open_array(LocalStore(tmp_path / "nolock"), mode="r")[:]
    assert not np.array_equal(got, values)  # one worker's columns were lost


# -- corruption ---------------------------------------------------------------------------
@pytest.fixture
def stored_shard():
    store = MemoryStore()
    a = zf.create(store, shape=(8, 8), chunks=(2, 4), shards=(8, 8), dtype="i4", compressor=None)
    a[:] = np.arange(64, dtype="i4").reshape(8, 8) + 1
    return a, store, bytearray(store.get("c/0/0"))


def _reindex(a, raw: bytearray, row: int, entry: tuple[int, int]) -> bytes:
    codec = a.engine.codec
    index = codec.decode_index(codec.index_bytes(bytes(raw))).copy()
    index[row] = entry
    encoded = codec.index_pipeline.encode(index.reshape(*codec.chunks_per_shard, 2))
    return bytes(raw[: -codec.index_size]) + encoded


def test_bad_index_checksum_names_the_shard(stored_shard):
    a, store, raw = stored_shard
    raw[-6] ^= 0xFF
    store.set("c/0/0", bytes(raw))
    for read in (lambda: a[0, 0], lambda: a[:]):
        with pytest.raises(zf.CorruptChunkError, match=r"shard key 'c/0/0'.*checksum"):
            read()
    with pytest.raises(zf.ParallelChunkError, match=r"\(0, 0\)"):
        list(a.chunk_stream())


def test_offsets_beyond_the_object_name_the_shard(stored_shard):
    a, store, raw = stored_shard
    store.set("c/0/0", _reindex(a, raw, 3, (len(raw) + 100, 32)))
    with pytest.raises(zf.CorruptChunkError, match=r"shard key 'c/0/0', inner chunk \(1, 1\)"):
        a[2, 4]  # a ranged read comes back short
    with pytest.raises(zf.CorruptChunkError, match=r"shard key 'c/0/0'.*outside"):
        a[:]  # the whole shard is read: its index is checked against its length
    store.set("c/0/0", _reindex(a, raw, 0, (MISSING, 32)))
    with pytest.raises(zf.CorruptChunkError, match="half missing"):
        a[0, 0]
    store.set("c/0/0", bytes(raw[:10]))
    with pytest.raises(zf.CorruptChunkError, match="shard key 'c/0/0'"):
        a[:]


def test_corrupt_inner_chunk_names_shard_and_inner_chunk():
    store = MemoryStore()
    a = zf.create(store, shape=(8, 8), chunks=(2, 4), shards=(8, 8), dtype="i4")
    a[:] = 3
    raw = bytearray(store.get("c/0/0"))
    raw[5] ^= 0xFF  # inside inner chunk (0, 0)'s zstd frame
    store.set("c/0/0", bytes(raw))
    with pytest.raises(zf.CorruptChunkError, match=r"shard key 'c/0/0', inner chunk \(0, 0\)"):
        a[0:2, 0:4]
    np.testing.assert_array_equal(a[2:8, :], 3)  # the other inner chunks are fine
    results = dict(a.parallel_chunk_map(lambda i, c: int(c.sum()), on_error="return"))
    assert isinstance(results.pop((0, 0)), zf.ChunkFailure)
    assert set(results.values()) == {24}


def test_info_and_resize_of_a_sharded_array():
    a = zf.create(MemoryStore(), shape=(37, 29), chunks=(4, 5), shards=(16, 20), dtype="i4")
    a[:] = sample()
    info = a.info
    assert info["Shards"] == (16, 20) and info["Inner chunks"] == (4, 5)
    assert info["Shards stored"] == "5 / 6" and info["Inner chunks per shard"] == 16
    assert "Bytes stored" in repr(info)
    a.resize(20, 12)
    a.resize(37, 29)
    expected = np.zeros((37, 29), "i4")
    expected[:20, :12] = sample()[:20, :12]
    np.testing.assert_array_equal(a[:], expected)


class RemoteLog(RequestLog):
    """A request log that says it is remote, and records each batch of ranged reads."""

    is_remote = True

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.batches: list[int] = []

    def get_ranges(self, requests):
        self.batches.append(len(requests))
        return super().get_ranges(requests)


def test_a_remote_read_batches_indices_then_ranges():
    inner = MemoryStore()
    a = zf.create(inner, shape=(32, 64), chunks=(4, 8), shards=(16, 32), dtype="f4")
    data = np.random.default_rng(2).random((32, 64), dtype="f4")
    a[:] = data
    store = RemoteLog(inner)
    b = zf.open_array(store, mode="r")
    np.testing.assert_array_equal(b[2:30:8, 5:60], data[2:30:8, 5:60])  # half of 4 shards
    assert store.batches == [4, 4]  # the 4 indices in one batch, then 4 coalesced ranges
    store.batches.clear()
    np.testing.assert_array_equal(
        b.vindex[[0, 31, 17], [63, 0, 40]], data[[0, 31, 17], [63, 0, 40]]
    )
    assert store.batches == [3, 3]
