"""The obstore backend's own promises: selection, options, pickling, generations.

The store contract, retries and request counts run for obstore and fsspec alike
in ``test_s3.py`` and ``test_retries.py``; here are what only ObstoreStore does:
``zarrflow.object_store`` picks it, ``storage_options`` map to obstore's
configuration, and objects have generations (ETags) that make writes
conditional — against moto's server, which enforces ``If-Match`` and
``If-None-Match``.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from pathlib import Path

import dask
import numpy as np
import pytest

import zarrflow as zf
from zarrflow.errors import GenerationConflictError, StoreError, UnsupportedOperationError
from zarrflow.storage import (
    FsspecStore,
    IfAbsent,
    IfGeneration,
    RangeByteRequest,
    SuffixByteRequest,
    Versioned,
    store_from_url,
)
from zarrflow.storage.obstore_client import client_config

obstore = pytest.importorskip("obstore")
from zarrflow.storage import ObstoreStore  # noqa: E402

pytestmark = pytest.mark.timeout(120)


# selection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["s3://b/a.zarr", "gs://b/a.zarr", "az://c/a.zarr", "https://h/a.zarr", "http://h/a"]
)
def test_object_store_urls_open_with_obstore_by_default(url: str) -> None:
    options = {"s3": {"anon": True}, "gs": {"anon": True}, "az": {"account_name": "acc"}}
    store = store_from_url(url, options.get(url.split(":")[0]))
    assert type(store) is ObstoreStore and store.url == url and store.is_remote
    with dask.config.set({"zarrflow.object_store": "fsspec"}):
        if url.startswith("http"):
            assert type(store_from_url(url)) is FsspecStore
    assert type(store_from_url("memory://x")).__name__ == "MemoryStore"  # others as before


def test_auto_falls_back_to_fsspec_for_options_obstore_cannot_take() -> None:
    pytest.importorskip("s3fs")
    options = {"anon": True, "profile": "dev"}  # botocore profiles: obstore has none
    assert type(store_from_url("s3://b/a", options)) is FsspecStore
    with (
        dask.config.set({"zarrflow.object_store": "obstore"}),
        pytest.raises(StoreError, match=r"\['profile'\] have no obstore equivalent.*fsspec"),
    ):
        store_from_url("s3://b/a", options)


def test_obstore_configuration_errors_name_the_url() -> None:
    with pytest.raises(StoreError, match=r"cannot open az://c/a with obstore: .*[Aa]ccount"):
        ObstoreStore("az://c/a")  # no account name given, none in the environment


def test_an_unknown_backend_choice_is_refused() -> None:
    with (
        dask.config.set({"zarrflow.object_store": "rust"}),
        pytest.raises(StoreError, match=r"invalid zarrflow\.object_store 'rust'"),
    ):
        store_from_url("s3://b/a")


# storage_options -> obstore's configuration ---------------------------------------------------


def test_s3fs_options_map_to_obstore_config() -> None:
    c = client_config(
        "s3://bucket/deep/a.zarr/",
        {
            "key": "AK", "secret": "SK", "token": "ST",
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"},
            "config_kwargs": {"s3": {"addressing_style": "virtual"}, "read_timeout": 7,
                              "max_pool_connections": 50},
            "skip_instance_cache": True,
        },
    )  # fmt: skip
    assert (c.kind, c.bucket, c.prefix, c.unmapped) == ("s3", "bucket", "deep/a.zarr", [])
    assert c.config == {
        "access_key_id": "AK", "secret_access_key": "SK", "session_token": "ST",
        "endpoint": "http://127.0.0.1:9", "region": "eu-west-1",
        "virtual_hosted_style_request": True,
    }  # fmt: skip
    assert c.client_options == {"allow_http": True, "timeout": "7s"}
    assert client_config("s3://b", {"anon": True}).config == {"skip_signature": True}


def test_gcs_azure_and_http_options_map_too() -> None:
    assert client_config("gs://b/x", {"token": "anon"}).config == {"skip_signature": True}
    assert client_config("gs://b/x", {"token": "/k.json"}).config == {"service_account": "/k.json"}
    az = client_config("az://cont/x", {"account_name": "acc", "sas_token": "sv=1", "anon": False})
    assert (az.bucket, az.config) == ("cont", {"account_name": "acc", "sas_key": "sv=1"})
    http = client_config("http://h:8/a.zarr", {"client_kwargs": {"headers": {"X-A": "1"}}})
    assert http.base == "http://h:8/a.zarr"
    assert http.client_options == {"allow_http": True, "default_headers": {"X-A": "1"}}
    assert client_config("az://c/x", {"connection_string": "..."}).unmapped == ["connection_string"]


def test_pickles_as_its_arguments_never_its_client(s3_server, s3_store_url: str) -> None:
    options = s3_server.storage_options()
    store = ObstoreStore(s3_store_url, options, read_only=True)
    assert store.__reduce__() == (ObstoreStore, (s3_store_url, options, True))
    clone = pickle.loads(pickle.dumps(store))
    assert (clone.url, clone.storage_options, clone.read_only) == (s3_store_url, options, True)
    writer = ObstoreStore(s3_store_url, options)
    writer.set("k", b"v")
    assert clone.get("k") == b"v"


def test_cluster_workers_build_their_own_client(client, s3_server, s3_store_url: str) -> None:
    """Arrays on ObstoreStore pickle to worker processes, which read and write through it."""
    import dask.array as da

    options = s3_server.storage_options()
    x = da.arange(60 * 40, dtype="i4").reshape(60, 40).rechunk((20, 20))
    out = zf.to_zarr(x, s3_store_url, chunks=(10, 10), storage_options=options, scheduler=client)
    assert type(out.store) is ObstoreStore
    np.testing.assert_array_equal(out.to_dask().compute(scheduler=client), x.compute())


def test_a_large_chunk_is_written_in_one_request(s3_server, s3_store_url: str) -> None:
    """Not a multipart upload (obstore's default above 5 MiB: 4 requests for this one)."""
    from zarrflow.testing.latency_proxy import LatencyProxy

    value = np.random.default_rng(1).bytes(6 * 2**20)
    with LatencyProxy(s3_server.endpoint_url) as proxy:
        store = ObstoreStore(s3_store_url, s3_server.storage_options(proxy.url))
        store.set("shard", value)
        assert proxy.requests == 1
    assert ObstoreStore(s3_store_url, s3_server.storage_options()).get("shard") == value


def _in_forked_child(url: str, options: dict, results) -> None:
    try:
        ObstoreStore(url, options).get("k")
        results.put("no error")
    except StoreError as exc:
        results.put(str(exc))
    results.put(type(store_from_url(url, options)).__name__)


def test_a_child_forked_after_obstore_was_used_is_refused_not_hung(
    s3_server, s3_store_url: str
) -> None:
    """obstore's runtime threads do not survive fork(): a request there would hang forever
    (seen: 200 s until the test's timeout). It raises instead, and ``auto`` picks fsspec."""
    import multiprocessing

    options = s3_server.storage_options()
    ObstoreStore(s3_store_url, options).set("k", b"v")  # this process has used obstore
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_in_forked_child, args=(s3_store_url, options, results))
    child.start()
    error, chosen = results.get(timeout=60), results.get(timeout=60)
    child.join(30)
    assert "forked from a process that already used obstore" in error and "spawn" in error
    assert chosen == "FsspecStore"


