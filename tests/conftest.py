"""Shared fixtures: stores of every kind, a counting store wrapper, a local cluster."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import dask
import pytest

from zarrflow.storage import LocalStore, MemoryStore, Store, ZipStore


class CountingStore(Store):
    """Wraps a store and counts every read, so tests can assert what was fetched."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.read_only = inner.read_only
        self.reads: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, key: str) -> None:
        with self._lock:
            self.reads[key] += 1

    def get(self, key):
        self._count(key)
        return self.inner.get(key)

    def get_range(self, key, request):
        self._count(key)
        return self.inner.get_range(key, request)

    def get_many(self, keys):
        for k in keys:
            self._count(k)
        return self.inner.get_many(keys)

    def set(self, key, value):
        self.inner.set(key, value)

    def delete(self, key):
        self.inner.delete(key)

    def list_prefix(self, prefix):
        return self.inner.list_prefix(prefix)

    def chunk_reads(self) -> int:
        return sum(
            n
            for k, n in self.reads.items()
            if not k.rsplit("/", 1)[-1].startswith((".z", "zarr.json"))
        )

    def __reduce__(self):
        return (CountingStore, (self.inner,))


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore(f"test-{uuid.uuid4().hex}")


@pytest.fixture(params=["memory", "local", "zip"])
def any_store(request, tmp_path) -> Store:
    """A fresh writable store of each kind."""
    if request.param == "memory":
        store = MemoryStore(f"test-{uuid.uuid4().hex}")
    elif request.param == "local":
        store = LocalStore(tmp_path / "store")
    else:
        store = ZipStore(tmp_path / "store.zip", mode="w")
    yield store
    store.close()


#: config switching the conditional (generation-checked) partial writes off: with
#: ``zarrflow.lock: none`` too, both guards of a read-modify-write are off, which
#: the "switched off" tests use to show their checks can fail
NO_CONDITIONS = {"zarrflow.conditional_writes": False}


@pytest.fixture
def workers_without_conditions(client):
    """The cluster's workers with conditional writes off for one test, then on again."""

    def switch(on: bool) -> None:
        dask.config.set({"zarrflow.conditional_writes": on})  # applies at once, globally

    client.run(switch, False)
    yield
    client.run(switch, True)


@pytest.fixture(scope="session")
def cluster():
    """A real distributed LocalCluster with 2 worker processes, shared by the session."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
        silence_logs=40,
    ) as c:
        yield c


@pytest.fixture
def client(cluster):
    from distributed import Client

    with Client(cluster) as c:
        yield c


# S3: a real S3-compatible server (moto) on 127.0.0.1 ----------------------------------------

S3_BUCKET = "zarrflow-tests"


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server in a child process on 127.0.0.1 (a free port), with one bucket.

    Stopped at the end of the session. ``s3_server.storage_options()`` gives the
    s3fs options to reach it (``storage_options(proxy.url)`` through a proxy).
    """
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    from zarrflow.testing.s3_server import S3Server

    with S3Server(max_seconds=1800) as server:
        server.create_bucket(S3_BUCKET)
        yield server


@pytest.fixture(params=["obstore", "fsspec"])
def object_store(request) -> Iterator[str]:
    """Each object-store backend in turn, selected as users do (``zarrflow.object_store``).

    Every ``s3://`` / ``http://`` URL opened while it is active goes through that
    backend: :class:`~zarrflow.storage.ObstoreStore` or :class:`~zarrflow.storage.FsspecStore`.
    """
    if request.param == "obstore":
        pytest.importorskip("obstore")
    with dask.config.set({"zarrflow.object_store": request.param}):
        yield request.param


@pytest.fixture
def s3_storage_options(s3_server) -> dict:
    """s3fs options for the session's S3 server (pass them as ``storage_options``)."""
    return s3_server.storage_options()


@pytest.fixture
def s3_store_url(s3_server) -> str:
    """A fresh, empty ``s3://`` location on the session's server (open it with
    ``storage_options=s3_storage_options``)."""
    return f"s3://{S3_BUCKET}/{uuid.uuid4().hex}"
