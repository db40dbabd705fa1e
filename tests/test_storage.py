"""The Store contract, run against every backend, plus each backend's own promises.

The ``store`` fixture yields a fresh writable store of each kind: memory, local,
zip, and fsspec over ``memory://`` and over a local ``file://`` directory.
"""

from __future__ import annotations

import errno
import gc
import os
import pickle
import re
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask
import fsspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zarrflow.errors import KeyPathError, ReadOnlyError, StoreError
from zarrflow.storage import (
    FsspecStore,
    LocalStore,
    MemoryStore,
    ObstoreStore,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
    ZipStore,
    store_from_url,
    validate_key,
    validate_prefix,
)
from zarrflow.storage.fsspec_store import is_missing_error, is_transient_error
from zarrflow.storage.keys import is_valid_key

KINDS = ["memory", "local", "zip", "fsspec-memory", "fsspec-local"]

BAD_KEYS = [
    "",
    "/",
    "/etc/passwd",
    "..",
    "../escape",
    "a/../../escape",
    "a/..",
    ".",
    "./a",
    "a/./b",
    "a//b",
    "a/",
    "a\\b",
    "..\\escape",
    "a\x00b",
    "C:/escape",
    "c:escape",
]
ODD_BUT_VALID_KEYS = [
    ".zarray",
    "a/.zattrs",
    "a.b/c..d",
    "...",
    "x/.../y",
    "0.0.1",
    "ü/ç d",
    "a[1]",
]


def _make_store(kind: str, tmp_path: Path) -> Store:
    root = tmp_path / "root"
    if kind == "memory":
        return MemoryStore(f"test-{uuid.uuid4().hex}")
    if kind == "local":
        return LocalStore(root)
    if kind == "zip":
        return ZipStore(tmp_path / "store.zip", mode="w")
    if kind == "fsspec-memory":
        return FsspecStore(f"memory://test-{uuid.uuid4().hex}/root")
    return FsspecStore(root.as_uri())


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store = _make_store(request.param, tmp_path)
    yield store
    store.close()
    if request.param == "fsspec-memory" and store.fs.exists(store.root):
        store.fs.rm(store.root, recursive=True)


def read_only_twin(store: Store) -> Store:
    """A read-only store over the same data (a zip writer is finalised first)."""
    if isinstance(store, MemoryStore):
        return MemoryStore(store.name, read_only=True)
    if isinstance(store, LocalStore):
        return LocalStore(store.root, read_only=True)
    if isinstance(store, ZipStore):
        store.close()
        return ZipStore(store.path, mode="r")
    assert isinstance(store, FsspecStore | ObstoreStore)
    return type(store)(store.url, store.storage_options, read_only=True)


def everything_outside(store: Store, tmp_path: Path) -> object:
    """A snapshot of the whole backing medium, to show nothing was written anywhere."""
    if isinstance(store, FsspecStore) and "memory" in store.fs.protocol:
        return sorted(store.fs.find("/"))
    if isinstance(store, MemoryStore | ObstoreStore):
        return sorted(store.list_prefix(""))
    return sorted(
        (os.path.relpath(os.path.join(d, f), tmp_path), os.path.getsize(os.path.join(d, f)))
        for d, _, files in os.walk(tmp_path)
        for f in files
    )


# the contract -----------------------------------------------------------------------------


def test_set_get_round_trip(store: Store) -> None:
    store.set("a/zarr.json", b'{"zarr_format": 3}')
    store.set("b", b"\x00\x01\x02")
    assert store.get("a/zarr.json") == b'{"zarr_format": 3}'
    assert store.get("b") == b"\x00\x01\x02"
    assert type(store.get("b")) is bytes


def test_overwrite_replaces_value_or_is_refused_by_zip(store: Store) -> None:
    store.set("k", b"old")
    if isinstance(store, ZipStore):
        with pytest.raises(StoreError, match="cannot overwrite key 'k'"):
            store.set("k", b"new")
        assert store.get("k") == b"old"
    else:
        store.set("k", b"new")
        assert store.get("k") == b"new"


