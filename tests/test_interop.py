"""Interoperability with zarr-python 3 and tensorstore, both directions, on real files.

Every case in ``CASES`` describes one array (format, dtype, codecs, fill value,
order, chunk keys, shape...) once, in Zarr's own JSON terms; small adapters
turn it into a zarrflow ``create`` call, a zarr-python ``create_array`` call
and a tensorstore spec. Each case then runs in up to four directions:

- written by zarr-python, read by zarrflow (data and metadata);
- written by zarrflow, read by zarr-python;
- written by tensorstore, read by zarrflow;
- written by zarrflow, read by tensorstore.

The table is pairwise-ish: every dtype, codec, fill value kind, order,
separator and edge shape appears at least once per format, not in every
combination. A "partial" case writes only the first chunk and a sliver of the
next, so the rest of the array is missing chunks that must read as the fill
value.
"""

from __future__ import annotations

import base64
import ctypes
import json
import math
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest

import zarrflow as zf

zarr = pytest.importorskip("zarr")
ts = pytest.importorskip("tensorstore")

pytestmark = [
    pytest.mark.filterwarnings("ignore::zarr.errors.UnstableSpecificationWarning"),
    pytest.mark.filterwarnings("ignore::zarr.errors.ZarrUserWarning"),
    pytest.mark.filterwarnings("ignore::zarr.errors.ZarrFutureWarning"),
]

# -- the codecs, in numcodecs' JSON terms ---------------------------------------------------

COMPRESSORS: dict[str, dict[str, Any]] = {
    "zstd": {"id": "zstd", "level": 3, "checksum": False},
    "zstd-checksum": {"id": "zstd", "level": 1, "checksum": True},
    "blosc-lz4-shuffle": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
    "blosc-zstd-bitshuffle": {
        "id": "blosc",
        "cname": "zstd",
        "clevel": 3,
        "shuffle": 2,
        "blocksize": 0,
    },
    "blosc-blosclz-noshuffle": {
        "id": "blosc",
        "cname": "blosclz",
        "clevel": 9,
        "shuffle": 0,
        "blocksize": 0,
    },
    "gzip": {"id": "gzip", "level": 5},
    "zlib": {"id": "zlib", "level": 4},
    "lz4": {"id": "lz4", "acceleration": 1},
    "bz2": {"id": "bz2", "level": 7},
    "lzma": {"id": "lzma", "format": 1, "check": -1, "preset": None, "filters": None},
}
#: compressors tensorstore's zarr (v2) driver knows
TS_V2_COMPRESSORS = {"zstd", "blosc", "gzip", "zlib", "bz2"}
#: codecs tensorstore's zarr3 driver knows (no numcodecs.* extensions)
TS_V3_COMPRESSORS = {"zstd", "blosc", "gzip"}
_SHUFFLE_NAMES = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle"}


@dataclass(frozen=True)
class Case:
    """One array to write with one library and read with another."""

    id: str
    fmt: int
    dtype: str
    shape: tuple[int, ...] = (13, 9)
    chunks: tuple[int, ...] = (5, 4)
    comp: str | None = "zstd"
    fill: Any = 0
    order: str = "C"  # v2: memory order; v3: "F" adds a transpose codec
    sep: str | None = None  # None: the format's default ("." for v2, "/" for v3)
    key_encoding: str = "default"  # v3 chunk key encoding name: "default" or "v2"
    filters: tuple[str, ...] = ()  # v2 numcodecs filters by id ("delta")
    endian: str = "little"  # v3 bytes codec
    crc32c: bool = False  # v3: a crc32c checksum codec last
    partial: bool = False  # write only part of the array
    dims: tuple[str | None, ...] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    ts: bool = True  # tensorstore can handle it

    @property
    def separator(self) -> str:
        return self.sep or ("." if self.fmt == 2 or self.key_encoding == "v2" else "/")

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def fill_read(self) -> Any:
        """What a missing chunk reads as (v2 null reads as zero everywhere)."""
        return np.zeros((), self.np_dtype)[()] if self.fill is None else self.fill

    def __str__(self) -> str:
        return self.id


def _case(fmt: int, id: str, dtype: str, **kw: Any) -> Case:
    return Case(id=f"v{fmt}-{id}", fmt=fmt, dtype=dtype, **kw)


