"""The metadata layer: dtypes, fill values, chunk keys, v2/v3 documents, loading,
consolidation, checked against the Zarr specs and against zarr-python 3 and
tensorstore as oracles (documents written by them read here, and ours read by them).
"""

from __future__ import annotations

import json
import math
import pickle
import re
import timeit
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zarrflow.errors import (
    ArrayNotFoundError,
    GroupNotFoundError,
    MetadataError,
    NodeNotFoundError,
    UnsupportedExtensionError,
)
from zarrflow.metadata import (
    DEFAULT_FILL_VALUE,
    ArrayMetadataV2,
    ArrayMetadataV3,
    ChunkKeyEncoding,
    GroupMetadata,
    dtype_from_json_v2,
    dtype_from_json_v3,
    dtype_to_json_v2,
    dtype_to_json_v3,
    fill_value_from_json,
    fill_value_to_json,
    json_dumps,
    json_loads,
    load_node,
    node_key,
    parse_dtype,
    parse_fill_value,
    read_consolidated,
    write_consolidated,
)
from zarrflow.storage.base import ByteRequest, Store, slice_bytes

zarr = pytest.importorskip("zarr")


# a tiny store, so these tests depend only on the Store contract ---------------------
class DictStore(Store):
    """A dict of bytes that counts ``get_many`` calls."""

    def __init__(self, data: dict[str, bytes] | None = None) -> None:
        self.data = dict(data or {})
        self.url = "dict://test"
        self.get_many_calls = 0

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        value = self.data.get(key)
        return None if value is None else slice_bytes(value, request)

    def set(self, key: str, value: bytes) -> None:
        self.data[key] = bytes(value)

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        return iter([k for k in sorted(self.data) if k.startswith(prefix)])

    def get_many(self, keys):  # type: ignore[no-untyped-def]
        self.get_many_calls += 1
        return super().get_many(keys)

    @classmethod
    def from_dir(cls, root: Path) -> DictStore:
        files = (p for p in root.rglob("*") if p.is_file())
        return cls({p.relative_to(root).as_posix(): p.read_bytes() for p in files})

    def to_dir(self, root: Path) -> None:
        for key, value in self.data.items():
            target = root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(value)


def write_node(store: Store, path: str, meta: Any) -> None:
    for name, doc in meta.to_documents().items():
        store.set(node_key(path, name), doc)


