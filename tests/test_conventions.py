"""zarr-python's conventions: chunks/shards, grid counts, codecs views, stored bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

import zarrflow as zf


def _json(value):
    """``value`` as JSON reads it back (tuples become lists; a top-level list a tuple)."""
    out = json.loads(json.dumps(value))
    return tuple(out) if isinstance(out, list) else out


@pytest.fixture
def sharded_pair(tmp_path):
    """The same sharded array written by zarr-python, opened by both libraries."""
    path = tmp_path / "s.zarr"
    z = zarr.create_array(
        str(path), shape=(37, 29), chunks=(4, 5), shards=(16, 20), dtype="i4", fill_value=0
    )
    data = np.arange(37 * 29, dtype="i4").reshape(37, 29)
    data[16:32, 0:20] = 0  # shard (1, 0) all fill: zarr-python does not store it
    z[:] = data
    return z, zf.open(str(path), mode="r"), data


def test_sharded_chunks_shards_and_counts_match_zarr_python(sharded_pair):
    z, a, _ = sharded_pair
    assert (a.chunks, a.shards) == (z.chunks, z.shards) == ((4, 5), (16, 20))
    assert a.chunk_grid_shape == z.cdata_shape == (10, 6)
    assert a.nchunks == z.nchunks == 60
    assert (a.shard_grid_shape, a.nshards) == ((3, 2), 6)
    assert a.nshards_initialized == 5
    # zarr-python multiplies stored shards by chunks per shard (80 here, more than
    # nchunks); zarrflow counts only the inner chunks inside the array
    assert a.nchunks_initialized == 16 + 8 + 8 + 8 + 4
    assert a.nchunks_initialized <= a.nchunks


def test_unsharded_counts_match_zarr_python(tmp_path):
    z = zarr.create_array(str(tmp_path / "u"), shape=(10, 7), chunks=(3, 3), dtype="f8")
    z[:4, :] = 1.5
    a = zf.open(str(tmp_path / "u"), mode="r")
    assert a.shards is None and a.chunks == z.chunks
    assert a.chunk_grid_shape == a.shard_grid_shape == z.cdata_shape
    assert (a.nchunks, a.nchunks_initialized) == (z.nchunks, z.nchunks_initialized) == (12, 6)
    assert a.nshards == a.nchunks and a.nshards_initialized == a.nchunks_initialized


def test_stream_read_chunk_and_chunk_slices_agree_on_inner_chunks(sharded_pair):
    _, a, data = sharded_pair
    seen = 0
    for idx, chunk in a.chunk_stream(parallel=2):
        region = a.chunk_slices(idx)
        np.testing.assert_array_equal(chunk, data[region])
        full = a.read_chunk(idx)
        assert full.shape == a.chunks
        np.testing.assert_array_equal(full[tuple(slice(0, s) for s in chunk.shape)], chunk)
        seen += 1
    assert seen == a.nchunks
    assert a.chunk_key((9, 5)) == "c/2/1"  # inner chunk (9, 5) lives in shard (2, 1)


def test_write_chunk_of_a_sharded_array_writes_one_inner_chunk(tmp_path):
    a = zf.create(str(tmp_path / "w"), shape=(10, 10), chunks=(2, 2), shards=(4, 4), dtype="i2")
    a[:] = 1
    a.write_chunk((4, 4), np.full((2, 2), 7, "i2"))
    expected = np.ones((10, 10), "i2")
    expected[8:10, 8:10] = 7
    np.testing.assert_array_equal(a[:], expected)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "w"), mode="r")[:], expected)


@pytest.mark.parametrize("fmt", [2, 3])
def test_codec_views_match_zarr_python(tmp_path, fmt):
    path = str(tmp_path / f"c{fmt}")
    if fmt == 2:
        import numcodecs

        z = zarr.create_array(
            path,
            shape=(20,),
            chunks=(5,),
            dtype="f8",
            zarr_format=2,
            filters=[numcodecs.Delta(dtype="f8")],
            compressors=[numcodecs.Zlib(level=3)],
        )
    else:
        z = zarr.create_array(
            path,
            shape=(20,),
            chunks=(5,),
            shards=(10,),
            dtype="f8",
            filters=[{"name": "transpose", "configuration": {"order": [0]}}],
            compressors=[{"name": "gzip", "configuration": {"level": 3}}],
        )
    z[:] = np.arange(20.0)
    a = zf.open(path, mode="r")
    if fmt == 2:
        assert a.compressors == z.compressors and a.filters == z.filters
        assert a.serializer is None and z.serializer is None
    else:
        assert a.compressors == _json([c.to_dict() for c in z.compressors])
        assert a.filters == _json([f.to_dict() for f in z.filters])
        assert a.serializer == _json(z.serializer.to_dict())
    assert a.nbytes_stored() == z.nbytes_stored()
    info = a.info_complete()
    assert info["Bytes stored (with metadata)"] == z.nbytes_stored()
    assert info["Chunks initialized"] == f"{a.nchunks_initialized} / {a.nchunks}"
    assert "shards=(10,)" in repr(a) if fmt == 3 else "shards" not in repr(a)


# -- zarr-python's creation functions and chunk rules ------------------------------------------
@pytest.mark.parametrize(
    ("shape", "dtype", "shards"),
    [
        ((10_000, 10_000), "f8", None),
        ((1000, 1000), "i2", None),
        ((37, 29, 5), "u1", None),
        ((123_456_789,), "f4", None),
        ((4096, 4096), "f8", (2048, 2048)),
    ],
)
def test_auto_chunks_follow_zarr_pythons_rule(shape, dtype, shards):
    z = zarr.create_array({}, shape=shape, chunks="auto", shards=shards, dtype=dtype)
    a = zf.create(zf.storage.MemoryStore(), shape=shape, chunks="auto", shards=shards, dtype=dtype)
    assert a.chunks == z.chunks
    assert a.shards == z.shards


def test_minus_one_is_the_whole_axis_as_in_zarr_python():
    z = zarr.create(shape=(7, 100, 3), chunks=(-1, 10, -1), dtype="i1")  # zarr.create takes -1
    a = zf.create("memory://conv-minus-one", shape=(7, 100, 3), chunks=(-1, 10, -1), dtype="i1")
    assert a.chunks == z.chunks == (7, 10, 3)
    b = zf.create(zf.storage.MemoryStore(), shape=(10, 10), chunks=(3, 4), shards=(-1, 8))
    assert (b.chunks, b.shards) == ((3, 4), (12, 8))  # whole axis, in whole chunks
    with pytest.raises(zf.MetadataError, match="positive int"):
        zf.create(zf.storage.MemoryStore(), shape=(4,), chunks=(0,))
    with pytest.raises(zf.MetadataError, match="'auto'"):
        zf.create(zf.storage.MemoryStore(), shape=(4,), chunks="big")


def test_zeros_ones_full_empty_array_as_zarr_python(tmp_path):
    for name, args in [("zeros", ()), ("ones", ()), ("full", (5,)), ("empty", ())]:
        path = str(tmp_path / name)
        a = getattr(zf, name)((6, 4), *args, store=path, chunks=(3, 2), dtype="i4")
        z = getattr(zarr, name)((6, 4), *args, chunks=(3, 2), dtype="i4")
        np.testing.assert_array_equal(a[:], z[:])
        assert a.nchunks_initialized == 0  # the fill value, nothing written
        np.testing.assert_array_equal(zarr.open_array(path, mode="r")[:], z[:])
    data = np.arange(24, dtype="i8").reshape(4, 6)
    a = zf.array(data, store=str(tmp_path / "arr"), chunks=(2, -1))
    assert (a.shape, a.dtype, a.chunks) == ((4, 6), np.dtype("i8"), (2, 6))
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "arr"), mode="r")[:], data)
    assert isinstance(zf.zeros(3).store, zf.storage.MemoryStore)


def test_create_and_create_array_take_data(tmp_path):
    import dask.array as da

    data = np.linspace(0, 1, 50).reshape(5, 10)
    a = zf.create(str(tmp_path / "a"), data=data, chunks=(2, 5))
    assert (a.shape, a.dtype) == (data.shape, data.dtype)
    np.testing.assert_array_equal(a[:], data)
    g = zf.open_group(str(tmp_path / "g"), mode="w")
    x = g.create_array("x", data=da.from_array(data, chunks=(5, 5)), chunks=(5, 5))
    np.testing.assert_array_equal(x[:], data)
    y = g.create_array("y", data=[1, 2, 3], dtype="i2")
    assert y[:].tolist() == [1, 2, 3] and y.dtype == np.dtype("i2")
    with pytest.raises(zf.MetadataError, match="does not match"):
        g.create_array("z", data=data, shape=(3, 3))
    with pytest.raises(zf.ValueShapeError, match="losing information"):
        g.create_array("w", data=data, dtype="i2")
    assert "z" not in g and "w" not in g  # bad input: nothing created
    with pytest.raises(zf.MetadataError, match="shape="):
        zf.create(str(tmp_path / "none"))


def test_open_consolidated(tmp_path):
    for fmt in (2, 3):
        path = str(tmp_path / f"g{fmt}")
        g = zarr.open_group(path, mode="w", zarr_format=fmt)
        g.create_array("x", shape=(2,), dtype="i1")
        with pytest.raises(zf.MetadataError, match="no consolidated metadata"):
            zf.open_consolidated(path)
        zarr.consolidate_metadata(path)
        root = zf.open_consolidated(path)
        assert list(root) == ["x"] and root.zarr_format == fmt
    with pytest.raises(zf.GroupNotFoundError):
        zf.open_consolidated(str(tmp_path / "missing"))


def test_chunks_and_shards_need_one_size_per_axis():
    for bad in ((2,), (2, 2, 2)):
        with pytest.raises(zf.MetadataError, match="2 positive sizes"):
            zf.create(zf.storage.MemoryStore(), shape=(4, 4), chunks=bad)
    a = zf.create(zf.storage.MemoryStore(), shape=(4, 6), chunks=((2, 2), (3, 3)), dtype="u1")
    assert a.chunks == (2, 3)  # dask-style block sizes: the first of each axis


def test_open_and_open_array_create_from_data(tmp_path):
    a = zf.open(str(tmp_path / "o"), mode="w", data=np.arange(4), chunks=2)
    b = zf.open_array(str(tmp_path / "oa"), mode="a", data=np.ones((2, 2), "u1"))
    assert isinstance(a, zf.Array) and a[:].tolist() == [0, 1, 2, 3]
    assert b.dtype == np.dtype("u1") and int(b[:].sum()) == 4


def test_to_dask_blocks_whole_shards_or_the_stored_chunks(sharded_pair):
    import dask.array as da

    z, a, data = sharded_pair
    blocks = a.to_dask().chunks  # zarrflow's tasks: whole shards (one request each)
    assert all(n % s == 0 for axis, s in zip(blocks, a.shards, strict=True) for n in axis[:-1])
    one = a.to_dask(chunks_per_task=1)  # the inner chunks, as dask.array.from_zarr gives
    assert one.chunks == da.from_zarr(z).chunks
    np.testing.assert_array_equal(one.compute(scheduler="threads"), data)


def test_v2_dimension_names_are_kept_as_xarrays_attribute():
    """Zarr v2 has no dimension_names field: they used to be dropped without a word."""
    url = "memory://conventions-v2-dims"
    a = zf.create(
        url, shape=(2, 3), chunks=(2, 3), dtype="i2", zarr_format=2, dimension_names=["y", "x"]
    )
    assert a.attrs["_ARRAY_DIMENSIONS"] == ["y", "x"]
    assert a.dimension_names == ("y", "x")
    with pytest.raises(zf.MetadataError, match="_ARRAY_DIMENSIONS"):
        zf.create(
            f"{url}-2",
            shape=(2, 3),
            chunks=(2, 3),
            dtype="i2",
            zarr_format=2,
            dimension_names=["y", "x"],
            attributes={"_ARRAY_DIMENSIONS": ["a", "b"]},
        )