def test_missing_keys_read_as_none(store: Store) -> None:
    store.set("present", b"x")
    assert store.get("absent") is None
    assert store.get("present/below") is None
    assert store.get_range("absent", RangeByteRequest(0, 1)) is None
    assert store.get_range("absent", SuffixByteRequest(0)) is None
    assert store.exists("absent") is False
    assert store.exists("present") is True


def test_a_directory_is_not_a_key(store: Store) -> None:
    store.set("dir/key", b"x")
    assert store.get("dir") is None
    assert store.exists("dir") is False
    assert store.get_range("dir", OffsetByteRequest(0)) is None


VALUE = bytes(range(256)) * 4
RANGE_CASES = [
    (RangeByteRequest(0, 10), VALUE[0:10]),
    (RangeByteRequest(250, 260), VALUE[250:260]),
    (RangeByteRequest(1000, 2000), VALUE[1000:]),
    (RangeByteRequest(3000, 4000), b""),
    (RangeByteRequest(5, 5), b""),
    (OffsetByteRequest(0), VALUE),
    (OffsetByteRequest(1000), VALUE[1000:]),
    (OffsetByteRequest(5000), b""),
    (SuffixByteRequest(0), b""),
    (SuffixByteRequest(10), VALUE[-10:]),
    (SuffixByteRequest(5000), VALUE),
]


@pytest.mark.parametrize(("request_", "expected"), RANGE_CASES, ids=repr)
def test_get_range(store: Store, request_: object, expected: bytes) -> None:
    store.set("v", VALUE)
    assert store.get_range("v", request_) == expected


def test_get_ranges_in_order_with_missing(store: Store) -> None:
    store.set("v", VALUE)
    requests = [("v", r) for r, _ in RANGE_CASES] + [("missing", RangeByteRequest(0, 4))]
    expected = [e for _, e in RANGE_CASES] + [None]
    assert store.get_ranges(requests) == expected
    assert store.get_ranges([]) == []


@pytest.mark.parametrize(
    "bad",
    [RangeByteRequest(5, 2), RangeByteRequest(-1, 3), OffsetByteRequest(-1), SuffixByteRequest(-1)],
    ids=repr,
)
def test_malformed_byte_requests_are_refused(store: Store, bad: object) -> None:
    store.set("v", VALUE)
    with pytest.raises(StoreError, match="invalid byte request"):
        store.get_range("v", bad)


def test_get_many_keeps_order_and_marks_missing(store: Store) -> None:
    store.set_many({"a/0": b"zero", "a/1": b"one", "b": b"bee"})
    keys = ["b", "missing", "a/1", "a/0", "b", "a/missing"]
    assert store.get_many(keys) == [b"bee", None, b"one", b"zero", b"bee", None]
    assert store.get_many([]) == []


def test_set_many(store: Store) -> None:
    items = {f"c/{i}/{j}": f"{i},{j}".encode() for i in range(3) for j in range(4)}
    store.set_many(items)
    assert {k: store.get(k) for k in items} == items
    assert sorted(store.list_prefix("")) == sorted(items)


def test_list_prefix_and_list_dir(store: Store) -> None:
    keys = ["a/zarr.json", "a/c/0/0", "a/c/0/1", "a/c/1/0", "ab/x", "b"]
    store.set_many(dict.fromkeys(keys, b"x"))
    assert sorted(store.list_prefix("")) == sorted(keys)
    assert sorted(store.list_prefix("a/")) == ["a/c/0/0", "a/c/0/1", "a/c/1/0", "a/zarr.json"]
    assert sorted(store.list_prefix("a")) == sorted(k for k in keys if k != "b")
    assert sorted(store.list_prefix("a/c/0/")) == ["a/c/0/0", "a/c/0/1"]
    assert sorted(store.list_prefix("a/c/0/1")) == ["a/c/0/1"]
    assert list(store.list_prefix("nope/")) == []
    assert store.list_dir("") == ["a", "ab", "b"]
    assert store.list_dir("a") == ["c", "zarr.json"]
    assert store.list_dir("a/c/") == ["0", "1"]
    assert store.list_dir("nope") == []


