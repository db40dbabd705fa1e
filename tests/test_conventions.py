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
