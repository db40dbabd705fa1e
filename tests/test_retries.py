"""Retries and the request budget: unit behaviour, then real failures on the wire.

The wire tests put :class:`~zarrflow.testing.latency_proxy.LatencyProxy` between
the client — obstore, then s3fs / fsspec's HTTP filesystem (the ``object_store``
fixture) — and a real server on 127.0.0.1: it resets
connections, answers 503 SlowDown / 429 / 403, or never answers. Reads and
writes through the failures must complete with every value right; permanent
errors must fail at once, and a read that keeps failing must raise — never
read as fill values.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dask
import numpy as np
import pytest

import zarrflow as zf
from zarrflow.storage import RequestBudget, RetryPolicy, store_from_url
from zarrflow.storage.retry import Failure, call_async, call_sync
from zarrflow.testing.http_server import StaticHTTPServer
from zarrflow.testing.latency_proxy import LatencyProxy, http_error_response

pytestmark = pytest.mark.timeout(120)

FAST = {"zarrflow.retries": {"attempts": 8, "backoff": 0.01, "max_backoff": 0.05, "max_time": 20}}


# RetryPolicy, call_sync, call_async -----------------------------------------------------------


def test_policy_from_config_and_bounded_delays() -> None:
    with dask.config.set({"zarrflow.retries": {"attempts": 3, "backoff": 0.2, "max_backoff": 0.5}}):
        policy = RetryPolicy.from_config()
    assert (policy.attempts, policy.backoff, policy.max_backoff) == (3, 0.2, 0.5)
    for failures, cap in [(1, 0.2), (2, 0.4), (3, 0.5), (10, 0.5)]:
        delays = [policy.delay(failures) for _ in range(200)]
        assert cap / 2 <= min(delays) and max(delays) <= cap  # exponential, capped, jittered
        assert len(set(delays)) > 1
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


def _flaky(failures: list[BaseException], value: object = b"ok"):
    """A request that raises ``failures`` one by one, then returns ``value``."""
    calls: list[float] = []

    def request() -> object:
        calls.append(time.monotonic())
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return value

    return request, calls


class _ClientError(Exception):
    """Shaped like botocore's ClientError."""

    def __init__(self, code: str, status: int) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


def _translated(code: str, status: int) -> OSError:
    """What s3fs raises for an S3 error: an OSError raised from the ClientError."""
    error = OSError(5, code)
    error.__cause__ = _ClientError(code, status)
    return error


@pytest.mark.parametrize(
    "transient",
    [ConnectionResetError("reset"), TimeoutError(), _translated("SlowDown", 503)],
    ids=["reset", "timeout", "slowdown"],
)
def test_transient_failures_are_retried_until_success(transient: BaseException) -> None:
    request, calls = _flaky([transient, transient])
    assert call_sync(request, RetryPolicy(attempts=3, backoff=0.01)) == b"ok"
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("error", "kind"),
    [(PermissionError("denied"), "permanent"), (FileNotFoundError("x"), "missing")],
)
def test_permanent_and_missing_are_never_retried(error: BaseException, kind: str) -> None:
    request, calls = _flaky([error] * 5)
    outcome = call_sync(request, RetryPolicy(attempts=5, backoff=0.01))
    assert isinstance(outcome, Failure) and outcome.kind == kind and len(calls) == 1


def test_attempts_are_bounded_and_reported() -> None:
    request, calls = _flaky([ConnectionResetError("reset by peer")] * 10)
    outcome = call_sync(request, RetryPolicy(attempts=4, backoff=0.01))
    assert isinstance(outcome, Failure) and outcome.kind == "transient"
    assert len(calls) == 4 and outcome.attempts == 4
    assert "gave up after 4 attempt(s)" in outcome.describe()


def test_total_time_is_bounded_even_when_a_try_hangs() -> None:
    async def hang() -> bytes:
        await asyncio.sleep(30)
        return b"never"

    policy = RetryPolicy(attempts=100, backoff=0.01, max_time=0.3)
    t0 = time.monotonic()
    outcome = asyncio.run(call_async(hang, policy))
    assert isinstance(outcome, Failure) and outcome.kind == "transient"
    assert time.monotonic() - t0 < 3  # cancelled at the deadline, not after 100 × 30 s


# RequestBudget --------------------------------------------------------------------------------