def test_delete_and_delete_prefix(store: Store) -> None:
    store.set_many({"a/0": b"0", "a/1": b"1", "ab": b"2", "b": b"3"})
    store.delete("never-written")  # deleting a missing key is not an error
    if not store.supports_deletes:
        with pytest.raises(StoreError, match="cannot delete key 'a/0'"):
            store.delete("a/0")
        assert store.get("a/0") == b"0"
        return
    store.delete("b")
    assert store.get("b") is None
    assert store.exists("b") is False
    store.delete_prefix("a/")
    assert sorted(store.list_prefix("")) == ["ab"]
    store.delete_many(["ab", "missing"])
    assert list(store.list_prefix("")) == []


def test_nested_and_odd_but_valid_keys(store: Store) -> None:
    deep = "/".join("abcdefghij")
    keys = [deep, *ODD_BUT_VALID_KEYS]
    for i, key in enumerate(keys):
        store.set(key, str(i).encode())
    assert [store.get(k) for k in keys] == [str(i).encode() for i in range(len(keys))]
    assert sorted(store.list_prefix("")) == sorted(keys)


def test_empty_value_is_not_missing(store: Store) -> None:
    store.set("empty", b"")
    assert store.get("empty") == b""
    assert store.exists("empty")
    assert store.get_range("empty", SuffixByteRequest(3)) == b""
    assert store.get_range("empty", RangeByteRequest(0, 0)) == b""
    assert store.get_many(["empty"]) == [b""]


def test_large_value(store: Store) -> None:
    value = np.random.default_rng(0).integers(0, 256, 6 * 2**20, dtype=np.uint8).tobytes()
    store.set("big/chunk", value)
    assert store.get("big/chunk") == value
    assert (
        store.get_range("big/chunk", RangeByteRequest(3_000_000, 3_100_000))
        == value[3_000_000:3_100_000]
    )
    assert store.get_range("big/chunk", SuffixByteRequest(12345)) == value[-12345:]


def test_bytes_like_values_are_stored_as_bytes(store: Store) -> None:
    array = np.arange(6, dtype="<i4")
    buf = bytearray(b"mutable")
    store.set_many({"array": array, "memview": memoryview(b"view")})  # type: ignore[dict-item]
    store.set("bytearray", buf)  # type: ignore[arg-type]
    buf[:] = b"changed"
    assert store.get("array") == array.tobytes()
    assert store.get("memview") == b"view"
    assert store.get("bytearray") == b"mutable"


def test_concurrent_sets_and_gets(store: Store) -> None:
    items = {f"c/{i % 7}/{i}": os.urandom(1000 + i) for i in range(300)}
    first, second = list(items)[:150], list(items)[150:]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: store.set(k, items[k]), first))
        # write the second half while other threads read the first half
        writes = [pool.submit(store.set, k, items[k]) for k in second]
        reads = [pool.submit(store.get, k) for k in first * 2]
        assert [f.result() for f in reads] == [items[k] for k in first * 2]
        assert [f.result() for f in writes] == [None] * len(second)
        batches = [list(items)[i::8] for i in range(8)]
        many = list(pool.map(store.get_many, batches))
    assert many == [[items[k] for k in batch] for batch in batches]
    assert sorted(store.list_prefix("c/")) == sorted(items)


def test_read_only_refuses_writes_and_keeps_data(store: Store) -> None:
    store.set_many({"a/0": b"zero", "b": b"bee"})
    ro = read_only_twin(store)
    assert ro.read_only and not ro.supports_writes and not ro.supports_deletes
    attempts = [
        lambda: ro.set("a/0", b"new"),
        lambda: ro.set("new", b"new"),
        lambda: ro.set_many({"c": b"c"}),
        lambda: ro.delete("a/0"),
        lambda: ro.delete_many(["b"]),
        lambda: ro.delete_prefix("a/"),
    ]
    for attempt in attempts:
        with pytest.raises(ReadOnlyError, match="read-only") as info:
            attempt()
        assert ro.url in str(info.value)
    assert ro.get("a/0") == b"zero" and ro.get("b") == b"bee"
    assert sorted(ro.list_prefix("")) == ["a/0", "b"]
    ro.close()


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_bad_keys_are_refused_and_nothing_is_written(
    store: Store, key: str, tmp_path: Path
) -> None:
    store.set("inside", b"x")
    before = everything_outside(store, tmp_path)
    for operation in (
        lambda: store.set(key, b"escaped"),
        lambda: store.set_many({"fine": b"y", key: b"escaped"}),
        lambda: store.get(key),
        lambda: store.get_many(["inside", key]),
        lambda: store.get_range(key, RangeByteRequest(0, 1)),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(KeyPathError, match="invalid store key") as info:
            operation()
        assert repr(key) in str(info.value)
    assert everything_outside(store, tmp_path) == before
    assert sorted(store.list_prefix("")) == ["inside"]


@pytest.mark.parametrize("key", [b"a", 1, None], ids=repr)
def test_non_string_keys_are_refused(store: Store, key: object) -> None:
    with pytest.raises(KeyPathError, match="expected a relative"):
        store.get(key)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["/", "/a", "a//", "../", "a/../", "a\\"], ids=repr)