V2_CASES = [
    _case(2, "bool-zstd", "bool", fill=False),
    _case(2, "i1-blosc-lz4", "int8", comp="blosc-lz4-shuffle", fill=-3, partial=True),
    _case(2, "i2-blosc-zstd-F-slash", "int16", comp="blosc-zstd-bitshuffle", order="F", sep="/"),
    _case(2, "i4-blosclz-partial", "int32", comp="blosc-blosclz-noshuffle", partial=True),
    _case(2, "i8-gzip-null-fill", "int64", comp="gzip", fill=None, partial=True),
    _case(2, "u1-zlib-slash", "uint8", comp="zlib", fill=255, sep="/"),
    _case(2, "u2-lz4-F-partial", "uint16", comp="lz4", order="F", partial=True, ts=False),
    _case(2, "u4-bz2", "uint32", comp="bz2", fill=7, attrs={"units": "m", "n": [1, 2]}),
    _case(2, "u8-lzma-max-fill", "uint64", comp="lzma", fill=2**64 - 1, partial=True, ts=False),
    _case(2, "f2-raw-nan", "float16", comp=None, fill=float("nan"), partial=True),
    _case(2, "f4-zstd-inf", "float32", fill=float("inf")),
    _case(2, "i2-delta-zstd-partial", "int16", filters=("delta",), partial=True, ts=False),
    _case(
        2,
        "f8-blosc-ninf-F-slash",
        "float64",
        comp="blosc-lz4-shuffle",
        fill=-math.inf,
        order="F",
        sep="/",
        partial=True,
    ),
    _case(2, "c8-zstd-fill", "complex64", fill=complex(1, -2), partial=True),
    _case(2, "c16-gzip-nan", "complex128", comp="gzip", fill=complex(math.nan, 0), partial=True),
    _case(2, "be-i4-delta-zlib", ">i4", comp="zlib", filters=("delta",), fill=3, ts=False),
    _case(
        2,
        "be-f8-blosc-F-nan",
        ">f8",
        comp="blosc-zstd-bitshuffle",
        order="F",
        fill=math.nan,
        partial=True,
    ),
    _case(2, "be-u2-raw", ">u2", comp=None, sep="/", fill=1),
    _case(2, "S8-zstd-fill", "S8", fill=b"xy", partial=True, ts=False),
    _case(2, "S6-zlib-null", "S6", comp="zlib", fill=None, partial=True),
    _case(2, "U5-raw", "<U5", comp=None, fill="ab", partial=True, ts=False),
    _case(2, "M8ns-zstd-nat", "<M8[ns]", fill=np.datetime64("NaT", "ns"), partial=True, ts=False),
    _case(2, "m8s-lz4", "<m8[s]", comp="lz4", fill=np.timedelta64(-1, "s"), ts=False),
    _case(
        2,
        "3d-ragged-zlib-F",
        "int32",
        shape=(7, 6, 5),
        chunks=(3, 4, 2),
        comp="zlib",
        order="F",
        partial=True,
    ),
    _case(2, "zstd-checksum-slash", "int32", comp="zstd-checksum", sep="/", partial=True, ts=False),
    _case(
        2,
        "1d-ragged",
        "float32",
        shape=(101,),
        chunks=(10,),
        comp="blosc-lz4-shuffle",
        fill=-1.5,
        partial=True,
    ),
    _case(2, "0d", "float64", shape=(), chunks=(), fill=2.5),
    _case(2, "zero-length", "int16", shape=(0, 5), chunks=(3, 3)),
]

