"""Every data type zarr-python 3 (and tensorstore, where it can) writes, both ways, v2 and v3.

Each case is written by zarr-python and read by zarrflow, and written by
zarrflow and read by zarr-python, with a chunk written in part and a chunk
never written (it reads as the fill value). The metadata zarrflow writes is
compared with zarr-python's own JSON for the same data type and fill value.
"""

from __future__ import annotations

import json
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pandas as pd
import pytest
import tensorstore as ts
import zarr
from zarr.core.dtype import VariableLengthBytes

import zarrflow as zf
from zarrflow.integrations.copying import CopyError
from zarrflow.metadata import dtype_from_json_v3, dtype_to_json_v3, parse_dtype
from zarrflow.metadata.object_dtypes import BYTES_DTYPE, STRING_DTYPE

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

SHAPE, CHUNKS = (7,), (2,)  # four chunks: two whole, one in part, one never written


@dataclass(frozen=True)
class Case:
    id: str
    zp_dtype: Any  # what zarr-python's create_array takes
    zf_dtype: Any  # what zarrflow's create takes
    data: np.ndarray  # five values: chunks 0 and 1 whole, chunk 2 in part
    fill: Any  # a fill value that is not the default


STRUCT = np.dtype([("a", "<i4"), ("b", "<f8"), ("c", "S3")])
CASES = [
    Case(
        "string",
        str,
        str,
        np.array(["a", "bcd", "", "héllo wörld", "x" * 300], dtype=object),
        "fill",
    ),
    Case(
        "bytes",
        VariableLengthBytes(),
        bytes,
        np.array([b"a", b"", b"x\x00y", b"\xff" * 9, b"q" * 300], dtype=object),
        b"zz",
    ),
    Case("U5", "<U5", "<U5", np.array(["a", "bcd", "", "héllo", "δ"]), "ab"),
    Case("S4", "S4", "S4", np.array([b"a", b"bcd", b"", b"x\x00y", b"abcd"]), b"ab"),
    Case("V3", "V3", "V3", np.array([b"abc", b"\x00\x01\x02", b"xyz", b"123", b"!!!"], "V3"), None),
    Case(
        "M8ns",
        "M8[ns]",
        "M8[ns]",
        np.array(["2020-01-01", "NaT", "1970-01-01", "2021-03-04T05:06", "1900-01-01"], "M8[ns]"),
        np.datetime64(5, "ns"),
    ),
    Case("M8_10s", "M8[10s]", "M8[10s]", np.arange(5).astype("M8[10s]"), np.datetime64(7, "10s")),
    Case("M8D", "M8[D]", "M8[D]", np.arange(5).astype("M8[D]"), np.datetime64("2000-01-01")),
    Case(
        "m8ms",
        "m8[ms]",
        "m8[ms]",
        np.array([0, 1, -2, "NaT", 5], "m8[ms]"),
        np.timedelta64(3, "ms"),
    ),
    Case(
        "structured",
        STRUCT,
        STRUCT,
        np.array(
            [(1, 2.0, b"x"), (3, 4.0, b"yz"), (0, 0, b""), (5, 6, b"abc"), (-1, 0.5, b"q")], STRUCT
        ),
        np.array((3, 1.5, b"x"), STRUCT)[()],
    ),
]
IDS = [c.id for c in CASES]


def as_object(values: np.ndarray) -> np.ndarray:
    """zarr-python 3 reads variable-length strings as numpy's StringDType: compare as objects."""
    return values.astype(object) if values.dtype.kind == "T" else values