def test_bad_prefixes_are_refused(store: Store, prefix: str) -> None:
    with pytest.raises(KeyPathError, match="invalid store prefix"):
        store.list_prefix(prefix)


def test_pickle_round_trip(store: Store) -> None:
    store.set("a/0", b"zero")
    if isinstance(store, ZipStore):  # one writer per archive: refuse rather than fork it
        with pytest.raises(StoreError, match="cannot pickle"):
            pickle.dumps(store)
        store = read_only_twin(store)
    clone = pickle.loads(pickle.dumps(store))
    assert type(clone) is type(store)
    assert (clone.url, clone.read_only) == (store.url, store.read_only)
    assert clone.get("a/0") == b"zero"
    if store.supports_writes:
        clone.set("from-clone", b"seen")
        assert store.get("from-clone") == b"seen"
    clone.close()


def test_capabilities_and_url(store: Store) -> None:
    assert store.supports_writes and store.supports_listing and store.supports_partial_reads
    assert store.supports_deletes is not isinstance(store, ZipStore)
    assert store.is_remote is False
    assert store.url.split("://")[0] in {"memory", "file", "zip"}
    assert store.url in repr(store)


def test_generation_capability_and_round_trip(store: Store) -> None:
    """Memory, local and S3 stores support generations; zip and other fsspec say they do not."""
    from zarrflow.errors import UnsupportedOperationError
    from zarrflow.storage import IfAbsent, Versioned

    on_s3 = isinstance(store, FsspecStore | ObstoreStore) and store.url.startswith("s3://")
    supported = isinstance(store, MemoryStore | LocalStore) or on_s3
    assert store.supports_generations is supported
    if supported:
        generation = store.set_if("a/c/0", b"v", IfAbsent())
        assert store.get_versioned("a/c/0") == Versioned(b"v", generation)
    else:
        with pytest.raises(UnsupportedOperationError):
            store.set_if("a/c/0", b"v", IfAbsent())
        assert store.get("a/c/0") is None


# LocalStore -------------------------------------------------------------------------------


def test_local_writes_leave_no_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for i in range(20):
        store.set(f"g/c/{i % 3}/{i}", b"v1")
        store.set(f"g/c/{i % 3}/{i}", b"v2")
    files = [f for _, _, names in os.walk(tmp_path) for f in names]
    assert len(files) == 20
    assert not [f for f in files if f.endswith(".tmp")]


def test_local_temp_file_from_a_crash_is_not_listed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.set("a/.zattrs", b"{}")
    (tmp_path / "a" / ".0.0123456789abcdef.tmp").write_bytes(b"half a chunk")
    assert sorted(store.list_prefix("")) == ["a/.zattrs"]
    with pytest.raises(KeyPathError, match="reserved for LocalStore temp files"):
        store.get("a/.0.0123456789abcdef.tmp")