V3_CASES = [
    _case(3, "bool-zstd", "bool", fill=True, partial=True),
    _case(3, "i1-blosc-lz4-dot", "int8", comp="blosc-lz4-shuffle", sep="."),
    _case(
        3,
        "i2-blosc-zstd-be",
        "int16",
        comp="blosc-zstd-bitshuffle",
        endian="big",
        fill=-5,
        partial=True,
    ),
    _case(3, "i4-gzip-crc32c", "int32", comp="gzip", crc32c=True, partial=True),
    _case(3, "i8-zlib-transpose", "int64", comp="zlib", order="F", ts=False),
    _case(3, "u1-raw", "uint8", comp=None, fill=9, partial=True),
    _case(3, "u2-lz4", "uint16", comp="lz4", ts=False, partial=True),
    _case(3, "u4-bz2-v2-keys", "uint32", comp="bz2", key_encoding="v2", ts=False),
    _case(3, "u8-lzma-max", "uint64", comp="lzma", fill=2**64 - 1, ts=False, partial=True),
    _case(3, "f2-zstd-nan", "float16", fill=math.nan, partial=True),
    _case(
        3,
        "f4-blosclz-inf-transpose-3d",
        "float32",
        shape=(7, 6, 5),
        chunks=(3, 4, 2),
        comp="blosc-blosclz-noshuffle",
        fill=math.inf,
        order="F",
        partial=True,
    ),
    _case(
        3,
        "f8-gzip-ninf-be-crc32c",
        "float64",
        comp="gzip",
        fill=-math.inf,
        endian="big",
        crc32c=True,
        partial=True,
    ),
    _case(3, "c8-zstd-fill", "complex64", fill=complex(1, 2), partial=True),
    _case(
        3,
        "c16-raw-nan-be",
        "complex128",
        comp=None,
        fill=complex(0, math.nan),
        endian="big",
        partial=True,
    ),
    _case(3, "v2-keys-slash", "int32", key_encoding="v2", sep="/", partial=True),
    _case(3, "v2-keys-dot", "float32", key_encoding="v2", sep=".", comp="blosc-lz4-shuffle"),
    _case(
        3,
        "names-attrs",
        "int16",
        dims=("y", "x"),
        attrs={"title": "t", "scale": [1.5, 2]},
        comp="zstd-checksum",
    ),
    _case(
        3,
        "names-with-null",
        "uint8",
        shape=(4, 5, 6),
        chunks=(2, 5, 4),
        dims=("t", None, "z"),
        sep=".",
        partial=True,
    ),
    _case(3, "1d-ragged", "int64", shape=(101,), chunks=(10,), fill=-1, partial=True),
    _case(3, "0d", "complex64", shape=(), chunks=(), fill=complex(0, 1)),
    _case(3, "zero-length", "float64", shape=(4, 0), chunks=(3, 3), fill=1.0),
]

CASES = V2_CASES + V3_CASES
TS_CASES = [c for c in CASES if c.ts]

# -- known problems, as strict xfails (each flips to a failure once fixed) ------------------


def params(cases: list[Case], *known: tuple[Any, str]) -> list[Any]:
    """``cases`` as pytest params, those a known problem hits marked strict xfail."""
    out = []
    for case in cases:
        reasons = [reason for applies, reason in known if applies(case)]
        marks = [pytest.mark.xfail(strict=True, reason=r) for r in reasons[:1]]
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


# -- sample data ----------------------------------------------------------------------------