def same_scalar(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN (for floats and complex parts)."""
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(a == b)


# dtypes ---------------------------------------------------------------------------
V2_DTYPES = [
    "<i4", ">i4", "|i1", "<u8", ">u2", "|b1", "|u1", "<f2", ">f4", "<f8", ">f8",
    "<c8", ">c16", "|S10", "<U5", ">U3", "<M8[ns]", ">M8[D]", "<m8[s]", "|V6",
]  # fmt: skip
V3_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]  # fmt: skip


@pytest.mark.parametrize("typestr", V2_DTYPES)
def test_v2_dtype_round_trip_keeps_byte_order(typestr: str) -> None:
    dtype = dtype_from_json_v2(typestr)
    assert dtype == np.dtype(typestr)
    assert dtype_to_json_v2(dtype) == typestr


def test_v2_structured_dtype_round_trip() -> None:
    descr = [["x", "<f4"], ["y", ">i2", [2, 3]], ["z", [["a", "|u1"], ["b", "|S2"]]]]
    dtype = dtype_from_json_v2(descr)
    assert dtype.names == ("x", "y", "z")
    assert dtype_to_json_v2(dtype) == descr


@pytest.mark.parametrize("name", V3_DTYPES)
def test_v3_dtype_round_trip_is_little_endian(name: str) -> None:
    dtype = dtype_from_json_v3(name)
    assert dtype.byteorder in ("=", "|", "<")
    assert dtype.str[0] in "<|"
    assert dtype_to_json_v3(dtype) == name
    assert dtype_to_json_v3(dtype.newbyteorder(">")) == name


@pytest.mark.parametrize(
    ("user", "fmt", "expected"),
    [
        ("int32", 3, "<i4"),
        (np.int32, 3, "<i4"),
        (np.dtype(">f8"), 3, "<f8"),
        ("<f8", 3, "<f8"),
        (bool, 3, "|b1"),
        ("complex128", 3, "<c16"),
        (">i4", 2, ">i4"),
        ("S3", 2, "|S3"),
        ("M8[ms]", 2, np.dtype("M8[ms]").str),
        ("float16", 2, np.dtype("f2").str),
    ],
)
def test_parse_dtype_accepts_user_forms(user: Any, fmt: int, expected: str) -> None:
    assert parse_dtype(user, fmt).str == expected


@pytest.mark.parametrize(
    ("bad", "fmt"),
    [("|O", 2), ("<M8", 2), ("S0", 2), ("|O", 3), ("S0", 3), ("U0", 3), ("nope", 2)],
)
def test_unsupported_dtype_names_the_array(bad: str, fmt: int) -> None:
    with pytest.raises(MetadataError, match="'grp/arr'"):
        parse_dtype(bad, fmt, path="grp/arr")


def test_unsupported_v3_data_type_in_document_names_the_path() -> None:
    with pytest.raises(MetadataError, match=r"array 'a/b'.*'float8_e4m3'"):
        dtype_from_json_v3("float8_e4m3", path="a/b")


# fill values -------------------------------------------------------------------------
V2_FILLS = [
    ("<i4", -7, -7),
    (">u2", 65535, 65535),
    ("|b1", True, True),
    ("<f8", "NaN", "NaN"),
    (">f4", "Infinity", "Infinity"),
    ("<f2", "-Infinity", "-Infinity"),
    ("<f8", 0.5, 0.5),
    ("<c16", [1.0, -2.0], [1.0, -2.0]),
    ("<c8", ["NaN", "Infinity"], ["NaN", "Infinity"]),
    ("|S4", "YWI=", "YWI="),
    ("<U5", "hi", "hi"),
    ("<M8[ns]", 5, 5),
    ("<M8[s]", -(2**63), -(2**63)),  # NaT
    ("<m8[s]", -3, -3),
    ("|V2", "AAE=", "AAE="),
    ("<f8", None, None),
]


@pytest.mark.parametrize(("typestr", "stored", "expected"), V2_FILLS)
def test_v2_fill_value_round_trip(typestr: str, stored: Any, expected: Any) -> None:
    dtype = np.dtype(typestr)
    value = fill_value_from_json(stored, dtype, 2)
    assert value is None or np.asarray(value).dtype.kind == dtype.kind
    assert fill_value_to_json(value, dtype, 2) == expected


V3_FILLS = [
    ("bool", False, False),
    ("int8", -128, -128),
    ("uint64", 2**64 - 1, 2**64 - 1),
    ("float32", "NaN", "NaN"),
    ("float32", "0x7fc00000", "NaN"),  # the canonical NaN, spelt as bits
    ("float32", "0x7fc00001", "0x7fc00001"),  # a NaN payload survives
    ("float64", "0xfff8000000000001", "0xfff8000000000001"),
    ("float16", "0x7e01", "0x7e01"),
    ("float32", "0x3f800000", 1.0),
    ("float64", "Infinity", "Infinity"),
    ("float16", -2.5, -2.5),
    ("float32", 0.1, 0.1),
    ("complex64", [1, "NaN"], [1.0, "NaN"]),
    ("complex128", ["0x7ff8000000000002", -0.0], ["0x7ff8000000000002", -0.0]),
]


@pytest.mark.parametrize(("name", "stored", "expected"), V3_FILLS)
def test_v3_fill_value_round_trip(name: str, stored: Any, expected: Any) -> None:
    dtype = dtype_from_json_v3(name)
    value = fill_value_from_json(stored, dtype, 3)
    assert isinstance(value, np.generic) and value.dtype == dtype
    assert fill_value_to_json(value, dtype, 3) == expected


def test_hex_fill_value_keeps_nan_payload_bits() -> None:
    value = fill_value_from_json("0x7fc00abc", np.dtype("<f4"), 3)
    assert np.array(value).view("<u4") == 0x7FC00ABC
    meta = ArrayMetadataV3.create(shape=2, chunks=2, dtype="float32", fill_value=value)
    doc = json.loads(meta.to_documents()["zarr.json"])
    assert doc["fill_value"] == "0x7fc00abc"
    again = ArrayMetadataV3.from_json(doc)
    assert np.array(again.fill_value).view("<u4") == 0x7FC00ABC


@pytest.mark.parametrize(
    ("dtype", "stored", "fmt"),
    [
        ("float32", "0x7fc0", 3),  # wrong width
        ("float32", "0x7fc00000", 2),  # hex is v3 only
        ("float32", "nan", 3),
        ("int8", 128, 3),
        ("int8", 1.0, 3),  # v3 integers have no fraction
        ("int8", True, 3),
        ("bool", 1, 3),
        ("float64", None, 3),
        ("complex64", 1.0, 3),
        ("|S2", "YWJj", 2),  # 3 bytes for an S2
        ("|S2", "not base64!", 2),
    ],
)
def test_invalid_fill_values_are_metadata_errors(dtype: str, stored: Any, fmt: int) -> None:
    with pytest.raises(MetadataError, match="'some/array'"):
        fill_value_from_json(stored, np.dtype(dtype), fmt, path="some/array")


def test_user_fill_values() -> None:
    assert parse_fill_value(DEFAULT_FILL_VALUE, np.dtype("f4"), 2) == 0
    assert parse_fill_value(None, np.dtype("f4"), 2) is None
    assert parse_fill_value(None, np.dtype("f4"), 3) == 0
    assert math.isnan(parse_fill_value("NaN", np.dtype("f8"), 3))  # type: ignore[arg-type]
    assert parse_fill_value(3.0, np.dtype("i2"), 3) == 3
    assert parse_fill_value(1 + 2j, np.dtype("c8"), 3) == 1 + 2j
    assert parse_fill_value("ab", np.dtype("S3"), 2) == b"ab"
    with pytest.raises(MetadataError):
        parse_fill_value(1.5, np.dtype("i4"), 3)
    with pytest.raises(MetadataError):
        parse_fill_value(300, np.dtype("u1"), 3)
    with pytest.raises(MetadataError):
        parse_fill_value(float("nan"), np.dtype("i4"), 3)


FLOAT_WIDTHS = {"float16": 16, "float32": 32, "float64": 64}


@pytest.mark.parametrize("name", list(FLOAT_WIDTHS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_float_fill_values_round_trip_bit_for_bit(name: str, data: st.DataObject) -> None:
    """Any bit pattern (NaN payloads, infinities, -0, subnormals) survives v3 JSON."""
    bits_dtype = np.dtype(f"<u{FLOAT_WIDTHS[name] // 8}")
    special = st.sampled_from([0x7E00, 0x7C00, 0x7FC00000, 0xFFF0000000000000, 0x8000])
    bits = data.draw(
        st.one_of(special, st.integers(0, 2 ** FLOAT_WIDTHS[name] - 1)).filter(
            lambda b: b < 2 ** FLOAT_WIDTHS[name]
        )
    )
    dtype = dtype_from_json_v3(name)
    value = np.array(bits, dtype=bits_dtype).view(dtype)[()]
    text = json_dumps({"fill_value": fill_value_to_json(value, dtype, 3)})
    back = fill_value_from_json(json_loads(text, "x")["fill_value"], dtype, 3)
    assert np.array(back).view(bits_dtype) == bits
    # v2 keeps the value (any NaN reads back as a NaN)
    back2 = fill_value_from_json(
        json_loads(json_dumps([fill_value_to_json(value, dtype, 2)]), "x")[0], dtype, 2
    )
    assert same_scalar(back2, value)
    if not math.isnan(value):
        assert np.array(back2).view(bits_dtype) == bits


@settings(max_examples=200, deadline=None)
@given(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
)
def test_complex_fill_values_round_trip(re: float, im: float) -> None:
    for fmt in (2, 3):
        for name in ("complex64", "complex128"):
            dtype = dtype_from_json_v3(name)
            with np.errstate(over="ignore"):
                value = np.array(complex(re, im), dtype=dtype)[()]
            text = json_dumps(fill_value_to_json(value, dtype, fmt))
            assert same_scalar(fill_value_from_json(json_loads(text, "x"), dtype, fmt), value)


# chunk keys ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "sep", "coords", "key"),
    [
        ("default", "/", (0, 1), "c/0/1"),
        ("default", ".", (0, 1), "c.0.1"),
        ("default", "/", (), "c"),
        ("default", ".", (), "c"),
        ("v2", ".", (0, 12, 3), "0.12.3"),
        ("v2", "/", (4, 5), "4/5"),
        ("v2", ".", (), "0"),
        ("v2", ".", (7,), "7"),
    ],
)
def test_chunk_key_round_trip(name: str, sep: str, coords: tuple[int, ...], key: str) -> None:
    encoding = ChunkKeyEncoding(name, sep, ndim=len(coords))
    assert encoding.chunk_key(coords) == key
    assert encoding.parse_chunk_key(key) == coords


@pytest.mark.parametrize(
    "key", ["zarr.json", ".zarray", ".zattrs", "c/0", "c/0/1/2", "c/01/2", "c/a/1", "0.1", "c/-1/0"]
)
def test_non_chunk_keys_parse_as_none(key: str) -> None:
    assert ChunkKeyEncoding("default", "/", ndim=2).parse_chunk_key(key) is None


def test_v2_style_non_chunk_keys_parse_as_none() -> None:
    encoding = ChunkKeyEncoding("v2", ".", ndim=2)
    for key in (".zarray", ".zattrs", "0", "0.1.2", "0/1", "1.²"):
        assert encoding.parse_chunk_key(key) is None
    assert ChunkKeyEncoding("v2", ".", ndim=0).parse_chunk_key(".zarray") is None


def test_chunk_key_wrong_dimensionality_is_an_error() -> None:
    with pytest.raises(MetadataError):
        ChunkKeyEncoding("default", "/", ndim=2).chunk_key((1,))


@pytest.mark.parametrize(
    "doc",
    [
        {"name": "default", "configuration": {"separator": "/"}},
        {"name": "default"},
        "default",
        {"name": "default", "separator": "."},  # zarr-python's flat form
        {"name": "v2", "configuration": {"separator": "/"}},
    ],
)
def test_chunk_key_encoding_documents(doc: Any) -> None:
    encoding = ChunkKeyEncoding.from_json(doc, ndim=1)
    assert ChunkKeyEncoding.from_json(encoding.to_json(), ndim=1) == encoding


def test_unknown_chunk_key_encoding_rejected() -> None:
    with pytest.raises(UnsupportedExtensionError, match="'fancy'"):
        ChunkKeyEncoding.from_json({"name": "fancy"}, ndim=1, path="x")
    with pytest.raises(MetadataError, match="separator"):
        ChunkKeyEncoding.from_json({"name": "default", "configuration": {"separator": "-"}}, 1)


def test_chunk_key_is_fast() -> None:
    meta = ArrayMetadataV3.create(shape=(1000, 1000, 1000), chunks=(10, 10, 10), dtype="int8")
    coords = (12, 34, 56)
    n = 20000
    per_call = min(timeit.repeat(lambda: meta.chunk_key(coords), number=n, repeat=5)) / n
    assert per_call < 5e-6  # ~0.5-1 µs on a laptop; generous for slow CI machines


# v2 array metadata -------------------------------------------------------------------
def test_v2_create_and_documents() -> None:
    meta = ArrayMetadataV2.create(
        shape=(10, 0),
        chunks=(3, 4),
        dtype=">f8",
        fill_value=float("nan"),
        order="F",
        compressor={"id": "zlib", "level": 1},
        filters=[{"id": "delta", "dtype": ">f8"}],
        dimension_separator="/",
        attributes={"units": "m"},
    )
    docs = meta.to_documents()
    zarray = json.loads(docs[".zarray"])
    assert zarray == {
        "zarr_format": 2,
        "shape": [10, 0],
        "chunks": [3, 4],
        "dtype": ">f8",
        "compressor": {"id": "zlib", "level": 1},
        "fill_value": "NaN",
        "order": "F",
        "filters": [{"id": "delta", "dtype": ">f8"}],
        "dimension_separator": "/",
    }
    assert json.loads(docs[".zattrs"]) == {"units": "m"}
    assert b"NaN," not in docs[".zarray"]  # never a bare NaN
    assert ArrayMetadataV2.from_json(zarray, {"units": "m"}, "a") == meta
    assert meta.chunk_key((2, 0)) == "2/0"
    assert meta.chunk_grid_shape == (4, 0)


def test_v2_empty_attributes_still_written_like_zarr_python() -> None:
    docs = ArrayMetadataV2.create(shape=2, chunks=1, dtype="u1").to_documents()
    assert json.loads(docs[".zattrs"]) == {}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chunks": (1,)}, "one entry per dimension"),
        ({"chunks": (0, 2)}, "positive"),
        ({"chunks": (-1, 2)}, "non-negative"),
        ({"order": "K"}, "order"),
        ({"dimension_separator": "-"}, "dimension_separator"),
        ({"compressor": {"level": 1}}, "compressor"),
        ({"filters": [{"id": 3}]}, "filter"),
        ({"dimension_names": ["x"]}, "dimension_names"),
    ],
)
def test_v2_create_validation(kwargs: dict[str, Any], match: str) -> None:
    args = {"shape": (4, 4), "chunks": (2, 2), "dtype": "i4", **kwargs}
    with pytest.raises(MetadataError, match=match) as info:
        ArrayMetadataV2.create(**args, path="g/a")
    assert "'g/a'" in str(info.value)


def test_v2_dimension_names_live_in_xarray_attribute() -> None:
    meta = ArrayMetadataV2.create(shape=(2, 3), chunks=1, dtype="u1", dimension_names=["y", "x"])
    assert meta.attributes == {"_ARRAY_DIMENSIONS": ["y", "x"]}
    assert meta.dimension_names == ("y", "x")
    assert meta.replace(dimension_names=None).dimension_names is None
    xarray_style = ArrayMetadataV2.create(
        shape=(2,), chunks=1, dtype="u1", attributes={"_ARRAY_DIMENSIONS": ["t"]}
    )
    assert xarray_style.dimension_names == ("t",)


def test_v2_from_json_leniency_and_errors() -> None:
    doc = {"zarr_format": 2, "shape": [3], "chunks": [2], "dtype": "<i2", "filters": []}
    meta = ArrayMetadataV2.from_json(doc, None, "a")
    assert (meta.filters, meta.compressor, meta.fill_value, meta.order) == (None, None, None, "C")
    assert meta.dimension_separator == "."
    with pytest.raises(MetadataError, match="missing dtype"):
        ArrayMetadataV2.from_json({"zarr_format": 2, "shape": [1], "chunks": [1]}, None, "a")
    with pytest.raises(MetadataError, match="zarr_format"):
        ArrayMetadataV2.from_json({**doc, "zarr_format": 3}, None, "a")


def test_v2_replace_validates() -> None:
    meta = ArrayMetadataV2.create(shape=(4,), chunks=(2,), dtype="u1", attributes={"a": 1})
    bigger = meta.replace(shape=(9,), attributes={"b": 2})
    assert bigger.shape == (9,) and bigger.chunk_grid_shape == (5,)
    assert bigger.attributes == {"b": 2} and meta.attributes == {"a": 1}
    with pytest.raises(MetadataError):
        meta.replace(shape=(4, 4))
    with pytest.raises(TypeError):
        meta.replace(nonsense=1)


# v3 array metadata ---------------------------------------------------------------------
def v3_doc(**changes: Any) -> dict[str, Any]:
    doc = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [10, 10],
        "data_type": "float64",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [5, 5]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {},
    }
    doc.update(changes)
    return doc


def test_v3_from_json_to_json_round_trip() -> None:
    doc = v3_doc(dimension_names=["y", None], attributes={"a": [1, 2]}, fill_value="NaN")
    meta = ArrayMetadataV3.from_json(doc, None, "p")
    assert meta.to_json()["zarr.json"] == doc
    assert meta.dimension_names == ("y", None)
    assert meta.order == "C" and meta.inner_chunks is None
    assert ArrayMetadataV3.from_json(json.loads(meta.to_documents()["zarr.json"])) == meta


def test_v3_must_understand_false_fields_are_kept() -> None:
    ext = {"must_understand": False, "anything": [1]}
    meta = ArrayMetadataV3.from_json(v3_doc(my_extension=ext))
    assert meta.extra_fields == {"my_extension": ext}
    assert meta.to_json()["zarr.json"]["my_extension"] == ext


@pytest.mark.parametrize(
    "extra",
    [
        {"my_extension": {"must_understand": True}},
        {"my_extension": {"x": 1}},
        {"my_extension": 5},
        {"storage_transformers": [{"name": "t", "configuration": {}}]},
        {"chunk_grid": {"name": "rectilinear", "configuration": {}}},
        {"chunk_key_encoding": {"name": "fancy"}},
    ],
)
def test_v3_unsupported_extensions_rejected(extra: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedExtensionError, match="'x/y'"):
        ArrayMetadataV3.from_json(v3_doc(**extra), None, "x/y")


def test_v3_empty_storage_transformers_allowed() -> None:
    assert ArrayMetadataV3.from_json(v3_doc(storage_transformers=[])).shape == (10, 10)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"zarr_format": 2}, "zarr_format"),
        ({"node_type": "group"}, "node_type"),
        ({"fill_value": None}, "null"),
        ({"codecs": []}, "empty"),
        ({"codecs": [{"configuration": {}}]}, "name"),
        ({"dimension_names": ["x"]}, "dimension_names"),
        ({"shape": [10]}, "one entry per dimension"),
        ({"chunk_grid": {"name": "regular", "configuration": {}}}, "chunk_shape"),
        ({"data_type": "float128"}, "data_type"),
    ],
)
def test_v3_invalid_documents(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(MetadataError, match=match):
        ArrayMetadataV3.from_json(v3_doc(**changes), None, "p")


def test_v3_missing_field() -> None:
    doc = v3_doc()
    del doc["fill_value"]
    with pytest.raises(MetadataError, match="missing fill_value"):
        ArrayMetadataV3.from_json(doc, None, "p")


def test_v3_sharded_metadata() -> None:
    sharding = {
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": [5, 1],
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "index_location": "end",
        },
    }
    meta = ArrayMetadataV3.from_json(v3_doc(codecs=[sharding]))
    assert meta.chunks == (5, 5) and meta.inner_chunks == (5, 1)
    with pytest.raises(MetadataError, match="divide"):
        ArrayMetadataV3.from_json(
            v3_doc(codecs=[{**sharding, "configuration": {"chunk_shape": [3, 5]}}])
        )


def test_v3_create_defaults_and_normalisation() -> None:
    meta = ArrayMetadataV3.create(shape=(4, 6), chunks=2, dtype=">i2", fill_value=None)
    assert meta.dtype == np.dtype("<i2") and meta.fill_value == 0
    assert meta.chunks == (2, 2)
    assert meta.codecs == ({"name": "bytes", "configuration": {"endian": "little"}},)
    assert meta.chunk_key_encoding == {"name": "default", "configuration": {"separator": "/"}}
    v2_keys = meta.replace(chunk_key_encoding={"name": "v2"})
    assert v2_keys.chunk_key((1, 2)) == "1.2"
    assert v2_keys.chunk_key_encoding == {"name": "v2", "configuration": {"separator": "."}}
    with pytest.raises(MetadataError, match="positive"):
        ArrayMetadataV3.create(shape=(4,), chunks=(0,), dtype="int8")


def test_shape_zero_allows_zero_chunk_on_read_only() -> None:
    meta = ArrayMetadataV3.from_json(
        v3_doc(shape=[0], chunk_grid={"name": "regular", "configuration": {"chunk_shape": [0]}})
    )
    assert meta.chunk_grid_shape == (0,)
    with pytest.raises(MetadataError):
        meta.replace(shape=(5,))


# groups -----------------------------------------------------------------------------
def test_group_documents() -> None:
    v2 = GroupMetadata(2, {"title": "t"}).to_documents()
    assert json.loads(v2[".zgroup"]) == {"zarr_format": 2}
    assert json.loads(v2[".zattrs"]) == {"title": "t"}
    v3 = json.loads(GroupMetadata(3, {"a": 1}).to_documents()["zarr.json"])
    assert v3 == {"zarr_format": 3, "node_type": "group", "attributes": {"a": 1}}
    with pytest.raises(MetadataError):
        GroupMetadata(4)
    with pytest.raises(UnsupportedExtensionError):
        GroupMetadata.from_json({"zarr_format": 3, "node_type": "group", "x": 1}, None, "g")


# json ----------------------------------------------------------------------------------
def test_json_dumps_is_strict_and_indented() -> None:
    assert json_dumps({"a": [1]}) == b'{\n  "a": [\n    1\n  ]\n}'
    assert json_dumps({"n": np.int64(3), "f": np.float32(0.5)}) == json_dumps({"n": 3, "f": 0.5})
    with pytest.raises(MetadataError, match="NaN"):
        json_dumps({"x": float("nan")}, ".zattrs")
    with pytest.raises(MetadataError, match=re.escape("'.zattrs'")):
        ArrayMetadataV2.create(
            shape=1, chunks=1, dtype="f8", attributes={"_FillValue": math.nan}
        ).to_documents()


def test_json_loads_names_the_key() -> None:
    with pytest.raises(MetadataError, match=re.escape("'a/zarr.json'")):
        json_loads(b"{not json", "a/zarr.json")
    with pytest.raises(MetadataError, match=re.escape("'a/.zarray'")):
        json_loads(b"\xff\xfe", "a/.zarray")
    assert math.isnan(json_loads(b'{"x": NaN}', "k")["x"])  # lenient on read


# load_node -----------------------------------------------------------------------------
def test_load_node_reads_every_kind_in_one_batch() -> None:
    store = DictStore()
    write_node(store, "", GroupMetadata(3))
    write_node(store, "a", ArrayMetadataV3.create(shape=3, chunks=2, dtype="int8"))
    write_node(store, "b", ArrayMetadataV2.create(shape=3, chunks=2, dtype="<i8"))
    write_node(store, "g2", GroupMetadata(2, {"x": 1}))
    assert isinstance(load_node(store, ""), GroupMetadata)
    assert isinstance(load_node(store, "a"), ArrayMetadataV3)
    assert isinstance(load_node(store, "/b/"), ArrayMetadataV2)
    assert load_node(store, "g2").attributes == {"x": 1}
    store.get_many_calls = 0
    load_node(store, "b")
    assert store.get_many_calls == 1


def test_load_node_prefers_v3_unless_told() -> None:
    store = DictStore()
    write_node(store, "n", ArrayMetadataV2.create(shape=3, chunks=2, dtype="<i8"))
    write_node(store, "n", GroupMetadata(3))
    assert isinstance(load_node(store, "n"), GroupMetadata)
    assert isinstance(load_node(store, "n", zarr_format=2), ArrayMetadataV2)


def test_load_node_not_found_errors_name_path_and_store() -> None:
    store = DictStore()
    write_node(store, "g", GroupMetadata(3))
    with pytest.raises(NodeNotFoundError, match=r"'missing'.*dict://test"):
        load_node(store, "missing")
    with pytest.raises(ArrayNotFoundError, match=r"'g'.*found a group"):
        load_node(store, "g", node_type="array")
    with pytest.raises(GroupNotFoundError):
        load_node(store, "nothing", node_type="group")
    with pytest.raises(NodeNotFoundError):
        load_node(store, "g", zarr_format=2)
    store.set("attrs-only/.zattrs", b"{}")
    with pytest.raises(NodeNotFoundError):
        load_node(store, "attrs-only")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("bad/zarr.json", b'{"zarr_format": 3, '),
        ("bad/.zarray", b"[1, 2]"),
        ("bad/zarr.json", b'{"zarr_format": 3, "node_type": "banana"}'),
    ],
)
def test_load_node_corrupt_documents(key: str, value: bytes) -> None:
    store = DictStore({key: value})
    with pytest.raises(MetadataError, match="bad"):
        load_node(store, "bad")


def test_load_node_corrupt_zattrs_named() -> None:
    store = DictStore({"a/.zgroup": b'{"zarr_format": 2}', "a/.zattrs": b"{oops"})
    with pytest.raises(MetadataError, match=r"'a/.zattrs'"):
        load_node(store, "a")


# zarr-python 3 as the oracle ----------------------------------------------------------------
STRUCTURED = np.dtype([("x", "<f4"), ("y", ">i2")])
ZARR_V2_CASES = [
    ("<i4", 7),
    (">f8", float("nan")),
    ("<f4", float("-inf")),
    ("|b1", True),
    ("|u1", None),
    ("<c16", 1 - 2j),
    ("|S4", b"ab"),
    ("<U5", "hi"),
    ("<M8[ns]", np.datetime64(5, "ns")),
    ("<m8[s]", np.timedelta64(-3, "s")),
    (STRUCTURED, np.array((1.5, -2), dtype=STRUCTURED)[()]),
]
ZARR_V3_CASES = [
    ("bool", True),
    ("int8", -3),
    ("uint64", 2**64 - 1),
    ("float16", 1.5),
    ("float32", float("nan")),
    ("float64", float("inf")),
    ("complex64", complex(float("nan"), 2)),
    ("complex128", 1 + 1j),
]


@pytest.mark.parametrize(("dtype", "fill"), ZARR_V2_CASES)
def test_reads_zarr_python_v2_documents(tmp_path: Path, dtype: Any, fill: Any) -> None:
    z = zarr.create_array(
        store=str(tmp_path), shape=(7, 5), chunks=(3, 2), dtype=dtype, fill_value=fill,
        zarr_format=2, attributes={"a": 1},
    )  # fmt: skip
    store = DictStore.from_dir(tmp_path)
    meta = load_node(store, "")
    assert isinstance(meta, ArrayMetadataV2)
    assert (meta.shape, meta.chunks, meta.dtype) == (z.shape, z.chunks, z.dtype)
    assert same_scalar(meta.fill_value, z.fill_value)
    assert meta.attributes == {"a": 1}
    # and our documents are theirs, value for value
    assert meta.to_json()[".zarray"] == json.loads((tmp_path / ".zarray").read_text())


@pytest.mark.parametrize(("dtype", "fill"), ZARR_V3_CASES)
def test_reads_zarr_python_v3_documents(tmp_path: Path, dtype: str, fill: Any) -> None:
    z = zarr.create_array(
        store=str(tmp_path), shape=(7, 5), chunks=(3, 2), dtype=dtype, fill_value=fill,
        zarr_format=3, dimension_names=["y", "x"], attributes={"a": 1},
    )  # fmt: skip
    meta = load_node(DictStore.from_dir(tmp_path), "")
    assert isinstance(meta, ArrayMetadataV3)
    assert (meta.shape, meta.chunks, meta.dtype) == (z.shape, z.chunks, z.dtype)
    assert same_scalar(meta.fill_value, z.fill_value)
    assert meta.dimension_names == ("y", "x") and meta.attributes == {"a": 1}
    theirs = json.loads((tmp_path / "zarr.json").read_text())
    theirs.pop("storage_transformers")
    assert meta.to_json()["zarr.json"] == theirs


def test_reads_zarr_python_sharded_array(tmp_path: Path) -> None:
    zarr.create_array(
        store=str(tmp_path), shape=(16, 8), chunks=(2, 4), shards=(8, 8), dtype="uint16",
        zarr_format=3,
    )  # fmt: skip
    meta = load_node(DictStore.from_dir(tmp_path), "")
    assert meta.chunks == (8, 8) and meta.inner_chunks == (2, 4)  # type: ignore[union-attr]


@pytest.mark.parametrize(("dtype", "fill"), ZARR_V2_CASES)
def test_zarr_python_reads_our_v2_documents(tmp_path: Path, dtype: Any, fill: Any) -> None:
    meta = ArrayMetadataV2.create(
        shape=(7, 5), chunks=(3, 2), dtype=dtype, fill_value=fill, order="F",
        dimension_separator="/", attributes={"a": 1},
    )  # fmt: skip
    store = DictStore()
    write_node(store, "arr", meta)
    store.to_dir(tmp_path)
    z = zarr.open_array(str(tmp_path / "arr"), mode="r")
    assert (z.shape, z.chunks, z.dtype, z.order) == (meta.shape, meta.chunks, meta.dtype, "F")
    assert same_scalar(z.fill_value, meta.fill_value)
    assert dict(z.attrs) == {"a": 1}
    if fill is not None:
        assert same_scalar(z[0, 0], meta.fill_value)


@pytest.mark.parametrize(("dtype", "fill"), ZARR_V3_CASES)
def test_zarr_python_reads_our_v3_documents(tmp_path: Path, dtype: str, fill: Any) -> None:
    meta = ArrayMetadataV3.create(
        shape=(7, 5), chunks=(3, 2), dtype=dtype, fill_value=fill,
        chunk_key_encoding={"name": "v2", "configuration": {"separator": "."}},
        dimension_names=["y", None], attributes={"a": 1},
    )  # fmt: skip
    store = DictStore()
    write_node(store, "arr", meta)
    store.to_dir(tmp_path)
    z = zarr.open_array(str(tmp_path / "arr"), mode="r")
    assert (z.shape, z.chunks, z.dtype) == (meta.shape, meta.chunks, meta.dtype)
    assert same_scalar(z.fill_value, meta.fill_value)
    assert z.metadata.dimension_names == ("y", None)
    assert same_scalar(z[6, 4], meta.fill_value)


def test_zarr_python_reads_our_sharded_v3_documents(tmp_path: Path) -> None:
    bytes_codec = {"name": "bytes", "configuration": {"endian": "little"}}
    sharding = {
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": [2, 4],
            "codecs": [bytes_codec],
            "index_codecs": [bytes_codec, {"name": "crc32c"}],
            "index_location": "end",
        },
    }
    meta = ArrayMetadataV3.create(shape=(16, 8), chunks=(8, 8), dtype="int32", codecs=[sharding])
    store = DictStore()
    write_node(store, "", meta)
    store.to_dir(tmp_path)
    z = zarr.open_array(str(tmp_path), mode="r")
    assert (z.chunks, z.shards) == ((2, 4), (8, 8))


def test_zarr_python_reads_hex_nan_payload(tmp_path: Path) -> None:
    nan = np.array(0x7FC00001, dtype="<u4").view("<f4")[()]
    meta = ArrayMetadataV3.create(shape=(2,), chunks=(2,), dtype="float32", fill_value=nan)
    DictStore(meta.to_documents()).to_dir(tmp_path)
    assert math.isnan(zarr.open_array(str(tmp_path), mode="r").fill_value)


# tensorstore as a second oracle -------------------------------------------------------------
def test_tensorstore_reads_our_documents(tmp_path: Path) -> None:
    ts = pytest.importorskip("tensorstore")
    store = DictStore()
    v3 = ArrayMetadataV3.create(
        shape=(6, 4), chunks=(4, 2), dtype="float32", fill_value=float("nan"),
        dimension_names=["y", "x"], attributes={"a": 1},
    )  # fmt: skip
    v2 = ArrayMetadataV2.create(shape=(6, 4), chunks=(4, 2), dtype=">i2", fill_value=-1)
    write_node(store, "v3", v3)
    write_node(store, "v2", v2)
    store.to_dir(tmp_path)
    a3 = ts.open({"driver": "zarr3", "kvstore": f"file://{tmp_path}/v3/"}).result()
    assert a3.shape == (6, 4) and a3.dtype.numpy_dtype == np.dtype("float32")
    assert a3.domain.labels == ("y", "x")
    assert np.isnan(a3.read().result()).all()
    a2 = ts.open({"driver": "zarr", "kvstore": f"file://{tmp_path}/v2/"}).result()
    assert a2.shape == (6, 4) and (a2.read().result() == -1).all()


def test_tensorstore_reads_our_sharded_and_0d_documents(tmp_path: Path) -> None:
    ts = pytest.importorskip("tensorstore")
    bytes_codec = {"name": "bytes", "configuration": {"endian": "little"}}
    sharding = {
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": [2, 4],
            "codecs": [bytes_codec],
            "index_codecs": [bytes_codec, {"name": "crc32c"}],
            "index_location": "end",
        },
    }
    store = DictStore()
    write_node(
        store,
        "sharded",
        ArrayMetadataV3.create(
            shape=(16, 8), chunks=(8, 8), dtype="int32", codecs=[sharding], fill_value=5
        ),
    )
    write_node(store, "scalar", ArrayMetadataV3.create(shape=(), chunks=(), dtype="float64"))
    store.to_dir(tmp_path)
    sharded = ts.open({"driver": "zarr3", "kvstore": f"file://{tmp_path}/sharded/"}).result()
    assert (sharded.read().result() == 5).all()
    scalar = ts.open({"driver": "zarr3", "kvstore": f"file://{tmp_path}/scalar/"}).result()
    assert scalar.shape == () and scalar.read().result() == 0


def test_metadata_pickles() -> None:
    nan = np.array(0x7FC00001, dtype="<u4").view("<f4")[()]
    v3 = ArrayMetadataV3.create(shape=(4, 4), chunks=2, dtype="float32", fill_value=nan)
    v2 = ArrayMetadataV2.create(shape=3, chunks=1, dtype=">M8[ns]", fill_value=None)
    group = GroupMetadata(3, {"a": 1}, consolidated={"x": v3})
    for meta in (v3, v2, group):
        again = pickle.loads(pickle.dumps(meta))
        assert again == meta and again.to_documents() == meta.to_documents()
    assert pickle.loads(pickle.dumps(v3)).chunk_key((1, 1)) == "c/1/1"
    assert pickle.loads(pickle.dumps(DEFAULT_FILL_VALUE)) is DEFAULT_FILL_VALUE


# consolidated metadata ------------------------------------------------------------------------
def build_zarr_python_hierarchy(root: Path, zarr_format: int) -> None:
    g = zarr.open_group(str(root), mode="w", zarr_format=zarr_format, attributes={"r": 1})
    g.create_array("a", shape=(4,), chunks=(2,), dtype="int16", fill_value=3)
    sub = g.create_group("sub", attributes={"s": 2})
    sub.create_array("b", shape=(3, 3), chunks=(2, 2), dtype="float32", fill_value=np.nan)


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_reads_zarr_python_consolidated(tmp_path: Path, zarr_format: int) -> None:
    build_zarr_python_hierarchy(tmp_path, zarr_format)
    zarr.consolidate_metadata(str(tmp_path))
    nodes = read_consolidated(DictStore.from_dir(tmp_path), "")
    assert nodes is not None
    assert sorted(nodes) == ["", "a", "sub", "sub/b"]
    root = nodes[""]
    assert isinstance(root, GroupMetadata) and root.attributes == {"r": 1}
    assert root.consolidated is not None and sorted(root.consolidated) == ["a", "sub", "sub/b"]
    assert nodes["a"].fill_value == 3  # type: ignore[union-attr]
    assert nodes["sub"].attributes == {"s": 2}
    assert nodes["sub/b"].chunks == (2, 2)  # type: ignore[union-attr]
    assert all(meta.zarr_format == zarr_format for meta in nodes.values())


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_zarr_python_reads_our_consolidated(tmp_path: Path, zarr_format: int) -> None:
    build_zarr_python_hierarchy(tmp_path, zarr_format)
    store = DictStore.from_dir(tmp_path)
    written = write_consolidated(store, "", zarr_format)
    assert sorted(written) == ["a", "sub", "sub/b"]
    store.to_dir(tmp_path)
    # hide the per-node documents: zarr-python must get everything from the consolidation
    for doc in ("a", "sub", "sub/b"):
        for name in ("zarr.json", ".zarray", ".zgroup", ".zattrs"):
            (tmp_path / doc / name).unlink(missing_ok=True)
    g = zarr.open_consolidated(str(tmp_path), zarr_format=zarr_format)
    assert dict(g.attrs) == {"r": 1}
    members = dict(g.members(max_depth=None))
    assert sorted(members) == ["a", "sub", "sub/b"]
    assert members["sub/b"].shape == (3, 3)
    assert dict(members["sub"].attrs) == {"s": 2}
    again = read_consolidated(store, "")
    assert again is not None and sorted(again) == ["", "a", "sub", "sub/b"]


def test_consolidated_is_none_without_it() -> None:
    store = DictStore()
    write_node(store, "", GroupMetadata(2))
    assert read_consolidated(store) is None
    write_node(store, "", GroupMetadata(3))
    assert read_consolidated(store) is None


def test_consolidation_skips_array_chunks_and_nested_paths() -> None:
    store = DictStore()
    write_node(store, "root", GroupMetadata(3))
    write_node(store, "root/g", GroupMetadata(3, {"x": 1}))
    write_node(store, "root/g/arr", ArrayMetadataV3.create(shape=4, chunks=2, dtype="int8"))
    store.set("root/g/arr/c/0", b"chunk")
    store.set("root/unrelated.txt", b"hello")
    nodes = write_consolidated(store, "root")
    assert sorted(nodes) == ["g", "g/arr"]
    doc = json.loads(store.data["root/zarr.json"])
    assert doc["consolidated_metadata"]["kind"] == "inline"
    assert sorted(doc["consolidated_metadata"]["metadata"]) == ["g", "g/arr"]
    loaded = read_consolidated(store, "root")
    assert loaded is not None and loaded["g"].attributes == {"x": 1}
    # a plain load of the group ignores (and so will not rewrite) the consolidation
    root = load_node(store, "root")
    assert isinstance(root, GroupMetadata) and root.consolidated is None


def test_write_consolidated_needs_a_group() -> None:
    store = DictStore()
    write_node(store, "", ArrayMetadataV3.create(shape=1, chunks=1, dtype="int8"))
    with pytest.raises(GroupNotFoundError):
        write_consolidated(store, "")