def test_local_failed_write_raises_store_error_and_cleans_up(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.set("a/b", b"x")
    with pytest.raises(StoreError, match="could not write key 'a'") as info:
        store.set("a", b"a directory is in the way")
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(StoreError, match="could not write key 'a/b/c'"):
        store.set("a/b/c", b"a file is in the way")
    assert store.get("a/b") == b"x"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"]


def test_local_overwrites_are_atomic_for_concurrent_readers(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    values = [bytes([i]) * 2**16 for i in range(8)]
    store.set("k", values[0])

    def read() -> bytes | None:
        return store.get("k")

    with ThreadPoolExecutor(max_workers=8) as pool:
        writes = [pool.submit(store.set, "k", values[i % 8]) for i in range(200)]
        reads = [pool.submit(read) for _ in range(400)]
        seen = {f.result() for f in reads}
        [f.result() for f in writes]
    assert seen <= set(values)


def test_local_read_only_missing_root_is_empty_and_not_created(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "nowhere", read_only=True)
    assert store.get("a") is None
    assert list(store.list_prefix("")) == []
    assert not (tmp_path / "nowhere").exists()


def test_local_pickles_its_root_not_its_data(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.set("k", b"secret-bytes" * 100)
    assert b"secret-bytes" not in pickle.dumps(store)
    assert store.url == "file://" + str(tmp_path.resolve())


# MemoryStore ------------------------------------------------------------------------------


def test_memory_stores_share_data_by_name_only() -> None:
    name = f"share-{uuid.uuid4().hex}"
    MemoryStore(name).set("k", b"v")
    assert MemoryStore(name).get("k") == b"v"
    assert store_from_url(f"memory://{name}").get("k") == b"v"
    assert MemoryStore(f"other-{uuid.uuid4().hex}").get("k") is None
    a, b = MemoryStore(), MemoryStore()
    a.set("k", b"v")
    assert b.get("k") is None and a.url != b.url


def test_anonymous_memory_store_pickles_by_name() -> None:
    store = MemoryStore()
    store.set("k", b"v")
    payload = pickle.dumps(store)
    assert b"v" not in payload.replace(store.name.encode(), b"")
    assert pickle.loads(payload).get("k") == b"v"


# ZipStore ---------------------------------------------------------------------------------


def test_zip_never_lists_or_reads_escaping_members(tmp_path: Path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in ["../evil", "/abs", "a\\b", "dir/", "ok/key", "ok/../../x"]:
            zf.writestr(name, b"payload")
    store = ZipStore(path)
    assert list(store.list_prefix("")) == ["ok/key"]
    with pytest.raises(KeyPathError):
        store.get("../evil")
    assert store.get("dir") is None


def test_zip_append_mode_and_deterministic_archives(tmp_path: Path) -> None:
    for name in ("one.zip", "two.zip"):
        with ZipStore(tmp_path / name, mode="w") as store:
            store.set("a", b"1")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    with ZipStore(tmp_path / "one.zip", mode="a") as store:
        store.set("b", b"2")
        assert store.get("a") == b"1"
    assert ZipStore(tmp_path / "one.zip").get_many(["a", "b"]) == [b"1", b"2"]


def test_zip_unclosed_writer_is_finalised_when_collected(tmp_path: Path) -> None:
    store = ZipStore(tmp_path / "x.zip", mode="w")
    store.set("k", b"v")
    del store
    gc.collect()
    assert ZipStore(tmp_path / "x.zip").get("k") == b"v"


def test_zip_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="could not open zip archive"):
        ZipStore(tmp_path / "missing.zip")
    with pytest.raises(StoreError, match="mode must be"):
        ZipStore(tmp_path / "x.zip", mode="x")  # type: ignore[arg-type]
    store = ZipStore(tmp_path / "x.zip", mode="w")
    store.set("k", b"v")
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.get("k")


# FsspecStore ------------------------------------------------------------------------------


class _HTTPError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _ClientError(Exception):
    def __init__(self, code: str, status: int) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


@pytest.mark.parametrize(
    ("exc", "missing", "transient"),
    [
        (FileNotFoundError("x"), True, False),
        (KeyError("x"), True, False),
        (_HTTPError(404), True, False),
        (_ClientError("NoSuchKey", 404), True, False),
        (TimeoutError(), False, True),
        (ConnectionResetError(), False, True),
        (OSError(errno.EBUSY, "SlowDown"), False, True),
        (_HTTPError(503), False, True),
        (_HTTPError(429), False, True),
        (_ClientError("InternalError", 500), False, True),
        (PermissionError("denied"), False, False),
        (_HTTPError(403), False, False),
        (OSError(errno.EINVAL, "bad"), False, False),
    ],
    ids=repr,
)
def test_fsspec_error_classification(exc: Exception, missing: bool, transient: bool) -> None:
    assert is_missing_error(exc) is missing
    assert is_transient_error(exc) is transient
    wrapped = OSError("translated")
    wrapped.__cause__ = exc
    assert is_missing_error(wrapped) is missing


def test_fsspec_store_on_s3_url_is_remote_and_pickles_its_options() -> None:
    pytest.importorskip("s3fs")
    store = FsspecStore("s3://bucket/data.zarr", storage_options={"anon": True})
    assert store.is_remote
    clone = pickle.loads(pickle.dumps(store))
    assert (clone.url, clone.storage_options, clone.root) == (
        "s3://bucket/data.zarr",
        {"anon": True},
        "bucket/data.zarr",
    )


def test_fsspec_store_with_explicit_filesystem() -> None:
    fs = fsspec.filesystem("memory")
    store = FsspecStore(f"memory://explicit-{uuid.uuid4().hex}", fs=fs)
    store.set("k", b"v")
    assert pickle.loads(pickle.dumps(store)).get("k") == b"v"
    assert fs.cat_file(store.root + "/k") == b"v"


# store_from_url ---------------------------------------------------------------------------


def test_store_from_url_dispatch(tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    existing = MemoryStore()
    assert store_from_url(existing, read_only=True) is existing
    cases = [
        (str(tmp_path / "d"), LocalStore, "root", str(tmp_path / "d")),
        (tmp_path / "p", LocalStore, "root", str(tmp_path / "p")),
        ((tmp_path / "u").as_uri(), LocalStore, "root", str(tmp_path / "u")),
        (str(tmp_path / "a.zip"), ZipStore, "path", str(tmp_path / "a.zip")),
        ("zip://" + str(tmp_path / "b.zip"), ZipStore, "path", str(tmp_path / "b.zip")),
        ("memory://named", MemoryStore, "name", "named"),
        ("simplecache::memory://chained", FsspecStore, "url", "simplecache::memory://chained"),
    ]
    for url, cls, attribute, where in cases:
        store = store_from_url(url, read_only=False)
        assert (type(store), getattr(store, attribute), store.read_only) == (cls, where, False)
        store.close()
    with dask.config.set({"zarrflow.object_store": "fsspec"}):
        store = store_from_url("s3://bucket/x.zarr", read_only=False)
        assert (type(store), store.root, store.read_only) == (FsspecStore, "bucket/x.zarr", False)
    assert store_from_url(str(tmp_path / "a.zip"), read_only=True).mode == "r"
    (tmp_path / "dir.zip").mkdir()
    assert type(store_from_url(tmp_path / "dir.zip")) is LocalStore
    assert store_from_url("memory://ro", read_only=True).read_only


def test_store_from_url_refuses_unused_options_and_bad_types(tmp_path: Path) -> None:
    assert type(store_from_url(tmp_path, storage_options={})) is LocalStore
    with pytest.raises(StoreError, match="does not use them"):
        store_from_url(tmp_path, storage_options={"anon": True})
    with pytest.raises(StoreError, match="expected a Store, a path or a URL"):
        store_from_url(123)  # type: ignore[arg-type]


# keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_validate_key_names_the_key_and_the_expectation(key: str) -> None:
    with pytest.raises(KeyPathError) as info:
        validate_key(key)
    assert repr(key) in str(info.value) and "expected" in str(info.value)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab./\\:C\x00"), max_size=12))
def test_valid_keys_never_leave_the_root(key: str) -> None:
    if not is_valid_key(key):
        with pytest.raises(KeyPathError):
            validate_key(key)
        return
    root = os.path.join(os.sep, "root")
    assert os.path.normpath(os.path.join(root, key)).startswith(root + os.sep)
    assert "\\" not in key and "\x00" not in key and not re.match("[A-Za-z]:", key)


def test_validate_prefix_allows_root_and_trailing_slash() -> None:
    assert [validate_prefix(p) for p in ["", "a", "a/", "a/b/"]] == ["", "a", "a/", "a/b/"]
    assert [validate_key(k) for k in ODD_BUT_VALID_KEYS] == ODD_BUT_VALID_KEYS