def sample(case: Case, seed: int = 0) -> np.ndarray:
    """Random data of the case's dtype and shape, with NaN/inf sprinkled into floats."""
    dt, shape = case.np_dtype, case.shape
    rng = np.random.default_rng(seed)
    n = math.prod(shape)
    k = dt.kind
    if k == "b":
        v = rng.random(n) < 0.5
    elif k in "iu":
        native = dt.newbyteorder("=")
        info = np.iinfo(native)
        v = rng.integers(info.min, info.max, n, dtype=native, endpoint=True)
    elif k == "f":
        v = rng.standard_normal(n) * 1000
        v[3::11] = math.nan
        v[5::17] = -math.inf
    elif k == "c":
        v = rng.standard_normal(n) + 1j * rng.standard_normal(n)
        v[4::13] = complex(math.nan, 1)
    elif k == "S":
        v = np.array([b"abcdefgh"[: i % 9] + b"%d" % i for i in range(n)], dtype=object)
        v = np.array([x[: dt.itemsize] for x in v], dtype=dt)
    elif k == "U":
        v = np.array([f"é{i}"[: dt.itemsize // 4] for i in range(n)], dtype=dt)
    elif k in "mM":
        v = rng.integers(-(2**62), 2**62, n).astype("<i8").view(dt)
        v[2::9] = dt.type("NaT")
    else:  # pragma: no cover
        raise AssertionError(dt)
    return np.asarray(v).astype(dt).reshape(shape)


def written_region(case: Case) -> tuple[slice, ...]:
    """The part of the array a case writes: everything, or the first chunk and a sliver."""
    if not case.partial:
        return tuple(slice(None) for _ in case.shape)
    return tuple(slice(0, min(s, c + 1)) for s, c in zip(case.shape, case.chunks, strict=True))


def expected(case: Case, data: np.ndarray) -> np.ndarray:
    out = np.full(case.shape, case.fill_read, dtype=case.np_dtype)
    region = written_region(case)
    out[region] = data[region]
    return out


def assert_same(actual: Any, want: np.ndarray) -> None:
    actual = np.asarray(actual)
    assert actual.shape == want.shape
    if want.dtype.kind in "SUM":
        assert actual.dtype.kind == want.dtype.kind
    np.testing.assert_array_equal(actual, want, strict=False)


def assert_same_scalar(actual: Any, want: Any, dtype: np.dtype) -> None:
    np.testing.assert_array_equal(np.asarray(actual, dtype=dtype), np.asarray(want, dtype=dtype))


# -- adapters: one case, three libraries ----------------------------------------------------


def v2_compressor(case: Case) -> dict[str, Any] | None:
    return dict(COMPRESSORS[case.comp]) if case.comp else None


def v2_filters(case: Case) -> list[dict[str, Any]] | None:
    out = []
    for f in case.filters:
        assert f == "delta"
        out.append({"id": "delta", "dtype": case.np_dtype.str, "astype": case.np_dtype.str})
    return out or None


def v3_compressor(case: Case) -> dict[str, Any] | None:
    if case.comp is None:
        return None
    cfg = dict(COMPRESSORS[case.comp])
    cid = cfg.pop("id")
    if cid == "zstd":
        return {"name": "zstd", "configuration": cfg}
    if cid == "gzip":
        return {"name": "gzip", "configuration": cfg}
    if cid == "blosc":
        cfg["shuffle"] = _SHUFFLE_NAMES[cfg["shuffle"]]
        cfg["typesize"] = case.np_dtype.itemsize
        return {"name": "blosc", "configuration": cfg}
    return {"name": f"numcodecs.{cid}", "configuration": cfg}


def v3_codecs(case: Case) -> list[dict[str, Any]]:
    """The v3 ``codecs`` list: [transpose], bytes, [compressor], [crc32c]."""
    codecs: list[dict[str, Any]] = []
    ndim = len(case.shape)
    if case.order == "F" and ndim > 1:
        codecs.append({"name": "transpose", "configuration": {"order": list(range(ndim))[::-1]}})
    if case.np_dtype.itemsize > 1:
        codecs.append({"name": "bytes", "configuration": {"endian": case.endian}})
    else:
        codecs.append({"name": "bytes"})
    comp = v3_compressor(case)
    if comp is not None:
        codecs.append(comp)
    if case.crc32c:
        codecs.append({"name": "crc32c"})
    return codecs


def v3_key_encoding(case: Case) -> dict[str, Any]:
    return {"name": case.key_encoding, "configuration": {"separator": case.separator}}


def fill_json(case: Case) -> Any:
    """The case's fill value as Zarr JSON (tensorstore takes the JSON form)."""
    fv, dt = case.fill, case.np_dtype

    def num(x: float) -> Any:
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        return x

    if fv is None:
        return None
    if dt.kind == "c":
        return [num(complex(fv).real), num(complex(fv).imag)]
    if dt.kind == "f":
        return num(float(fv))
    if dt.kind == "S":  # tensorstore wants all itemsize bytes
        return base64.b64encode(fv.ljust(dt.itemsize, b"\0")).decode()
    return fv


def zf_create(case: Case, path: Path) -> zf.Array:
    kw: dict[str, Any] = {
        "shape": case.shape,
        "chunks": case.chunks,
        "dtype": case.dtype,
        "fill_value": case.fill,
        "zarr_format": case.fmt,
        "attributes": case.attrs,
    }
    if case.fmt == 2:
        kw.update(
            compressor=v2_compressor(case),
            filters=v2_filters(case),
            order=case.order,
            dimension_separator=case.separator,
        )
    else:
        if case.endian == "little" and not case.crc32c and case.order == "C":
            kw["compressor"] = v2_compressor(case)  # zarrflow builds the v3 list itself
        else:
            kw["codecs"] = v3_codecs(case)
        if case.key_encoding != "default" or case.sep is not None:
            kw["chunk_key_encoding"] = {"name": case.key_encoding, "separator": case.separator}
        kw["dimension_names"] = case.dims
    return zf.create(str(path), **kw)


def zarr_create(case: Case, path: Path):
    kw: dict[str, Any] = {
        "store": str(path),
        "shape": case.shape,
        "chunks": case.chunks,
        "dtype": case.dtype,
        "fill_value": case.fill,
        "zarr_format": case.fmt,
        "attributes": case.attrs,
    }
    if case.fmt == 2:
        comp = v2_compressor(case)
        kw.update(
            compressors=numcodecs.get_codec(comp) if comp else None,
            filters=[numcodecs.get_codec(f) for f in v2_filters(case) or []] or None,
            order=case.order,
            chunk_key_encoding={"name": "v2", "separator": case.separator},
        )
    else:
        codecs = v3_codecs(case)
        i = next(i for i, c in enumerate(codecs) if c["name"] == "bytes")
        kw.update(
            filters=codecs[:i] or None,
            serializer=codecs[i],
            compressors=codecs[i + 1 :] or None,
            chunk_key_encoding=v3_key_encoding(case),
            dimension_names=case.dims,
        )
    return zarr.create_array(**kw)


def ts_v2_compressor(case: Case) -> dict[str, Any] | None:
    """tensorstore's v2 zstd takes only ``level`` (it refuses a ``checksum`` member)."""
    comp = v2_compressor(case)
    if comp is not None and comp["id"] == "zstd":
        assert not comp.pop("checksum")
    return comp


def ts_spec(case: Case, path: Path, metadata: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "driver": "zarr" if case.fmt == 2 else "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
    }
    if not metadata:
        return spec
    if case.fmt == 2:
        spec["metadata"] = {
            "shape": list(case.shape),
            "chunks": list(case.chunks),
            "dtype": case.np_dtype.str,
            "compressor": ts_v2_compressor(case),
            "fill_value": fill_json(case),
            "order": case.order,
            "filters": None,
            "dimension_separator": case.separator,
        }
    else:
        meta = {
            "shape": list(case.shape),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(case.chunks)}},
            "chunk_key_encoding": v3_key_encoding(case),
            "data_type": case.np_dtype.name,
            "codecs": v3_codecs(case),
            "fill_value": fill_json(case),
        }
        if case.dims is not None:
            meta["dimension_names"] = list(case.dims)
        if case.attrs:
            meta["attributes"] = case.attrs
        spec["metadata"] = meta
    return spec


def to_ts(case: Case, value: np.ndarray) -> np.ndarray:
    """tensorstore sees ``|Sn`` as an extra axis of n chars."""
    if case.np_dtype.kind == "S":
        n = case.np_dtype.itemsize
        return np.ascontiguousarray(value).view("S1").reshape(*value.shape, n)
    return value


def from_ts(case: Case, value: np.ndarray) -> np.ndarray:
    """tensorstore hands ``char`` data back as a ``|S0`` array numpy cannot view or copy:
    the bytes are there (C order, stride 1), so read them from its buffer."""
    if case.np_dtype.kind == "S":
        info = value.__array_interface__
        assert info["strides"] in (None, tuple(np.empty(value.shape, "u1").strides))
        raw = ctypes.string_at(info["data"][0], value.size)
        return np.frombuffer(raw, dtype=case.np_dtype).reshape(value.shape[:-1])
    return value


# -- arrays: four directions ----------------------------------------------------------------


def check_zf_metadata(a: zf.Array, case: Case, *, attrs: bool = True) -> None:
    assert a.zarr_format == case.fmt
    assert a.shape == case.shape and a.chunks == case.chunks
    want_dtype = case.np_dtype if case.fmt == 2 else case.np_dtype.newbyteorder("<")
    assert a.dtype == want_dtype or (a.dtype.itemsize == 1 and a.dtype == case.np_dtype)
    if case.fill is None:
        assert a.fill_value is None
    else:
        assert_same_scalar(a.fill_value, case.fill, case.np_dtype)
    if case.fmt == 2:
        assert a.order == case.order
    else:
        assert a.dimension_names == case.dims
    if attrs:
        assert dict(a.attrs) == case.attrs


@pytest.mark.parametrize("case", params(CASES))
def test_zarr_python_writes_zarrflow_reads(tmp_path, case):
    path = tmp_path / "a.zarr"
    data = sample(case)
    z = zarr_create(case, path)
    z[written_region(case)] = data[written_region(case)]
    a = zf.open_array(str(path), mode="r")
    check_zf_metadata(a, case)
    assert a.nchunks_initialized == z.nchunks_initialized  # the same keys, parsed alike
    if case.partial and a.nchunks > 4:
        assert a.nchunks_initialized < a.nchunks
    assert_same(a[...], expected(case, data))
    if case.shape and min(case.shape) > 0:  # a strided read crosses chunk edges
        sel = tuple(slice(None, None, -2) for _ in case.shape)
        assert_same(a[sel], expected(case, data)[sel])


@pytest.mark.parametrize("case", params(CASES))
def test_zarrflow_writes_zarr_python_reads(tmp_path, case):
    path = tmp_path / "a.zarr"
    data = sample(case, seed=1)
    a = zf_create(case, path)
    a[written_region(case)] = data[written_region(case)]
    z = zarr.open_array(str(path), mode="r")
    assert z.metadata.zarr_format == case.fmt
    assert z.nchunks_initialized == a.nchunks_initialized
    assert z.shape == case.shape and z.chunks == case.chunks
    assert z.dtype == case.np_dtype or z.dtype == case.np_dtype.newbyteorder("<")
    if case.fill is None:
        assert z.fill_value is None or z.fill_value == 0
    else:
        assert_same_scalar(z.fill_value, case.fill, case.np_dtype)
    assert z.attrs.asdict() == case.attrs
    if case.fmt == 3:
        assert z.metadata.dimension_names == case.dims
    else:
        assert z.order == case.order
    assert_same(z[...], expected(case, data))
    # and zarr-python can keep writing what zarrflow started
    zw = zarr.open_array(str(path), mode="r+")
    if case.shape and min(case.shape) > 0:
        last = tuple(slice(s - 1, s) for s in case.shape)
        zw[last] = data[last]
        want = expected(case, data)
        want[last] = data[last]
        assert_same(zf.open_array(str(path), mode="r")[...], want)


@pytest.mark.parametrize("case", params(TS_CASES))
def test_tensorstore_writes_zarrflow_reads(tmp_path, case):
    path = tmp_path / "a.zarr"
    data = sample(case, seed=2)
    t = ts.open(ts_spec(case, path, metadata=True), create=True).result()
    region = written_region(case)
    t[region].write(to_ts(case, data[region])).result()
    a = zf.open_array(str(path), mode="r")
    check_zf_metadata(a, case, attrs=case.fmt == 3)  # tensorstore writes no v2 .zattrs
    assert_same(a[...], expected(case, data))


@pytest.mark.parametrize("case", params(TS_CASES))
def test_zarrflow_writes_tensorstore_reads(tmp_path, case):
    path = tmp_path / "a.zarr"
    data = sample(case, seed=3)
    a = zf_create(case, path)
    a[written_region(case)] = data[written_region(case)]
    t = ts.open(ts_spec(case, path, metadata=False), open=True, read=True).result()
    assert tuple(t.shape[: len(case.shape)]) == case.shape
    if case.fmt == 3:
        assert tuple(t.domain.labels) == tuple(d or "" for d in (case.dims or ("",) * len(t.shape)))
    assert_same(from_ts(case, t.read().result()), expected(case, data))


# -- what zarrflow must refuse clearly, not misread -----------------------------------------


def test_zarr_python_v3_unknown_data_type_is_refused_clearly(tmp_path):
    """A v3 data type zarrflow does not know is named, with the array, and not misread.

    (The extension types zarr-python 3 writes, strings, bytes, times and
    structured, are read: see tests/test_dtypes.py.)
    """
    path = tmp_path / "a.zarr"
    z = zarr.create_array(store=str(path), shape=(4,), chunks=(2,), dtype="int8", zarr_format=3)
    z[:] = 1
    doc = json.loads((path / "zarr.json").read_text())
    doc["data_type"] = "float8_e4m3"
    (path / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(zf.MetadataError, match="data_type 'float8_e4m3'"):
        zf.open_array(str(path), mode="r")


def test_chain_tensorstore_then_zarrflow_then_zarr_python(tmp_path):
    """A chain: tensorstore writes, zarrflow appends, zarr-python reads it all."""
    case = replace(V3_CASES[0], id="chain", dtype="int32", fill=0, partial=False)
    path = tmp_path / "a.zarr"
    t = ts.open(ts_spec(case, path, metadata=True), create=True).result()
    data = sample(case, seed=4)
    t[...].write(data).result()
    a = zf.open_array(str(path), mode="r+")
    extra = np.arange(2 * case.shape[1], dtype="int32").reshape(2, -1)
    a.append(extra)
    want = np.concatenate([data, extra])
    assert_same(zarr.open_array(str(path), mode="r")[...], want)
    doc = json.loads((path / "zarr.json").read_text())
    assert doc["shape"] == list(want.shape)
    t2 = ts.open(ts_spec(case, path, metadata=False), open=True).result()
    assert_same(t2.read().result(), want)


def test_fill_value_null_zero_chunks_agree_with_zarr_python(tmp_path):
    """v2 ``fill_value: null``: zarrflow may skip all-zero chunks; readers must see zeros."""
    path = tmp_path / "a.zarr"
    a = zf.create(
        str(path),
        shape=(8,),
        chunks=(2,),
        dtype="i4",
        fill_value=None,
        zarr_format=2,
        compressor="zlib",
    )
    a[:] = np.array([0, 0, 1, 2, 0, 0, 0, 5], dtype="i4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = zarr.open_array(str(path), mode="r")
        assert z.fill_value is None
        assert z[:].tolist() == [0, 0, 1, 2, 0, 0, 0, 5]
    t = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}}).result()
    assert t.read().result().tolist() == [0, 0, 1, 2, 0, 0, 0, 5]


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("dtype", ["int32", "float64", "uint8"])
def test_each_library_defaults_are_read_by_the_other(tmp_path, fmt, dtype):
    """No codec arguments at all: each library's own defaults (zstd, auto chunks...)."""
    data = sample(Case("d", fmt, dtype, shape=(40, 30)), seed=5)
    zarr_path, zf_path = tmp_path / "zarr.zarr", tmp_path / "zf.zarr"
    z = zarr.create_array(store=str(zarr_path), shape=data.shape, dtype=dtype, zarr_format=fmt)
    z[...] = data
    assert_same(zf.open_array(str(zarr_path), mode="r")[...], data)
    a = zf.create(str(zf_path), shape=data.shape, dtype=dtype, zarr_format=fmt)
    a[...] = data
    assert_same(zarr.open_array(str(zf_path), mode="r")[...], data)