def test_budget_limits_threads_and_coroutines_together() -> None:
    budget = RequestBudget(limit=3)
    peak, lock = [0], threading.Lock()

    def note() -> None:
        with lock:
            peak[0] = max(peak[0], budget.in_use)

    def in_thread() -> None:
        for _ in range(5):
            with budget:
                note()
                time.sleep(0.005)

    async def in_loop() -> None:
        async def one() -> None:
            await budget.acquire_async()
            try:
                note()
                await asyncio.sleep(0.005)
            finally:
                budget.release()

        await asyncio.gather(*(one() for _ in range(20)))

    threads = [threading.Thread(target=in_thread) for _ in range(4)]
    threads.append(threading.Thread(target=asyncio.run, args=(in_loop(),)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert peak[0] == 3 and budget.in_use == 0


def test_budget_slot_comes_back_when_a_waiter_is_cancelled() -> None:
    budget = RequestBudget(limit=1)

    async def main() -> None:
        await budget.acquire_async()
        waiter = asyncio.ensure_future(budget.acquire_async())
        await asyncio.sleep(0.01)
        waiter.cancel()
        budget.release()
        await asyncio.sleep(0.01)
        await asyncio.wait_for(budget.acquire_async(), 1)  # the slot was not lost
        budget.release()

    asyncio.run(main())
    assert budget.in_use == 0


# S3 through a failing proxy -------------------------------------------------------------------


@pytest.fixture
def proxy(s3_server, object_store: str) -> Iterator[LatencyProxy]:
    """A proxy in front of the S3 server; each test using it runs with each backend."""
    with LatencyProxy(s3_server.endpoint_url, seed=5) as p:
        yield p


def _seed_like(shape: tuple[int, int] = (60, 60)) -> np.ndarray:
    return np.random.default_rng(3).integers(-(2**31), 2**31 - 1, shape, dtype="int32")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_reads_and_writes_through_connection_resets_are_exact(
    s3_server, s3_store_url: str, proxy: LatencyProxy, zarr_format: int
) -> None:
    options = s3_server.storage_options(proxy.url)
    data = _seed_like()
    proxy.reset_rate = 0.2  # one request in five: connection reset before it reaches the server
    with dask.config.set(FAST):
        a = zf.create(
            s3_store_url, shape=data.shape, chunks=(10, 10), dtype="int32",
            zarr_format=zarr_format, storage_options=options,
        )  # fmt: skip
        a[:] = data
        a[5:15, 5:15] = -1  # partial writes: read-modify-write under resets too
        data[5:15, 5:15] = -1
        b = zf.open(s3_store_url, mode="r", storage_options=options)
        np.testing.assert_array_equal(b[:], data)
        np.testing.assert_array_equal(b.to_dask().compute(), data)
    assert proxy.resets >= 10  # the failures really happened
    proxy.reset_rate = 0.0
    np.testing.assert_array_equal(zf.open(s3_store_url, mode="r", storage_options=options)[:], data)


@pytest.mark.parametrize("status", [503, 429, 500])
def test_throttling_and_server_errors_are_retried(
    s3_server, s3_store_url: str, proxy: LatencyProxy, status: int
) -> None:
    options = s3_server.storage_options(proxy.url)
    data = _seed_like((30, 30))
    zf.create(
        s3_store_url, shape=data.shape, chunks=(10, 10), dtype="int32", storage_options=options
    )[:] = data
    proxy.fault_response = http_error_response(status)  # 503 is S3's SlowDown
    proxy.fault_rate = 0.3
    with dask.config.set(FAST):
        np.testing.assert_array_equal(
            zf.open(s3_store_url, mode="r", storage_options=options)[:], data
        )
    assert proxy.faults >= 2


def test_a_permanent_error_fails_fast_with_a_clear_message(
    s3_server, s3_store_url: str, proxy: LatencyProxy
) -> None:
    options = s3_server.storage_options(proxy.url)
    store = store_from_url(s3_store_url, options)
    store.set("c/0", b"chunk")
    proxy.fault_response = http_error_response(403)  # AccessDenied
    proxy.fault_rate = 1.0
    proxy.reset_counters()
    t0 = time.monotonic()
    with pytest.raises(zf.StoreError) as info:
        store.get("c/0")
    assert not isinstance(info.value, zf.TransientStoreError)
    message = str(info.value)
    assert s3_store_url in message and "'c/0'" in message and "credentials" in message
    assert proxy.requests == 1  # not retried
    assert time.monotonic() - t0 < 5


def test_a_read_that_keeps_failing_raises_and_never_reads_as_fill(
    s3_server, s3_store_url: str, proxy: LatencyProxy
) -> None:
    options = s3_server.storage_options(proxy.url)
    a = zf.create(
        s3_store_url, shape=(20, 20), chunks=(10, 10), dtype="f8", fill_value=np.nan,
        storage_options=options,
    )  # fmt: skip
    a[:] = 1.0
    b = zf.open(s3_store_url, mode="r", storage_options=options)
    proxy.reset_rate = 1.0
    proxy.reset_counters()
    retries = {"attempts": 3, "backoff": 0.01, "max_backoff": 0.02, "max_time": 10}
    with dask.config.set({"zarrflow.retries": retries}):
        with pytest.raises(zf.TransientStoreError, match=r"gave up after 3 attempt\(s\)") as info:
            b[:]
        with pytest.raises(zf.TransientStoreError):
            b.to_dask().compute()
    assert s3_store_url in str(info.value) and "c/" in str(info.value)
    assert proxy.requests >= 3 * 4  # every chunk was tried 3 times, no more
    proxy.reset_rate = 0.0
    assert (b[:] == 1.0).all()


def test_a_hanging_server_is_bounded_by_max_time(
    s3_server, s3_store_url: str, proxy: LatencyProxy
) -> None:
    store = store_from_url(s3_store_url, s3_server.storage_options(proxy.url))
    store.set("k", b"v")
    proxy.stall_rate = 1.0
    retries = {"attempts": 50, "backoff": 0.01, "max_backoff": 0.05, "max_time": 1.0}
    t0 = time.monotonic()
    with dask.config.set({"zarrflow.retries": retries}), pytest.raises(zf.TransientStoreError):
        store.get("k")
    assert time.monotonic() - t0 < 10


def test_each_attempt_is_exactly_one_request(
    s3_server, s3_store_url: str, proxy: LatencyProxy, object_store: str
) -> None:
    """One retry loop: with every request reset, ``attempts`` tries send ``attempts`` requests.

    A client retrying underneath zarrflow (obstore's ``max_retries`` or botocore's
    loop left on) would send more; the proxy counts what reaches it. With obstore
    it is exact (obstore's default retries send 11 requests for one try, checked).
    s3fs's stack re-sends a request once when its pooled connection is reset
    (6 requests for 3 tries, seen here): at most 2 per try.
    """
    store = store_from_url(s3_store_url, s3_server.storage_options(proxy.url))
    store.set("k", b"v")
    proxy.reset_rate = 1.0
    proxy.reset_counters()
    retries = {"attempts": 3, "backoff": 0.01, "max_backoff": 0.02, "max_time": 10}
    gave_up = pytest.raises(zf.TransientStoreError, match=r"gave up after 3 attempt\(s\)")
    with dask.config.set({"zarrflow.retries": retries}), gave_up:
        store.get("k")
    if object_store == "obstore":
        assert proxy.requests == 3
    else:
        assert 3 <= proxy.requests <= 6


# HTTP (obstore's HTTP store, fsspec's aiohttp filesystem) ------------------------------------


@pytest.fixture
def http_array(tmp_path: Path, object_store: str) -> Iterator[tuple[str, np.ndarray, LatencyProxy]]:
    data = _seed_like((40, 40))
    zf.create(tmp_path / "a.zarr", shape=data.shape, chunks=(10, 10), dtype="int32")[:] = data
    with StaticHTTPServer(tmp_path) as server, LatencyProxy(server.url, seed=2) as proxy:
        yield f"{proxy.url}/a.zarr", data, proxy


def test_http_reads_through_resets_and_throttling(http_array) -> None:
    url, data, proxy = http_array
    proxy.reset_rate, proxy.fault_rate = 0.2, 0.2
    proxy.fault_response = http_error_response(429)
    with dask.config.set(FAST):
        np.testing.assert_array_equal(zf.open(url, mode="r")[:], data)
    assert proxy.resets and proxy.faults


def test_http_forbidden_fails_fast(http_array) -> None:
    url, _, proxy = http_array
    a = zf.open(url, mode="r")
    proxy.fault_response = http_error_response(403)
    proxy.fault_rate = 1.0
    proxy.reset_counters()
    with pytest.raises(zf.StoreError, match=r"'c/0/0' in http://127\.0\.0\.1:\d+/a\.zarr") as info:
        a[:10, :10]
    assert not isinstance(info.value, zf.TransientStoreError) and proxy.requests == 1
