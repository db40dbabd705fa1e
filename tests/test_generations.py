"""Generations and conditional writes: the Store contract on memory, local and S3 (moto).

Every backend that says ``supports_generations`` must: return the bytes and the
generation of one stored version; give a new generation on every write; refuse
a conditional write or delete against a stale generation (or ``IfAbsent`` on
an existing key) with :class:`GenerationConflictError`, changing nothing; and
refuse ranged reads pinned to a stale generation. The local store's lock files
never show in listings, and a symlinked root shares them with its real path.
"""

from __future__ import annotations

import os
import pickle
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from zarrflow.errors import (
    GenerationConflictError,
    ReadOnlyError,
    StoreError,
    TransientStoreError,
    UnsupportedOperationError,
)
from zarrflow.storage import (
    FsspecStore,
    IfAbsent,
    IfGeneration,
    LocalStore,
    MemoryStore,
    OffsetByteRequest,
    RangeByteRequest,
    ReadOnlyStore,
    Store,
    SuffixByteRequest,
    Versioned,
    ZipStore,
)
from zarrflow.storage.failures import failure_kind
from zarrflow.storage.local import is_lock_name
from zarrflow.storage.retrying import RetryingStore
from zarrflow.storage.wrapper import StoreWrapper
from zarrflow.testing.faults import FaultyStore

KINDS = ["memory", "local", "s3", "s3-obstore"]