@pytest.mark.parametrize("fmt", [2, 3])
def test_resize_crosses_over(tmp_path, fmt):
    """zarrflow shrinks (resetting the cut edge chunks), zarr-python grows: no stale data."""
    path = tmp_path / "a.zarr"
    data = np.arange(1, 10 * 7 + 1, dtype="i4").reshape(10, 7)
    a = zf.create(
        str(path), shape=data.shape, chunks=(4, 3), dtype="i4", fill_value=-1, zarr_format=fmt
    )
    a[...] = data
    a.resize((5, 4))
    z = zarr.open_array(str(path), mode="r+")
    assert z.shape == (5, 4)
    assert_same(z[...], data[:5, :4])
    z.resize((10, 7))
    want = np.full((10, 7), -1, dtype="i4")
    want[:5, :4] = data[:5, :4]
    assert_same(z[...], want)
    assert_same(zf.open_array(str(path), mode="r")[...], want)
    # and the other way: zarr-python appends, zarrflow reads and appends again
    z.append(np.full((2, 7), 7, dtype="i4"))
    b = zf.open_array(str(path), mode="r+")
    assert b.shape == (12, 7)
    b.append(np.full((12, 1), 8, dtype="i4"), axis=1)
    want = np.concatenate([want, np.full((2, 7), 7, "i4")])
    want = np.concatenate([want, np.full((12, 1), 8, "i4")], axis=1)
    assert_same(zarr.open_array(str(path), mode="r")[...], want)


@pytest.mark.parametrize("encoding", ["default", "v2"])
def test_tensorstore_key_encoding_without_configuration(tmp_path, encoding):
    """``{"name": ...}`` with no configuration means the encoding's own separator."""
    path = tmp_path / "a.zarr"
    meta = {
        "shape": [5, 4],
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 3]}},
        "chunk_key_encoding": {"name": encoding},
        "data_type": "int16",
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
    }
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
    t = ts.open({**spec, "metadata": meta}, create=True).result()
    data = np.arange(20, dtype="i2").reshape(5, 4)
    t[...].write(data).result()
    assert (path / ("c/2/1" if encoding == "default" else "2.1")).exists()
    a = zf.open_array(str(path), mode="r+")
    assert_same(a[...], data)
    a[4, 3] = -1
    data[4, 3] = -1
    assert_same(ts.open(spec).result().read().result(), data)