# generations and conditional writes -------------------------------------------------------------


@pytest.fixture
def store(s3_server, s3_store_url: str) -> Iterator[ObstoreStore]:
    yield ObstoreStore(s3_store_url, s3_server.storage_options())


def test_reads_carry_the_generation(store: ObstoreStore) -> None:
    assert store.supports_generations and store.get_versioned("missing") is None
    first = store.set_if("k", b"0123456789", IfAbsent())
    got = store.get_versioned("k")
    assert got == Versioned(b"0123456789", first) and first.startswith('"')
    part = store.get_range_versioned("k", RangeByteRequest(2, 5), first)
    assert part == Versioned(b"234", first)
    assert store.get_ranges_versioned("k", [RangeByteRequest(0, 2), SuffixByteRequest(3)]) == [
        b"01", b"789"
    ]  # fmt: skip
    assert store.get_range_versioned("missing", RangeByteRequest(0, 1)) is None


def test_a_stale_generation_is_a_conflict_and_changes_nothing(store: ObstoreStore) -> None:
    old = store.set_if("k", b"old", IfAbsent())
    new = store.set_if("k", b"new", IfGeneration(old))
    assert new != old and store.get("k") == b"new"
    with pytest.raises(GenerationConflictError, match="'k' in s3://"):
        store.set_if("k", b"lost", IfGeneration(old))
    assert store.get_versioned("k") == Versioned(b"new", new)
    with pytest.raises(GenerationConflictError):
        store.get_range_versioned("k", RangeByteRequest(0, 1), old)  # If-Match on reads too
    with pytest.raises(GenerationConflictError):
        store.get_ranges_versioned("k", [RangeByteRequest(0, 1), RangeByteRequest(1, 2)], old)
    with pytest.raises(GenerationConflictError):
        store.set_if("never-written", b"x", IfGeneration(old))
    assert store.get("never-written") is None
    with pytest.raises(GenerationConflictError, match="nothing is stored"):
        store.get_range_versioned("never-written", RangeByteRequest(0, 1), old)


