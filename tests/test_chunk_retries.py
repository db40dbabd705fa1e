"""Chunk-level retries, per-chunk write failures, and batched writes to remote stores.

A store that does not retry its own requests (local, memory, zip, or a
FaultyStore wrapper) is read and written by the chunk layer through a
``RetryingStore``: transient failures are retried per ``zarrflow.retries``,
permanent ones pass at once. FsspecStore retries every request itself and is
never wrapped, so no request is retried by two layers.

On a remote store, whole chunks are written in concurrent batches
(``try_set_many``), seen at a proxy in front of a real S3 server.
"""

from __future__ import annotations

import errno
import itertools
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest

import zarrflow as zf
from zarrflow.storage import FsspecStore, LocalStore, MemoryStore, Store
from zarrflow.storage.retrying import RetryingStore, with_retries
from zarrflow.testing.faults import FaultyStore
from zarrflow.testing.latency_proxy import LatencyProxy

pytestmark = pytest.mark.timeout(120)

FAST = {"zarrflow.retries": {"attempts": 4, "backoff": 0.001, "max_backoff": 0.002, "max_time": 20}}


class _Flaky(MemoryStore):
    """Raises the given errors, in order, on its next calls to ``get``/``set``."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__()
        self.errors = errors
        self.tries = 0

    def _maybe_fail(self) -> None:
        self.tries += 1
        if self.errors:
            raise self.errors.pop(0)

    def get(self, key: str) -> bytes | None:
        self._maybe_fail()
        return super().get(key)

    def set(self, key: str, value: bytes) -> None:
        self._maybe_fail()
        super().set(key, value)


# the RetryingStore ---------------------------------------------------------------------------
def test_transient_failures_are_retried_until_success() -> None:
    inner = _Flaky([zf.TransientStoreError("flaky"), OSError(errno.EAGAIN, "try again")])
    store = RetryingStore(inner)
    with dask.config.set(FAST):
        store.set("k", b"v")
    assert inner.tries == 3 and inner.get("k") == b"v"


@pytest.mark.parametrize(
    "error", [zf.StoreError("denied"), PermissionError("no"), ValueError("bug")]
)
def test_permanent_failures_pass_at_once(error: BaseException) -> None:
    inner = _Flaky([error])
    with dask.config.set(FAST), pytest.raises(type(error)):
        RetryingStore(inner).get("k")
    assert inner.tries == 1


def test_attempts_are_bounded_and_the_error_says_how_many() -> None:
    inner = _Flaky([zf.TransientStoreError(f"flaky {i}") for i in range(10)])
    with dask.config.set(FAST), pytest.raises(zf.TransientStoreError) as err:
        RetryingStore(inner).get("k")
    assert inner.tries == 4
    assert str(err.value) == "flaky 3"
    assert "gave up after 4 attempt(s)" in "\n".join(err.value.__notes__)


def test_a_missing_key_reads_as_none_without_retries() -> None:
    inner = _Flaky([])
    assert RetryingStore(inner).get("never/written") is None and inner.tries == 1


def test_which_stores_the_chunk_layer_wraps(
    tmp_path: Path, s3_store_url: str, s3_storage_options
) -> None:
    local = LocalStore(tmp_path / "a.zarr")
    assert isinstance(with_retries(local), RetryingStore)
    assert isinstance(with_retries(FaultyStore(local)), RetryingStore)
    s3 = FsspecStore(s3_store_url, s3_storage_options)
    assert s3.retries_requests and with_retries(s3) is s3  # it retries every request itself
    a = zf.create(s3, shape=(4,), chunks=(2,), dtype="i4")
    assert a.engine.store is s3
    b = zf.create(local, shape=(4,), chunks=(2,), dtype="i4")
    assert isinstance(b.engine.store, RetryingStore) and b.engine.store.inner is local


def test_read_only_is_kept_by_the_wrapper(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "a.zarr")
    zf.create(store, shape=(4,), chunks=(2,), dtype="i4")[...] = 1
    a = zf.open_array(store, mode="r")
    assert a.engine.store.read_only
    with pytest.raises(zf.ReadOnlyError):
        a[...] = 2
    with pytest.raises(zf.ReadOnlyError):
        a.engine.store.try_set_many({"c/0": b"x"})
    assert np.array_equal(zf.open_array(store, mode="r")[...], [1, 1, 1, 1])


# every chunk operation retries --------------------------------------------------------------
def _faulty_array(tmp_path: Path, ops: tuple[str, ...]) -> tuple[LocalStore, FaultyStore, zf.Array]:
    store = LocalStore(tmp_path / "a.zarr")
    a = zf.create(store, shape=(40, 30), chunks=(10, 10), dtype="i4")
    a[...] = np.arange(1200).reshape(40, 30)
    faulty = FaultyStore(
        store, transient=0.5, max_transient_run=2, ops=ops, chunks_only=True, seed=3
    )
    return store, faulty, zf.open_array(faulty, mode="r+")


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_reads_retry_transient_faults_in_every_operation(tmp_path: Path, scheduler: str) -> None:
    _, faulty, a = _faulty_array(tmp_path, ("get",))
    expected = np.arange(1200).reshape(40, 30)
    with dask.config.set(FAST), dask.config.set(scheduler=scheduler):
        assert np.array_equal(a[...], expected)
        assert np.array_equal(a.to_dask(chunks_per_task=1).compute(), expected)
        for idx, chunk in a.chunk_stream(parallel=3, scheduler=scheduler):
            assert np.array_equal(chunk, expected[a.chunk_slices(idx)])
        assert np.array_equal(a.oindex[[0, 39], :], expected[[0, 39], :])
    assert sum(f.kind == "transient" for f in faulty.faults) > 10  # the faults did happen


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_writes_retry_transient_faults(tmp_path: Path, scheduler: str) -> None:
    store, faulty, a = _faulty_array(tmp_path, ("set", "delete"))
    with dask.config.set(FAST):
        a[5:35, 5:25] = -1  # partial chunks: read-modify-write
        zf.to_zarr(
            da.zeros((20, 30), chunks=(10, 15), dtype="i4"),
            a,
            region=(slice(20, 40),),
            scheduler=scheduler,
        )
    expected = np.arange(1200).reshape(40, 30)
    expected[5:35, 5:25] = -1
    expected[20:40] = 0
    assert np.array_equal(zf.open_array(store, mode="r")[...], expected)
    assert not any(k.startswith("c/2/") or k.startswith("c/3/") for k in store.list_prefix("c/"))
    assert sum(f.kind == "transient" for f in faulty.faults) > 5


def test_transient_faults_past_the_attempts_name_the_chunk(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "a.zarr")
    zf.create(store, shape=(4,), chunks=(2,), dtype="i4")[...] = [1, 2, 3, 4]
    faulty = FaultyStore(store, transient=1.0, max_transient_run=100, ops=("get",), match=r"c/1$")
    a = zf.open_array(faulty, mode="r")
    with dask.config.set(FAST), pytest.raises(zf.TransientStoreError) as err:
        a[...]
    assert "c/1" in str(err.value)
    tries = len([f for f in faulty.faults if f.key.endswith("c/1")])
    assert tries == 1 + 4  # the batch's try, then the key's own 4 attempts; no more


# failures of a parallel write ------------------------------------------------------------------
@pytest.mark.parametrize("inline", [True, False])
def test_setitem_tries_every_chunk_and_reports_each_failure(tmp_path: Path, inline: bool) -> None:
    store = LocalStore(tmp_path / "a.zarr")
    a = zf.create(store, shape=(6, 6), chunks=(2, 2), dtype="i4")
    faulty = FaultyStore(store, permanent=1.0, ops=("set",), match=r"c/(0/0|2/1)$")
    b = zf.open_array(faulty, mode="r+")
    inline_chunks = {"zarrflow.inline_chunks": 100 if inline else 1}
    with dask.config.set(inline_chunks), pytest.raises(zf.ParallelChunkError) as err:
        b[...] = 7
    assert [f.chunk_index for f in err.value.failures] == [(0, 0), (2, 1)]
    assert "c/0/0" in str(err.value) and str(a.name) in str(err.value)
    got = zf.open_array(store, mode="r")[...]
    expected = np.full((6, 6), 7)
    expected[0:2, 0:2] = 0
    expected[4:6, 2:4] = 0
    assert np.array_equal(got, expected)


def test_to_zarr_with_compute_false_raises_on_compute(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "a.zarr")
    zf.create(store, shape=(6,), chunks=(2,), dtype="i4")
    b = zf.open_array(FaultyStore(store, permanent=1.0, ops=("set",), match=r"c/1$"), mode="r+")
    job = zf.to_zarr(da.ones(6, chunks=2, dtype="i4"), b, compute=False)
    with pytest.raises(zf.ParallelChunkError) as err:
        job.compute(scheduler="threads")
    assert [f.chunk_index for f in err.value.failures] == [(1,)]
    assert np.array_equal(zf.open_array(store, mode="r")[...], [1, 1, 0, 0, 1, 1])


def test_to_zarr_on_a_cluster_reports_every_failed_chunk(client, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "a.zarr")
    zf.create(store, shape=(8, 8), chunks=(2, 2), dtype="i4")
    faulty = FaultyStore(store, permanent=1.0, ops=("set",), match=r"c/(1/1|3/0)$")
    b = zf.open_array(faulty, mode="r+")
    with pytest.raises(zf.ParallelChunkError) as err:
        zf.to_zarr(da.ones((8, 8), chunks=(4, 4), dtype="i4"), b, scheduler=client)
    assert [f.chunk_index for f in err.value.failures] == [(1, 1), (3, 0)]
    got = zf.open_array(store, mode="r")[...]
    assert int(got.sum()) == 64 - 8


# batched writes to a remote store --------------------------------------------------------------
def test_try_set_many_reports_each_failed_key(tmp_path: Path) -> None:
    store = FsspecStore(f"file://{tmp_path}/s")
    (tmp_path / "s" / "b").mkdir(parents=True)  # a directory where a key should go
    failed = store.try_set_many({"a": b"1", "b": b"2", "c": b"3"})
    assert list(failed) == ["b"] and isinstance(failed["b"], zf.StoreError)
    assert "'b'" in str(failed["b"])
    assert store.get("a") == b"1" and store.get("c") == b"3"
    with pytest.raises(zf.StoreError):
        store.set_many({"a": b"1", "b": b"2"})


@pytest.fixture
def proxy(s3_server):
    with LatencyProxy(s3_server.endpoint_url) as p:
        yield p


@pytest.mark.parametrize("how", ["setitem", "to_zarr", "to_zarr-small-blocks"])
def test_remote_writes_overlap_their_puts(s3_server, s3_store_url: str, proxy, how: str) -> None:
    options = s3_server.storage_options(proxy.url)
    a = zf.create(s3_store_url, shape=(64, 64), chunks=(8, 8), dtype="i4", storage_options=options)
    data = np.arange(64 * 64, dtype="i4").reshape(64, 64)
    proxy.reset_counters()
    proxy.delay = 0.02
    with dask.config.set({"zarrflow.io_concurrency": 16}):
        if how == "setitem":
            a[...] = data
        else:  # blocks of one chunk are grouped, so that each task's PUTs overlap
            blocks = (8, 8) if how.endswith("small-blocks") else (32, 64)
            zf.to_zarr(da.from_array(data, chunks=blocks), a, scheduler="threads")
    assert proxy.requests == 64  # one PUT per chunk, nothing else
    assert 8 < proxy.peak_in_flight <= 16  # overlapped beyond the threads, within the budget
    proxy.delay = 0
    assert np.array_equal(zf.open_array(s3_store_url, mode="r", storage_options=options)[...], data)


def test_remote_fill_chunks_are_deleted_in_batches(s3_server, s3_store_url: str, proxy) -> None:
    options = s3_server.storage_options(proxy.url)
    a = zf.create(s3_store_url, shape=(32, 32), chunks=(8, 8), dtype="f4", storage_options=options)
    a[...] = 1.0
    store = FsspecStore(s3_store_url, options)
    assert len([k for k in store.list_prefix("c/")]) == 16
    a[:16] = 0.0  # the fill value: those chunks are deleted
    a[16:, :8] = np.nan  # whole chunks that are not the fill value: stored
    assert sorted(store.list_prefix("c/")) == sorted(
        f"c/{i}/{j}" for i, j in itertools.product((2, 3), range(4))
    )
    got = zf.open_array(s3_store_url, mode="r", storage_options=options)[...]
    assert (got[:16] == 0).all() and np.isnan(got[16:, :8]).all() and (got[16:, 8:] == 1).all()


def test_remote_partial_and_whole_chunks_in_one_write(s3_server, s3_store_url: str) -> None:
    options = s3_server.storage_options()
    a = zf.create(s3_store_url, shape=(30, 30), chunks=(8, 8), dtype="i2", storage_options=options)
    expected = np.zeros((30, 30), "i2")
    for sel, value in [((slice(3, 29), slice(0, 30)), 5), ((slice(None), 7), -2), ((17, 17), 9)]:
        a[sel] = value
        expected[sel] = value
    assert np.array_equal(a[...], expected)


def _remote_faulty(url: str, options: dict) -> tuple[Store, zf.Array]:
    zf.create(url, shape=(16, 16), chunks=(4, 4), dtype="i4", storage_options=options)
    faulty = FaultyStore(
        FsspecStore(url, options), permanent=1.0, ops=("set",), match=r"c/(0/3|2/2)$"
    )
    return faulty, zf.open_array(faulty, mode="r+")


def test_remote_write_failures_are_reported_per_chunk(s3_server, s3_store_url: str) -> None:
    options = s3_server.storage_options()
    _, a = _remote_faulty(s3_store_url, options)
    with pytest.raises(zf.ParallelChunkError) as err:
        a[...] = 3
    assert [f.chunk_index for f in err.value.failures] == [(0, 3), (2, 2)]
    got = zf.open_array(s3_store_url, mode="r", storage_options=options)[...]
    assert int((got == 3).sum()) == 256 - 32