@pytest.fixture(params=KINDS)
def gstore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of each kind that supports generations."""
    if request.param == "memory":
        store: Store = MemoryStore(f"gen-{uuid.uuid4().hex}")
    elif request.param == "local":
        store = LocalStore(tmp_path / "root")
    else:
        options = request.getfixturevalue("s3_storage_options")
        url = request.getfixturevalue("s3_store_url")
        if request.param == "s3-obstore":
            store = pytest.importorskip("zarrflow.storage.obstore_store").ObstoreStore(url, options)
        else:
            store = FsspecStore(url, options)
    yield store
    store.close()


def test_capability(gstore: Store) -> None:
    assert gstore.supports_generations is True


def test_get_versioned_round_trip(gstore: Store) -> None:
    assert gstore.get_versioned("a/c/0") is None
    gstore.set("a/c/0", b"hello")
    found = gstore.get_versioned("a/c/0")
    assert isinstance(found, Versioned)
    assert found.data == b"hello"
    assert isinstance(found.generation, str) and found.generation
    assert gstore.get_versioned("a/c/0") == found  # unchanged: same generation


def test_generation_changes_on_every_write(gstore: Store) -> None:
    seen = []
    for i in range(5):
        gstore.set("k", b"value %d" % i)
        seen.append(gstore.get_versioned("k").generation)
    generation = gstore.set_if("k", b"value 5", IfGeneration(seen[-1]))
    seen.append(generation)
    assert gstore.get_versioned("k") == Versioned(b"value 5", generation)
    assert len(set(seen)) == len(seen), seen


def test_set_if_with_a_stale_generation_raises_and_changes_nothing(gstore: Store) -> None:
    first = gstore.set_if("k", b"one", IfAbsent())
    second = gstore.set_if("k", b"two", IfGeneration(first))
    assert second != first
    with pytest.raises(GenerationConflictError) as info:
        gstore.set_if("k", b"stale", IfGeneration(first))
    assert info.value.key == "k" and info.value.expected == first
    assert "'k'" in str(info.value) and first in str(info.value)
    assert gstore.get_versioned("k") == Versioned(b"two", second)


def test_if_absent_on_an_existing_key_raises(gstore: Store) -> None:
    gstore.set("k", b"there")
    before = gstore.get_versioned("k")
    with pytest.raises(GenerationConflictError):
        gstore.set_if("k", b"new", IfAbsent())
    assert gstore.get_versioned("k") == before


def test_if_generation_on_a_missing_key_raises(gstore: Store) -> None:
    gstore.set("k", b"v")
    generation = gstore.get_versioned("k").generation
    gstore.delete("k")
    with pytest.raises(GenerationConflictError):
        gstore.set_if("k", b"new", IfGeneration(generation))
    assert gstore.get("k") is None


def test_delete_if(gstore: Store) -> None:
    first = gstore.set_if("k", b"one", IfAbsent())
    second = gstore.set_if("k", b"two", IfGeneration(first))
    with pytest.raises(GenerationConflictError):
        gstore.delete_if("k", IfGeneration(first))
    assert gstore.get("k") == b"two"
    gstore.delete_if("k", IfGeneration(second))
    assert gstore.get("k") is None
    with pytest.raises(GenerationConflictError):  # gone: no longer that generation
        gstore.delete_if("k", IfGeneration(second))


RANGES = [
    (RangeByteRequest(2, 5), b"234"),
    (RangeByteRequest(8, 20), b"89"),
    (RangeByteRequest(3, 3), b""),
    (OffsetByteRequest(7), b"789"),
    (SuffixByteRequest(4), b"6789"),
    (SuffixByteRequest(20), b"0123456789"),
]


def test_ranged_versioned_reads(gstore: Store) -> None:
    generation = gstore.set_if("s", b"0123456789", IfAbsent())
    for request, expected in RANGES:
        assert gstore.get_range_versioned("s", request) == Versioned(expected, generation)
        pinned = gstore.get_range_versioned("s", request, generation)
        assert pinned == Versioned(expected, generation)
    requests = [r for r, _ in RANGES]
    expected = [e for _, e in RANGES]
    assert gstore.get_ranges_versioned("s", requests) == expected
    assert gstore.get_ranges_versioned("s", requests, generation) == expected
    assert gstore.get_range_versioned("missing", RangeByteRequest(0, 2)) is None
    assert gstore.get_ranges_versioned("missing", requests) is None
    assert gstore.get_ranges_versioned("s", [], generation) == []  # exists, nothing asked
    assert gstore.get_ranges_versioned("missing", []) is None


def test_ranged_reads_with_a_stale_generation_raise(gstore: Store) -> None:
    old = gstore.set_if("s", b"0123456789", IfAbsent())
    gstore.set("s", b"abcdefghij")
    with pytest.raises(GenerationConflictError):
        gstore.get_range_versioned("s", RangeByteRequest(0, 4), old)
    with pytest.raises(GenerationConflictError):
        gstore.get_ranges_versioned("s", [RangeByteRequest(0, 4), SuffixByteRequest(2)], old)
    gstore.delete("s")
    with pytest.raises(GenerationConflictError):  # deleted: not that generation either
        gstore.get_range_versioned("s", RangeByteRequest(0, 4), old)


def test_conditional_writes_need_a_writable_store(gstore: Store) -> None:
    generation = gstore.set_if("k", b"v", IfAbsent())
    view = ReadOnlyStore(gstore)
    assert view.supports_generations
    assert view.get_versioned("k") == Versioned(b"v", generation)
    with pytest.raises(ReadOnlyError):
        view.set_if("k", b"w", IfGeneration(generation))
    with pytest.raises(ReadOnlyError):
        view.delete_if("k", IfGeneration(generation))
    assert gstore.get("k") == b"v"


@pytest.mark.parametrize("bad", ["1", None, IfGeneration(1)], ids=repr)
def test_malformed_conditions_are_refused(gstore: Store, bad: object) -> None:
    with pytest.raises(StoreError, match="invalid condition"):
        gstore.set_if("k", b"v", bad)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="invalid condition"):
        gstore.delete_if("k", IfAbsent())  # type: ignore[arg-type]
    assert gstore.get("k") is None


def test_threads_compare_and_set_lose_nothing(gstore: Store) -> None:
    """8 threads x 10 increments of one counter through set_if: exactly 80 at the end."""
    gstore.set("n", b"0")

    def work() -> None:
        for _ in range(10):
            while True:
                found = gstore.get_versioned("n")
                try:
                    gstore.set_if(
                        "n", b"%d" % (int(found.data) + 1), IfGeneration(found.generation)
                    )
                    break
                except GenerationConflictError:
                    continue

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gstore.get("n") == b"80"


# the capability is said, never guessed ---------------------------------------------------


def test_stores_without_generations_say_so(tmp_path: Path) -> None:
    stores = [
        ZipStore(tmp_path / "a.zip", mode="w"),
        FsspecStore(f"memory://gen-{uuid.uuid4().hex}"),
        FsspecStore((tmp_path / "fs").as_uri()),
    ]
    for store in stores:
        assert store.supports_generations is False
        calls = [
            (store.get_versioned, ("k",)),
            (store.get_range_versioned, ("k", RangeByteRequest(0, 1))),
            (store.get_ranges_versioned, ("k", [RangeByteRequest(0, 1)])),
            (store.set_if, ("k", b"v", IfAbsent())),
            (store.delete_if, ("k", IfGeneration("1"))),
        ]
        for call, args in calls:
            with pytest.raises(UnsupportedOperationError, match="supports_generations is False"):
                call(*args)
        assert store.get("k") is None
        store.close()


# wrappers pass generations through; retries never repeat a conflict ---------------------


def test_wrappers_pass_generations_through(memory_store: MemoryStore) -> None:
    for wrapper in (StoreWrapper(memory_store), RetryingStore(memory_store)):
        assert wrapper.supports_generations
        generation = wrapper.set_if("w", b"1", IfAbsent())
        assert wrapper.get_versioned("w") == Versioned(b"1", generation)
        assert wrapper.get_ranges_versioned("w", [RangeByteRequest(0, 1)], generation) == [b"1"]
        wrapper.delete_if("w", IfGeneration(generation))
        assert memory_store.get("w") is None


def test_conflicts_are_permanent_and_never_retried(memory_store: MemoryStore) -> None:
    conflict = GenerationConflictError(memory_store.url, "k", "1", "generation '2' is stored")
    assert not isinstance(conflict, OSError)
    again = pickle.loads(pickle.dumps(conflict))  # crosses process boundaries intact
    assert (again.url, again.key, again.expected, str(again)) == (
        conflict.url,
        "k",
        "1",
        str(conflict),
    )
    assert failure_kind(conflict) == "permanent"
    faulty = FaultyStore(memory_store)
    store = RetryingStore(faulty)
    first = store.set_if("k", b"1", IfAbsent())
    store.set("k", b"2")
    faulty.reset()
    with pytest.raises(GenerationConflictError):
        store.set_if("k", b"stale", IfGeneration(first))
    assert faulty.calls["set"] == 1  # tried once, not retried
    assert memory_store.get("k") == b"2"


def test_transient_faults_of_versioned_calls_are_retried(memory_store: MemoryStore) -> None:
    faulty = FaultyStore(memory_store, transient=1.0, max_transient_run=2, seed=1)
    store = RetryingStore(faulty)
    generation = store.set_if("k", b"v", IfAbsent())
    assert store.get_versioned("k") == Versioned(b"v", generation)
    assert store.get_range_versioned("k", RangeByteRequest(0, 1)).data == b"v"
    store.delete_if("k", IfGeneration(generation))
    assert len(faulty.faults_of("transient")) == 8  # two per call, each retried through
    assert memory_store.get("k") is None
    with pytest.raises(TransientStoreError):  # without the retry layer it reaches the caller
        FaultyStore(memory_store, transient=1.0, seed=1).get_versioned("k")


# local: lock files -----------------------------------------------------------------------


def test_local_lock_files_are_never_listed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    for key in ("zarr.json", "c/0/0", "c/0/1", "g/a/c/0"):
        store.set_if(key, b"x", IfAbsent())
    locks = [p.name for p in (tmp_path / "root").rglob("*") if is_lock_name(p.name)]
    assert len(locks) == 4
    listed = sorted(store.list_prefix(""))
    assert listed == ["c/0/0", "c/0/1", "g/a/c/0", "zarr.json"]
    assert store.list_dir("c/0") == ["0", "1"]
    assert store.list_dir("") == ["c", "g", "zarr.json"]
    fsspec_view = FsspecStore((tmp_path / "root").as_uri())
    assert sorted(fsspec_view.list_prefix("")) == listed
    with pytest.raises(StoreError, match="reserved"):
        store.set(f"c/0/{locks[0]}", b"no")


def test_local_symlinked_root_shares_locks_with_its_real_path(tmp_path: Path) -> None:
    """Threads writing through a symlink and through the real path exclude each other.

    The lock is taken on the real path's lock file: both stores block on one
    flock. Shown by holding the lock through one store and watching a
    conditional write through the other wait for it.
    """
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    via_real, via_link = LocalStore(real), LocalStore(link)
    nested = LocalStore(real / "a")  # a store rooted at a child directory: same lock too
    via_link.set_if("a/c/0", b"0", IfAbsent())
    lock_files = sorted(p.name for p in real.rglob("*") if is_lock_name(p.name))
    via_real.set_if("a/c/0", b"1", IfGeneration(via_real.get_versioned("a/c/0").generation))
    nested.set_if("c/0", b"2", IfGeneration(nested.get_versioned("c/0").generation))
    assert sorted(p.name for p in real.rglob("*") if is_lock_name(p.name)) == lock_files
    assert len(lock_files) == 1

    import fcntl

    lock_path = next(real.rglob(lock_files[0]))
    fd = os.open(lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # hold the key's lock, as a writer in another process would
    done = threading.Event()

    def write() -> None:
        found = via_link.get_versioned("a/c/0")
        via_link.set_if("a/c/0", b"3", IfGeneration(found.generation))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert not done.wait(0.5)  # blocked on the real path's lock
    assert via_real.get("a/c/0") == b"2"
    os.close(fd)  # release
    writer.join(10)
    assert done.is_set() and via_real.get("a/c/0") == b"3"


def test_local_set_if_keeps_old_value_when_the_write_fails(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    generation = store.set_if("k", b"old", IfAbsent())
    with pytest.raises(TypeError):
        store.set_if("k", object(), IfGeneration(generation))  # type: ignore[arg-type]
    assert store.get_versioned("k") == Versioned(b"old", generation)
    leftovers = [p.name for p in (tmp_path / "root").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_local_lock_files_are_invisible_to_arrays_info_and_copy(tmp_path: Path) -> None:
    """Chunks rewritten with set_if leave lock files beside them; nothing above sees them."""
    import numpy as np

    import zarrflow as zf
    from zarrflow.integrations.copying import copy_node

    path = tmp_path / "a.zarr"
    a = zf.create(str(path), shape=(6, 6), chunks=(3, 3), dtype="i4", fill_value=0)
    a[:] = np.arange(36).reshape(6, 6)
    store = LocalStore(path)
    chunk_keys = [k for k in store.list_prefix("") if k != "zarr.json"]
    for key in chunk_keys:
        found = store.get_versioned(key)
        store.set_if(key, found.data, IfGeneration(found.generation))
    assert len([p for p in path.rglob("*") if is_lock_name(p.name)]) == 4
    again = zf.open(str(path))
    assert again.nchunks_initialized == 4
    info = str(again.info)
    assert "Chunks stored        : 4 / 4" in info
    stored_bytes = sum(len(store.get(k)) for k in chunk_keys)
    assert f"Bytes stored         : {stored_bytes} B" in info  # lock files not counted
    copy = copy_node(str(path), str(tmp_path / "b.zarr"))
    assert np.array_equal(copy[:], np.arange(36).reshape(6, 6))
    assert not [p for p in (tmp_path / "b.zarr").rglob("*") if is_lock_name(p.name)]


def test_ranged_reads_never_mix_versions_under_a_concurrent_writer(gstore: Store) -> None:
    """A writer rewrites a 4 KiB object (every byte = the version number) while a reader
    takes four ranges with ``get_ranges_versioned``: every answer is all one version.

    Control, run once with the same writer: plain ``get_ranges`` (no generations)
    returned 18 mixed answers in 3,000 local reads and 56 in 150 S3 reads;
    ``get_ranges_versioned`` 0 and 0 (S3: 3 of 150 raised a conflict after its
    bounded re-reads, which the caller retries).
    """
    reads = {"memory": 3000, "local": 3000, "s3": 150}[_kind(gstore)]
    gstore.set("obj", bytes(4096))
    stop = threading.Event()

    def writer() -> None:
        version = 0
        while not stop.is_set():
            version = (version + 1) % 256
            gstore.set("obj", bytes([version]) * 4096)

    requests = [RangeByteRequest(0, 16), RangeByteRequest(1000, 1100), SuffixByteRequest(64)]
    requests.append(OffsetByteRequest(4000))
    thread = threading.Thread(target=writer)
    thread.start()
    mixed = seen = conflicts = 0
    try:
        for _ in range(reads):
            try:
                parts = gstore.get_ranges_versioned("obj", requests)
            except GenerationConflictError:  # writes kept landing: allowed, never a mix
                conflicts += 1
                continue
            values = {b for part in parts for b in part}
            seen += 1
            mixed += len(values) != 1
    finally:
        stop.set()
        thread.join()
    assert mixed == 0 and seen + conflicts == reads and seen >= reads // 2


def _kind(store: Store) -> str:
    if isinstance(store, MemoryStore):
        return "memory"
    return "local" if isinstance(store, LocalStore) else "s3"


def test_local_lock_follows_symlinked_subdirectories(tmp_path: Path) -> None:
    """A key reached through a symlinked directory inside the store has one lock file."""
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "root"
    elsewhere.mkdir()
    root.mkdir()
    (root / "a").symlink_to(elsewhere, target_is_directory=True)
    outer, inner = LocalStore(root), LocalStore(elsewhere)
    outer.set_if("a/c/0", b"1", IfAbsent())
    inner.set_if("c/0", b"2", IfGeneration(inner.get_versioned("c/0").generation))
    locks = [
        os.path.join(d, f) for d, _, files in os.walk(tmp_path) for f in files if is_lock_name(f)
    ]
    assert locks == [str(elsewhere / "c" / ".0.zarrflow-lock")]
    assert outer.get("a/c/0") == b"2"


class _ClientError(Exception):
    """The shape of a botocore ClientError (``response`` dict), as s3fs chains it."""

    def __init__(self, code: str, status: int) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


@pytest.mark.parametrize(
    ("code", "status", "translated"),
    [
        ("PreconditionFailed", 412, OSError(22, "precondition")),  # s3fs: EINVAL
        ("PreconditionFailed", 412, FileExistsError("exists")),  # s3fs, If-None-Match
        ("ConditionalRequestConflict", 409, OSError(16, "busy")),  # s3fs: EBUSY, a
        # "transient" errno: the conflict must win
    ],
)
def test_s3_condition_answers_are_conflicts_never_transient(
    code: str, status: int, translated: OSError
) -> None:
    from zarrflow.storage.failures import is_conflict_error

    translated.__cause__ = _ClientError(code, status)
    assert is_conflict_error(translated)
    assert failure_kind(translated) == "permanent"
    assert not is_conflict_error(OSError(16, "busy"))  # a bare EBUSY stays transient
    assert failure_kind(OSError(16, "busy")) == "transient"