def test_if_absent_never_replaces_an_object(store: ObstoreStore) -> None:
    store.set("k", b"first")
    with pytest.raises(GenerationConflictError):
        store.set_if("k", b"second", IfAbsent())
    assert store.get("k") == b"first"


def test_conditional_delete(store: ObstoreStore) -> None:
    old = store.set_if("k", b"a", IfAbsent())
    new = store.set_if("k", b"b", IfGeneration(old))
    with pytest.raises(GenerationConflictError):
        store.delete_if("k", IfGeneration(old))
    assert store.get("k") == b"b"
    store.delete_if("k", IfGeneration(new))
    assert store.get("k") is None
    with pytest.raises(GenerationConflictError, match="nothing is stored"):
        store.delete_if("k", IfGeneration(new))  # gone: no longer that generation


def test_conditional_delete_with_obstore_native_options(s3_server, s3_store_url: str) -> None:
    """Options in obstore's own names (s3fs could not take them): HEAD, then DELETE."""
    native = {
        "endpoint": s3_server.endpoint_url, "access_key_id": "testing",
        "secret_access_key": "testing", "region": "us-east-1",
    }  # fmt: skip
    store = ObstoreStore(s3_store_url, native)
    old = store.set_if("k", b"a", IfAbsent())
    new = store.set_if("k", b"b", IfGeneration(old))
    with pytest.raises(GenerationConflictError):
        store.delete_if("k", IfGeneration(old))
    store.delete_if("k", IfGeneration(new))
    assert store.get("k") is None


def test_read_modify_writes_from_threads_lose_no_update(store: ObstoreStore) -> None:
    """Threads increment one stored counter by read-with-generation, then ``set_if``.

    Shown failing once with the mechanism off (``store.set(key, value)`` in
    place of ``set_if``): the counter ended at 17 of 48, 31 increments lost.
    """
    store.set("counter", b"0")
    threads, rounds = 4, 12

    def increment() -> None:
        for _ in range(rounds):
            while True:
                current = store.get_versioned("counter")
                value = str(int(current.data) + 1).encode()
                try:
                    store.set_if("counter", value, IfGeneration(current.generation))
                    break
                except GenerationConflictError:
                    continue

    workers = [threading.Thread(target=increment) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert int(store.get("counter")) == threads * rounds


# plain HTTP -------------------------------------------------------------------------------------


def test_http_reads_without_listing_or_generations(tmp_path: Path) -> None:
    from zarrflow.testing.http_server import StaticHTTPServer

    data = np.arange(64, dtype="i4").reshape(8, 8)
    zf.create(tmp_path / "a.zarr", shape=(8, 8), chunks=(4, 4), dtype="i4")[:] = data
    with StaticHTTPServer(tmp_path) as server:
        url = f"{server.url}/a.zarr"
        a = zf.open(url, mode="r")
        np.testing.assert_array_equal(a[:], data)
        store = store_from_url(url)
        assert type(store) is ObstoreStore
        assert not store.supports_listing and not store.supports_generations
        with pytest.raises(UnsupportedOperationError):
            store.get_versioned("c/0/0")
        assert store.get("c/0/0") is not None and store.get("c/9/9") is None
        assert list(store.list_prefix("c/")) == []  # a static server cannot list