def assert_equal_values(got: np.ndarray, expected: np.ndarray) -> None:
    expected = as_object(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape
    assert got.tolist() == expected.tolist()


def zarr_document(path: Path) -> dict[str, Any]:
    name = "zarr.json" if (path / "zarr.json").exists() else ".zarray"
    return json.loads((path / name).read_text())


def zp_create(path: Path, case: Case, fmt: int, fill: Any) -> zarr.Array:
    kwargs = {} if fill is None else {"fill_value": fill}
    return zarr.create_array(
        store=str(path), shape=SHAPE, chunks=CHUNKS, dtype=case.zp_dtype, zarr_format=fmt, **kwargs
    )


def zf_create(path: Path, case: Case, fmt: int, fill: Any) -> zf.Array:
    # v3: None is zarr-python's default fill value; v2: None would be null, so
    # the default is create()'s own (0: zeros, "", b"", the epoch)
    kwargs = {} if fill is None and fmt == 2 else {"fill_value": fill}
    return zf.create(
        str(path), shape=SHAPE, chunks=CHUNKS, dtype=case.zf_dtype, zarr_format=fmt, **kwargs
    )


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("explicit_fill", [False, True], ids=["default-fill", "fill"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zarr_python_writes_zarrflow_reads(tmp_path, case, fmt, explicit_fill):
    fill = case.fill if explicit_fill else None
    if case.id == "bytes" and fmt == 2 and not explicit_fill:
        fill = b""  # zarr-python 3.1 cannot make this one without a fill value
    path = tmp_path / "a.zarr"
    z = zp_create(path, case, fmt, fill)
    z[:5] = case.data
    a = zf.open(str(path), mode="r")
    assert_equal_values(a[:], z[:])
    assert_equal_values(a[1:6], z[1:6])  # a selection across a chunk in part
    assert a[6] == z[6] or (np.isnat(a[6]) and np.isnat(z[6]))  # the chunk never written
    if explicit_fill and case.fill is not None:
        assert a.fill_value == case.fill


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("explicit_fill", [False, True], ids=["default-fill", "fill"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zarrflow_writes_zarr_python_reads(tmp_path, case, fmt, explicit_fill):
    fill = case.fill if explicit_fill else None
    a = zf_create(tmp_path / "a.zarr", case, fmt, fill)
    a[:5] = case.data
    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")
    assert_equal_values(a[:], z[:])
    assert_equal_values(a[:5], case.data)
    assert a.nchunks_initialized == 3


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("case", [c for c in CASES if c.fill is not None], ids=lambda c: c.id)
def test_metadata_json_is_zarr_pythons(tmp_path, case, fmt):
    """The data type, fill value and object codec JSON are exactly what zarr-python writes."""
    zp_create(tmp_path / "zp.zarr", case, fmt, case.fill)
    zf_create(tmp_path / "zf.zarr", case, fmt, case.fill)
    theirs, ours = zarr_document(tmp_path / "zp.zarr"), zarr_document(tmp_path / "zf.zarr")
    if fmt == 3:
        assert ours["data_type"] == theirs["data_type"]
        assert ours["codecs"][0] == theirs["codecs"][0]  # vlen-utf8 / vlen-bytes / bytes
    else:
        assert ours["dtype"] == theirs["dtype"]
        assert ours["filters"] == theirs["filters"]  # [{"id": "vlen-utf8"}] for strings
    assert ours["fill_value"] == theirs["fill_value"]


@pytest.mark.parametrize("case", [c for c in CASES if c.id != "structured"], ids=lambda c: c.id)
def test_v3_default_fill_value_is_zarr_pythons(tmp_path, case):
    """With no fill value given (None), v3 stores zarr-python's default: "", b"", NaT, zeros."""
    zp_create(tmp_path / "zp.zarr", case, 3, None)
    zf_create(tmp_path / "zf.zarr", case, 3, None)
    theirs, ours = zarr_document(tmp_path / "zp.zarr"), zarr_document(tmp_path / "zf.zarr")
    assert ours["fill_value"] == theirs["fill_value"]


TIME_UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"]


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("kind", ["M8", "m8"])
def test_every_time_unit_both_ways(tmp_path, kind, fmt):
    for unit in TIME_UNITS:
        for scale in ("", "7"):
            dtype = np.dtype(f"{kind}[{scale}{unit}]")
            values = np.array([0, 1, -3, 12345], dtype="i8").view(dtype)
            zp_path, zf_path = tmp_path / f"zp-{unit}{scale}", tmp_path / f"zf-{unit}{scale}"
            z = zarr.create_array(
                store=str(zp_path), shape=(5,), chunks=(2,), dtype=dtype, zarr_format=fmt
            )
            z[:4] = values
            a = zf.open(str(zp_path), mode="r")
            assert a.dtype == dtype.newbyteorder("<")
            assert a[:].view("i8").tolist() == z[:].view("i8").tolist()
            b = zf.create(str(zf_path), shape=(5,), chunks=(2,), dtype=dtype, zarr_format=fmt)
            b[:4] = values
            back = zarr.open_array(str(zf_path), mode="r")
            assert back.dtype == dtype.newbyteorder("<")
            assert back[:4].view("i8").tolist() == values.view("i8").tolist()
            if fmt == 3:
                assert zarr_document(zf_path)["data_type"] == zarr_document(zp_path)["data_type"]


def test_dtype_json_forms():
    """The v3 JSON of each type, and user spellings mapping to it."""
    assert parse_dtype(str, 3) is STRING_DTYPE and dtype_to_json_v3(STRING_DTYPE) == "string"
    assert parse_dtype("str", 2) is STRING_DTYPE
    assert parse_dtype(bytes, 3) is BYTES_DTYPE
    assert dtype_to_json_v3(BYTES_DTYPE) == "variable_length_bytes"
    assert dtype_from_json_v3("bytes") is BYTES_DTYPE  # zarr-python's alias
    assert dtype_to_json_v3(parse_dtype("U8", 3)) == {
        "name": "fixed_length_utf32",
        "configuration": {"length_bytes": 32},
    }
    assert dtype_to_json_v3(parse_dtype("S4", 3)) == {
        "name": "null_terminated_bytes",
        "configuration": {"length_bytes": 4},
    }
    assert dtype_to_json_v3(parse_dtype(">M8[5ms]", 3)) == {
        "name": "numpy.datetime64",
        "configuration": {"unit": "ms", "scale_factor": 5},
    }
    assert parse_dtype([("a", ">i2"), ("b", "U2")], 3) == np.dtype([("a", "<i2"), ("b", "<U2")])
    with pytest.raises(zf.MetadataError, match="sub-array field"):
        parse_dtype([("a", "<f4", (2,))], 3)
    with pytest.raises(zf.MetadataError, match="use dtype=str"):
        parse_dtype(object, 3)


# -- variable-length strings through every path ----------------------------------------------


@pytest.mark.parametrize("fmt", [2, 3])
def test_strings_through_stream_map_dask_and_to_zarr(tmp_path, fmt):
    a = zf.create(str(tmp_path / "s.zarr"), shape=(5, 4), chunks=(2, 3), dtype=str, zarr_format=fmt)
    values = np.array([[f"{i}-{j}" * (i + j) for j in range(4)] for i in range(5)], dtype=object)
    a[:] = values
    assert a[:].tolist() == values.tolist()
    assert a[1:4, ::2].tolist() == values[1:4, ::2].tolist()
    streamed = dict(a.chunk_stream(parallel=2))
    assert streamed[(2, 1)].tolist() == values[4:, 3:].tolist()
    joined = dict(a.parallel_chunk_map(lambda idx, c: "|".join(c.ravel()), max_concurrency=2))
    assert joined[(0, 0)] == "|".join(values[:2, :3].ravel())
    d = a.to_dask()
    assert d.dtype == np.dtype(object)
    assert d.compute().tolist() == values.tolist()
    assert (d == "").sum().compute() == (values == "").sum()
    b = zf.to_zarr(d, str(tmp_path / "copy.zarr"), zarr_format=fmt)
    assert b[:].tolist() == values.tolist()
    assert zarr.open_array(str(tmp_path / "copy.zarr"), mode="r")[:].tolist() == values.tolist()


@pytest.mark.parametrize("fmt", [2, 3])
def test_missing_chunks_and_empty_chunks_of_strings(tmp_path, fmt):
    a = zf.create(str(tmp_path / "s.zarr"), shape=(6,), chunks=(2,), dtype=str, zarr_format=fmt)
    assert a[:].tolist() == [""] * 6  # nothing written: the fill value, "" by default
    a[:] = ["a", "b", "", "", "c", ""]
    assert a.nchunks_initialized == 2  # the all-"" chunk is not stored
    a[:2] = ""
    assert a.nchunks_initialized == 1  # and an all-"" write removes a stored chunk
    assert a[:].tolist() == ["", "", "", "", "c", ""]


def test_empty_chunks_of_nat_are_not_stored(tmp_path):
    a = zf.create(str(tmp_path / "t.zarr"), shape=(4,), chunks=(2,), dtype="M8[s]", fill_value=None)
    assert np.isnat(a.fill_value)
    a[:] = np.array(["NaT", "NaT", "2000-01-01", "NaT"], "M8[s]")
    assert a.nchunks_initialized == 1


def test_v2_null_fill_value_of_strings_reads_as_empty(tmp_path):
    z = zarr.create_array(
        store=str(tmp_path / "s.zarr"), shape=(4,), chunks=(2,), dtype=str, zarr_format=2
    )
    z[:2] = ["x", "y"]
    doc = json.loads((tmp_path / "s.zarr" / ".zarray").read_text())
    doc["fill_value"] = None  # as zarr-python 2 and xarray wrote it
    (tmp_path / "s.zarr" / ".zarray").write_text(json.dumps(doc))
    assert zf.open(str(tmp_path / "s.zarr"))[:].tolist() == ["x", "y", "", ""]


def test_writing_non_strings_into_a_string_array_is_refused(tmp_path):
    a = zf.create(str(tmp_path / "s.zarr"), shape=(4,), chunks=(2,), dtype=str)
    a[:] = ["a", "b", "c", "d"]
    mixed = np.array(["x", "y", "z", 4], dtype=object)
    for bad in (np.array(5, dtype=object), 5, [b"x", b"y", b"z", b"w"], mixed):
        with pytest.raises(zf.ValueShapeError, match="holds str values only"):
            a[:] = bad
    assert a[:].tolist() == ["a", "b", "c", "d"]
    a[1:3] = np.array(["u", "vv"])  # numpy strings are converted
    assert a[:].tolist() == ["a", "u", "vv", "d"]
    b = zf.create(str(tmp_path / "b.zarr"), shape=(2,), chunks=(2,), dtype=bytes)
    b[:] = np.array([b"p", b"qq"])
    with pytest.raises(zf.ValueShapeError, match="holds bytes values only"):
        b[0] = "text"
    assert b[:].tolist() == [b"p", b"qq"]


def test_a_string_array_with_the_bytes_codec_is_refused(tmp_path):
    """Object elements are pointers: the fixed-size bytes codec must never store them.

    Checked once: with the refusal in ``BytesCodec`` switched off, this test fails
    (the array is created).
    """
    with pytest.raises(zf.CodecError, match="needs 'vlen-utf8' or 'vlen-bytes'"):
        zf.create(str(tmp_path / "s.zarr"), shape=(4,), chunks=(2,), dtype=str, codecs=["bytes"])
    assert not (tmp_path / "s.zarr" / "zarr.json").exists()


def test_sharded_strings_both_ways(tmp_path):
    a = zf.create(str(tmp_path / "a.zarr"), shape=(9,), chunks=(2,), shards=(4,), dtype=str)
    a[:5] = ["a", "bb", "c" * 5000, "", "e"]
    assert zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[:].tolist() == a[:].tolist()
    z = zarr.create_array(
        store=str(tmp_path / "b.zarr"), shape=(9,), chunks=(2,), shards=(4,), dtype=str
    )
    z[3:7] = ["w", "x", "y", "z"]
    assert zf.open(str(tmp_path / "b.zarr"))[:].tolist() == as_object(z[:]).tolist()


# -- v2 object codecs: vlen-array read, pickle / json2 / msgpack2 refused --------------------


def _v2_object_array(path: Path, filters: list[dict[str, Any]], chunks: list[bytes]) -> None:
    path.mkdir()
    zarray = {
        "zarr_format": 2, "shape": [2 * len(chunks)], "chunks": [2], "dtype": "|O",
        "compressor": None, "fill_value": None, "order": "C", "filters": filters,
    }  # fmt: skip
    (path / ".zarray").write_text(json.dumps(zarray))
    for i, chunk in enumerate(chunks):
        (path / str(i)).write_bytes(chunk)


def test_v2_vlen_array_is_read(tmp_path):
    codec = numcodecs.VLenArray("<i4")
    values = [
        np.arange(3, dtype="<i4"),
        np.array([], "<i4"),
        np.array([7], "<i4"),
        np.arange(5, dtype="<i4"),
    ]
    chunks = [codec.encode(np.array([*values[i : i + 2], None], dtype=object)[:2]) for i in (0, 2)]
    _v2_object_array(tmp_path / "r.zarr", [{"id": "vlen-array", "dtype": "<i4"}], chunks)
    got = zf.open(str(tmp_path / "r.zarr"))[:]
    assert [v.tolist() for v in got] == [v.tolist() for v in values]


class _LeavesAMark:
    """Unpickling this object creates the file ``path``: proof that bytes were unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("codec_id", ["pickle", "json2", "msgpack2"])
def test_v2_pickle_json2_msgpack2_object_arrays_are_refused_without_decoding(tmp_path, codec_id):
    """zarrflow never unpickles stored bytes: the array is refused, the mark never appears.

    The stored chunk is live: the last lines show that unpickling it, what a
    reader honouring the ``pickle`` filter does (numcodecs' Pickle.decode is
    ``pickle.loads``), creates the mark.
    """
    mark = tmp_path / "unpickled"
    chunk = numcodecs.Pickle().encode(np.array([_LeavesAMark(str(mark)), None], dtype=object))
    _v2_object_array(tmp_path / "p.zarr", [{"id": codec_id}], [chunk])
    with pytest.raises(zf.MetadataError, match=f"array: object arrays encoded with '{codec_id}'"):
        zf.open(str(tmp_path / "p.zarr"))[:]
    assert not mark.exists()
    if codec_id == "pickle":
        pickle.loads(chunk)  # the test's own bytes, to show they are live
        assert mark.exists()


# -- tensorstore ---------------------------------------------------------------------------


def _ts(path: Path, driver: str, **spec: Any) -> Any:
    return ts.open(
        {"driver": driver, "kvstore": {"driver": "file", "path": str(path)}, **spec}
    ).result()


@pytest.mark.parametrize("fmt", [2, 3])
def test_tensorstore_reads_zarrflow_structured(tmp_path, fmt):
    dtype = np.dtype([("a", "<i4"), ("b", "<f8")])
    a = zf.create(str(tmp_path / "s.zarr"), shape=(5,), chunks=(2,), dtype=dtype, zarr_format=fmt)
    values = np.array([(1, 0.5), (2, 0.25), (3, 0.125)], dtype)
    a[:3] = values
    driver = "zarr3" if fmt == 3 else "zarr"
    for name in ("a", "b"):
        got = _ts(tmp_path / "s.zarr", driver, field=name).read().result()
        assert got[:3].tolist() == values[name].tolist()
        assert got[3:].tolist() == [0, 0]


def test_zarrflow_reads_tensorstore_v2_structured_and_v3_struct(tmp_path):
    fields = [["a", "<i4"], ["b", "<f8"]]
    meta2 = {"dtype": fields, "shape": [5], "chunks": [2], "compressor": None, "fill_value": None}
    kvstore = {"driver": "file", "path": str(tmp_path / "v2")}
    spec2 = {"driver": "zarr", "field": "a", "kvstore": kvstore, "metadata": meta2}
    t = ts.open(spec2, create=True).result()
    t[:3] = [1, 2, 3]
    assert zf.open(str(tmp_path / "v2"))[:]["a"].tolist() == [1, 2, 3, 0, 0]
    struct = {"name": "struct", "configuration": {"fields": [
        {"name": "a", "data_type": "int32"}, {"name": "b", "data_type": "float64"}]}}  # fmt: skip
    meta3 = {"data_type": struct, "shape": [5], "fill_value": {"a": 7, "b": 1.5},
             "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}}}  # fmt: skip
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "v3")}}
    ts.open({**spec, "field": "a", "metadata": meta3}, create=True).result()[:3] = [1, 2, 3]
    ts.open({**spec, "field": "b"}).result()[:3] = [0.5, 0.25, 0.125]
    got = zf.open(str(tmp_path / "v3"))[:]
    assert got.tolist() == [(1, 0.5), (2, 0.25), (3, 0.125), (7, 1.5), (7, 1.5)]


# -- xarray and the DataFrame bridge ----------------------------------------------------------


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("kind", ["object", "U"])
@pytest.mark.parametrize("chunks", [None, {}], ids=["eager", "dask"])
def test_xarray_string_coordinate_opens_like_the_zarr_engine(tmp_path, fmt, kind, chunks):
    xr = pytest.importorskip("xarray")
    stations = np.array(["alpha", "beta", "gamma"], dtype=object if kind == "object" else "U5")
    ds = xr.Dataset(
        {"temp": (("station", "time"), np.arange(12.0).reshape(3, 4))},
        coords={"station": stations, "time": pd.date_range("2020-01-01", periods=4)},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(tmp_path / "d.zarr", zarr_format=fmt, consolidated=False)
        ours = xr.open_dataset(tmp_path / "d.zarr", engine="zarrflow", chunks=chunks).load()
        theirs = xr.open_dataset(tmp_path / "d.zarr", engine="zarr", chunks=chunks).load()
    xr.testing.assert_identical(ours, theirs)
    assert ours.station.values.tolist() == ["alpha", "beta", "gamma"]


@pytest.mark.parametrize("fmt", [2, 3])
def test_dataframe_bridge_carries_strings_and_the_index(fmt):
    from zarrflow.integrations.dataframe import from_dask_dataframe, to_dask_dataframe

    df = pd.DataFrame(
        {
            "name": pd.array(["a", "bb", "", "dddd", "é"], dtype="string"),
            "x": np.arange(5),
            "o": np.array(["p", "q", "r", "s", "t"], dtype=object),
        },
        index=pd.Index(["r0", "r1", "r2", "r3", "r4"], name="key"),
    )
    url = f"memory://dtypes-df-{fmt}"
    g = from_dask_dataframe(df, url, chunks=2, overwrite=True, zarr_format=fmt)
    assert g["name"].dtype == np.dtype(object) and g["key"][:].tolist() == list(df.index)
    out = to_dask_dataframe(g)
    assert out.npartitions == 3 and out.known_divisions
    got = out.compute()
    expected = df.astype({"o": "string"})
    expected.index = expected.index.astype("string")
    pd.testing.assert_frame_equal(got, expected)
    assert isinstance(got["name"].dtype, pd.StringDtype)


# -- groups never fail as a whole --------------------------------------------------------------


def _group_with_bad_members(path: Path, fmt: int) -> None:
    """A group with readable members and three kinds of unreadable ones."""
    g = zf.open_group(str(path), mode="w", zarr_format=fmt)
    g.create_array("good", shape=(4,), chunks=(2,), dtype="i4")[:] = 1
    g.create_group("sub").create_array("s", shape=(3,), chunks=(3,), dtype=str)[:] = ["a", "b", "c"]
    g.create_array("codec", shape=(4,), chunks=(2,), dtype="i4")[:] = 2
    g.create_array("dtype", shape=(4,), chunks=(2,), dtype="i4")
    if fmt == 3:
        doc = json.loads((path / "codec" / "zarr.json").read_text())
        doc["codecs"].append({"name": "no_such_codec"})
        (path / "codec" / "zarr.json").write_text(json.dumps(doc))
        doc = json.loads((path / "dtype" / "zarr.json").read_text())
        doc["data_type"] = "float8_e4m3"
        (path / "dtype" / "zarr.json").write_text(json.dumps(doc))
    else:
        doc = json.loads((path / "codec" / ".zarray").read_text())
        doc["compressor"] = {"id": "no_such_codec"}
        (path / "codec" / ".zarray").write_text(json.dumps(doc))
        doc = json.loads((path / "dtype" / ".zarray").read_text())
        doc.update(dtype="|O", filters=[{"id": "pickle"}])
        (path / "dtype" / ".zarray").write_text(json.dumps(doc))


@pytest.mark.parametrize("consolidated", [False, True], ids=["plain", "consolidated"])
@pytest.mark.parametrize("fmt", [2, 3])
def test_group_with_unreadable_members_opens_lists_and_describes(tmp_path, fmt, consolidated):
    path = tmp_path / "g.zarr"
    _group_with_bad_members(path, fmt)
    if consolidated:
        zf.consolidate_metadata(str(path))
    g = zf.open_group(str(path), mode="r", use_consolidated=consolidated)
    assert g.keys() == ["codec", "dtype", "good", "sub"]
    members = dict(g.members())
    assert isinstance(members["good"], zf.Array) and isinstance(members["sub"], zf.Group)
    assert [m.path for m in g.unreadable()] == ["codec", "dtype"]
    assert g.array_keys() == ["good"] and g.group_keys() == ["sub"]
    assert "codec" in g and "dtype" in g
    with pytest.raises(zf.UnknownCodecError, match=r"array '.*codec'.*no_such_codec"):
        g["codec"]
    with pytest.raises(zf.MetadataError, match=r"array 'dtype'.*(float8_e4m3|pickle)"):
        g["dtype"]
    tree = g.tree()
    assert "good (4,) int32" in tree and "s (3,) object" in tree
    assert "codec (cannot be opened: UnknownCodecError" in tree
    assert "dtype (cannot be opened: MetadataError" in tree
    info = repr(g.info)
    assert "Unreadable members" in info and "no_such_codec" in info
    assert g["good"][:].tolist() == [1, 1, 1, 1]


def test_member_whose_zarr_json_is_not_json_is_listed(tmp_path):
    g = zf.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("good", shape=(2,), dtype="i1")
    (tmp_path / "g.zarr" / "broken").mkdir()
    (tmp_path / "g.zarr" / "broken" / "zarr.json").write_text("{not json")
    g = zf.open_group(str(tmp_path / "g.zarr"), mode="r")
    assert g.keys() == ["broken", "good"] and "broken" in g
    with pytest.raises(zf.MetadataError, match=r"broken/zarr\.json"):
        g["broken"]
    assert "broken (cannot be opened: MetadataError" in g.tree()


def test_cli_info_of_a_group_with_an_unreadable_member(tmp_path, capsys):
    from zarrflow import cli

    _group_with_bad_members(tmp_path / "g.zarr", 3)
    assert cli.main(["info", str(tmp_path / "g.zarr")]) == 0
    out = capsys.readouterr().out
    assert "Unreadable members" in out and "good (4,) int32" in out


@pytest.mark.parametrize("fmt", [2, 3])
def test_copy_names_unreadable_members_and_writes_nothing(tmp_path, fmt):
    from zarrflow.integrations.copying import copy_node

    _group_with_bad_members(tmp_path / "g.zarr", fmt)
    with pytest.raises(CopyError, match=r"2 member\(s\) cannot be read: 'codec'.*'dtype'"):
        copy_node(str(tmp_path / "g.zarr"), str(tmp_path / "out.zarr"))
    assert not (tmp_path / "out.zarr").exists()
    from zarrflow import cli

    assert cli.main(["copy", str(tmp_path / "g.zarr"), str(tmp_path / "out2.zarr")]) == 1
    assert not (tmp_path / "out2.zarr").exists()


def test_copy_that_fails_midway_names_the_member_and_leaves_nothing(tmp_path):
    """A chunk that cannot be decoded stops the copy; the error names the member."""
    from zarrflow.integrations.copying import copy_node
    from zarrflow.storage import MemoryStore

    g = zf.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("a", shape=(4,), chunks=(2,), dtype="i4")[:] = 1
    g.create_array("b", shape=(4,), chunks=(2,), dtype="i4")[:] = 2
    (tmp_path / "g.zarr" / "b" / "c" / "1").write_bytes(b"not zstd")
    with pytest.raises(CopyError, match=r"failed \(nothing was written there\).*g\.zarr/b"):
        copy_node(str(tmp_path / "g.zarr"), str(tmp_path / "out.zarr"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.zarr"]
    store = MemoryStore()
    with pytest.raises(CopyError, match=r"keys it had written were removed.*g\.zarr/b"):
        copy_node(str(tmp_path / "g.zarr"), store)
    assert list(store.list_prefix("")) == []


@pytest.mark.parametrize("dst_fmt", [2, 3])
@pytest.mark.parametrize("src_fmt", [2, 3])
@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[5], CASES[-1]], ids=lambda c: c.id)
def test_copy_across_formats_keeps_the_data_type(tmp_path, case, src_fmt, dst_fmt):
    from zarrflow.integrations.copying import copy_node

    a = zf_create(tmp_path / "src.zarr", case, src_fmt, case.fill)
    a[:5] = case.data
    b = copy_node(str(tmp_path / "src.zarr"), str(tmp_path / "dst.zarr"), zarr_format=dst_fmt)
    assert b.zarr_format == dst_fmt and b.fill_value == a.fill_value
    assert_equal_values(b[:], a[:])
    assert_equal_values(a[:], zarr.open_array(str(tmp_path / "dst.zarr"), mode="r")[:])
