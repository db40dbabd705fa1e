"""Issue 5: the ``remote`` workload — the seed array behind cloud-like latency.

Three setups, each measured in one run side by side with the peers. zarrflow
runs with each of its object-store backends: obstore (the default where it is
installed) and fsspec (s3fs / fsspec's aiohttp filesystem, selected with
``zarrflow.object_store = "fsspec"``).

(a) **S3**: moto's S3 server (a child process) behind
    :class:`~zarrflow.testing.latency_proxy.LatencyProxy` (a child process too)
    adding ``--s3-delay`` seconds (default 0.05) to every request; reads and
    writes. moto spends ~5–7 ms of Python per request (far more on a loaded
    machine) on one GIL, which caps what any client can do: the row "moto
    alone" (no proxy, 64 requests in flight) shows that floor.
(b) **HTTP**, read-only: a static file server (a ``ThreadingHTTPServer`` with a
    listen backlog of 1024, a child process) serving the array zarrflow wrote
    (Zarr v3, not consolidated), behind the proxy adding ``--http-delay``
    seconds (default 0.1) per request, read through fsspec's async HTTP
    filesystem. Contenders: one GET, a sequential loop (one chunk request at a
    time), zarrflow at ``zarrflow.io_concurrency`` 8/32/64 and at its defaults
    (``a[:]``, ``zf.open(url)[:]`` and ``to_dask().compute()``), zarr-python 3
    directly and with Dask, each at its defaults and best tuned
    (``async.concurrency`` 64; ``num_workers`` 64). The latency-bound ideal is
    ``ceil(chunks / concurrency) × one GET``.
(c) **Client CPU per GET**: moto's server (no proxy), 400 objects of 16 KiB,
    read by ``ObstoreStore`` and by ``FsspecStore`` (s3fs) from the same server
    in the same run — one batch (``get_many``) and one at a time (``get``). The
    CPU time of this process (every thread: obstore's tokio workers, fsspec's
    loop; the server is another process) divided by the 400 requests is what a
    request costs the client; on 2 cores it caps a remote read.

Every read is checked against the source data. Run:
``python benchmarks/bench_remote.py [--part a|b|c|all] [--repeat N]``
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np

import zarrflow as zf
from common import SEED, Case, Goals, Table, check_equal, print_header, run_table, scratch_dir
from zarrflow.storage import FsspecStore, ObstoreStore, store_from_url
from zarrflow.testing.processes import ServerProcess
from zarrflow.testing.s3_server import S3Server

NCHUNKS = SEED.nchunks


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["a", "b", "c", "all"], default="all")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions (default 5)")
    p.add_argument("--s3-delay", type=float, default=0.05, help="seconds per request, (a)")
    p.add_argument("--http-delay", type=float, default=0.1, help="seconds per request, (b)")
    args = p.parse_args()
    args.quick = False
    return args


def proxy_process(target: str, delay: float) -> ServerProcess:
    """A :class:`LatencyProxy` in a child process (its work stays off our GIL)."""
    return ServerProcess(
        "zarrflow.testing.latency_proxy", ["--target", target, "--delay", str(delay)]
    )


# contenders ---------------------------------------------------------------------------------


def checked(fn: Callable[[], np.ndarray], expected: np.ndarray, what: str) -> Callable[[], None]:
    """``fn()``, its result compared with the source data every time."""

    def run() -> None:
        check_equal(what, np.asarray(fn()), expected)

    return run


def with_config(config: dict[str, Any], fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with dask.config.set(config):
            return fn()

    return run


def sequential_loop(array: zf.Array) -> Callable[[], np.ndarray]:
    """One chunk request at a time (``a[chunk]`` chunk by chunk): the latency-bound worst case."""
    regions = [
        tuple(
            slice(i * c, min((i + 1) * c, s))
            for i, c, s in zip(idx, SEED.chunks, SEED.shape, strict=True)
        )
        for idx in np.ndindex(*array.chunk_grid_shape)
    ]

    def run() -> np.ndarray:
        out = np.empty(array.shape, dtype=array.dtype)
        for region in regions:
            out[region] = array[region]
        return out

    return run


FSSPEC = {"zarrflow.object_store": "fsspec"}


def zarrflow_reads(url: str, options: dict | None, data: np.ndarray) -> dict[str, Case]:
    """zarrflow at io_concurrency 8/32/64 and at its defaults; its fsspec backend too."""
    a = zf.open(url, mode="r", storage_options=options)
    with dask.config.set(FSSPEC):
        b = zf.open(url, mode="r", storage_options=options)
    cases = {
        "zarrflow `a[:]` (defaults)": Case(checked(lambda: a[:], data, "zf a[:]"), "io 64"),
        "zarrflow `zf.open(url)[:]` (defaults, open included)": Case(
            checked(lambda: zf.open(url, storage_options=options)[:], data, "zf open"), "io 64"
        ),
        "zarrflow `to_dask().compute()` (defaults)": Case(
            checked(lambda: a.to_dask().compute(), data, "zf to_dask"), "io 64"
        ),
    }
    for n in (8, 32, 64):
        read = with_config({"zarrflow.io_concurrency": n}, lambda: a[:])
        cases[f"zarrflow `a[:]`, io_concurrency={n}"] = Case(
            checked(read, data, f"zf io {n}"), f"io {n}"
        )
    cases |= {
        "zarrflow `a[:]`, fsspec backend": Case(
            checked(lambda: b[:], data, "fsspec a[:]"), "io 64"
        ),
        "zarrflow `to_dask().compute()`, fsspec backend": Case(
            checked(lambda: b.to_dask().compute(), data, "fsspec to_dask"), "io 64"
        ),
    }
    return cases


def zarr_python_reads(zarr_store: Any, data: np.ndarray) -> dict[str, Case]:
    """zarr-python direct and with Dask, each at its defaults and best tuned."""
    import zarr

    z = zarr.open_array(zarr_store, mode="r")
    default_c = zarr.config.get("async.concurrency")

    def tuned_zarr() -> np.ndarray:
        with zarr.config.set({"async.concurrency": 64}):
            return z[:]

    x = da.from_zarr(z)
    return {
        "zarr-python `arr[:]` (defaults)": Case(
            checked(lambda: z[:], data, "zarr"), f"async {default_c}"
        ),
        "zarr-python `arr[:]`, async.concurrency=64": Case(
            checked(tuned_zarr, data, "zarr tuned"), "async 64"
        ),
        "zarr-python + Dask (defaults)": Case(
            checked(lambda: x.compute(), data, "zarr+dask"), f"{os.cpu_count()} threads"
        ),
        "zarr-python + Dask, num_workers=64": Case(
            checked(lambda: x.compute(num_workers=64), data, "zarr+dask tuned"), "64 threads"
        ),
    }


def one_get(url: str, options: dict | None, key: str) -> Callable[[], None]:
    store = store_from_url(url, options, read_only=True)  # the default backend
    return lambda: store.get(key)


# (b) HTTP -----------------------------------------------------------------------------------


def bench_http(root: str, data: np.ndarray, delay: float, repeat: int) -> tuple[Table, Goals]:
    path = os.path.join(root, "seed.zarr")
    SEED.create(path)[:] = data
    with (
        ServerProcess("zarrflow.testing.http_server", ["--directory", root]) as server,
        proxy_process(server.url, delay) as proxy,
    ):
        import zarr

        url = f"{proxy.url}/seed.zarr"
        a = zf.open(url, mode="r")
        cases = {"one GET (one chunk)": Case(one_get(url, None, "c/0/0"), "1")}
        cases |= zarrflow_reads(url, None, data)
        cases["sequential loop (one request at a time)"] = Case(
            checked(sequential_loop(a), data, "sequential"), "1"
        )
        peer = zarr.storage.FsspecStore.from_url(url, read_only=True)
        cases |= zarr_python_reads(peer, data)
        title = (
            f"(b) HTTP read, {SEED.title}, +{delay * 1e3:.0f} ms per request "
            "(static server on 127.0.0.1 behind the proxy)"
        )
        table = run_table(title, SEED.nbytes, NCHUNKS, _reordered(cases), repeat)
    return table, http_goals(table)


def _reordered(cases: dict[str, Case]) -> dict[str, Case]:
    """zarrflow's default row first: the reference of every ratio."""
    first = "zarrflow `a[:]` (defaults)"
    return {first: cases[first], **{k: v for k, v in cases.items() if k != first}}


def http_goals(table: Table) -> Goals:
    goals = Goals()
    t = {r.label: r.timing.median for r in table.rows}
    zf_default = t["zarrflow `a[:]` (defaults)"]
    zf_dask = t["zarrflow `to_dask().compute()` (defaults)"]
    for peer, ours in [
        ("zarr-python `arr[:]` (defaults)", zf_default),
        ("zarr-python + Dask (defaults)", zf_dask),
    ]:
        goals.at_most(f"zarrflow defaults ≥ 3× faster than {peer}", ours, t[peer] / 3, "s")
    best_zarr = t["zarr-python `arr[:]`, async.concurrency=64"]
    best_dask = t["zarr-python + Dask, num_workers=64"]
    goals.at_most("zarrflow `a[:]` defaults no slower than zarr-python tuned", zf_default,
                  best_zarr, "s")  # fmt: skip
    goals.at_most("zarrflow `to_dask` defaults no slower than zarr + Dask tuned", zf_dask,
                  best_dask, "s")  # fmt: skip
    ideal = math.ceil(NCHUNKS / 64) * t["one GET (one chunk)"]
    goals.at_most(
        f"io_concurrency=64 within 1.5× of the ideal ({ideal:.3f} s = ceil(100/64) × one GET)",
        t["zarrflow `a[:]`, io_concurrency=64"],
        1.5 * ideal,
        "s",
    )
    goals.at_most("defaults (`a[:]`) within 1.5× of the ideal", zf_default, 1.5 * ideal, "s")
    return goals


# (a) S3 -------------------------------------------------------------------------------------


def s3_write_cases(s3: S3Server, options: dict, data: np.ndarray) -> dict[str, Case]:
    """Writes of the seed array through the proxy: zarrflow's paths and zarr-python's."""
    import zarr

    a = SEED.create("s3://bench/write-zf.zarr", storage_options=options)
    x = da.from_array(data, chunks=SEED.chunks)
    store = ObstoreStore("s3://bench/write-batch.zarr", options)
    fsspec_store = FsspecStore("s3://bench/write-batch-fsspec.zarr", options)
    encoder = SEED.create("memory://bench-remote-encoded")  # the same chunks, encoded once
    encoder[:] = data
    encoded = {k: encoder.store.get(k) for k in encoder.store.list_prefix("c/")}
    SEED.create("s3://bench/write-zarr.zarr", storage_options=options)
    peer = zarr.open_array(
        zarr.storage.FsspecStore.from_url("s3://bench/write-zarr.zarr", storage_options=options),
        mode="r+",
    )

    def assign() -> None:
        a[:] = data

    def to_zarr() -> None:
        zf.to_zarr(x, a)

    def zarr_assign() -> None:
        peer[:] = data

    def zarr_dask_store() -> None:
        x.store(peer, lock=False)

    return {
        "zarrflow `a[:] = x` (defaults)": Case(assign, "Dask threads"),
        "zarrflow `to_zarr(dask_array)` (defaults)": Case(to_zarr, "Dask threads"),
        "ObstoreStore.set_many(100 encoded chunks) (batched PUTs)": Case(
            lambda: store.set_many(encoded), "io 64", note="what a batched write path gives"
        ),
        "FsspecStore.set_many(100 encoded chunks) (batched PUTs)": Case(
            lambda: fsspec_store.set_many(encoded), "io 64", note="the same through s3fs"
        ),
        "zarr-python `arr[:] = x` (defaults)": Case(zarr_assign, "async 10"),
        "zarr-python + Dask `x.store(arr)` (defaults)": Case(zarr_dask_store, "Dask threads"),
    }


def bench_s3(data: np.ndarray, delay: float, repeat: int) -> list[Table]:
    import zarr

    with S3Server() as s3, proxy_process(s3.endpoint_url, delay) as proxy:
        s3.create_bucket("bench")
        direct, options = s3.storage_options(), s3.storage_options(proxy.url)
        url = "s3://bench/seed.zarr"
        SEED.create(url, storage_options=direct)[:] = data
        cases = {"one GET (one chunk)": Case(one_get(url, options, "c/0/0"), "1")}
        cases |= zarrflow_reads(url, options, data)
        moto = zf.open(url, mode="r", storage_options=direct)
        cases["moto alone: zarrflow `a[:]`, no proxy"] = Case(
            checked(lambda: moto[:], data, "moto alone"), "io 64", note="the server's floor"
        )
        peer = zarr.storage.FsspecStore.from_url(url, storage_options=options, read_only=True)
        cases |= zarr_python_reads(peer, data)
        title = f"(a) S3 read (moto), {SEED.title}, +{delay * 1e3:.0f} ms per request"
        reads = run_table(title, SEED.nbytes, NCHUNKS, _reordered(cases), repeat)
        reads.print()
        title = f"(a) S3 write (moto), {SEED.title}, +{delay * 1e3:.0f} ms per request"
        writes = run_table(title, SEED.nbytes, NCHUNKS, s3_write_cases(s3, options, data), repeat)
        writes.print()
    return [reads, writes]


# (c) client CPU per GET -----------------------------------------------------------------------

CPU_GETS, CPU_SIZE = 400, 16 * 2**10


def bench_client_cpu(repeat: int) -> tuple[Table, Goals]:
    """Client CPU per GET, obstore vs s3fs, one moto server, one run."""
    with S3Server() as s3:
        s3.create_bucket("cpu")
        options = s3.storage_options()
        values = {f"c/{i}": np.random.default_rng(i).bytes(CPU_SIZE) for i in range(CPU_GETS)}
        keys = list(values)
        expected = list(values.values())
        stores = {
            "obstore": ObstoreStore("s3://cpu/objects", options),
            "s3fs": FsspecStore("s3://cpu/objects", options),
        }
        stores["obstore"].set_many(values)

        def batch(store: Any) -> Callable[[], None]:
            def run() -> None:
                if store.get_many(keys) != expected:
                    raise AssertionError("get_many returned other bytes")

            return run

        def each(store: Any) -> Callable[[], None]:
            def run() -> None:
                if [store.get(k) for k in keys] != expected:
                    raise AssertionError("get returned other bytes")

            return run

        cases = {
            "ObstoreStore `get_many` (400 keys)": Case(batch(stores["obstore"]), "io 64"),
            "FsspecStore (s3fs) `get_many` (400 keys)": Case(batch(stores["s3fs"]), "io 64"),
            "ObstoreStore `get`, one at a time": Case(each(stores["obstore"]), "1"),
            "FsspecStore (s3fs) `get`, one at a time": Case(
                each(stores["s3fs"]), "1", ref="ObstoreStore `get`, one at a time"
            ),
        }
        title = (
            f"(c) client CPU per GET: {CPU_GETS} GETs of {CPU_SIZE // 1024} KiB from moto "
            "(no proxy); CPU µs/chunk = client CPU per GET"
        )
        table = run_table(title, CPU_GETS * CPU_SIZE, CPU_GETS, cases, repeat)
    goals = Goals()
    for label in ("ObstoreStore `get_many` (400 keys)", "ObstoreStore `get`, one at a time"):
        per_get = table.timing(label).cpu / CPU_GETS * 1e3
        goals.at_most(f"client CPU per GET ≤ 1 ms: {label}", per_get, 1.0, "ms")
    return table, goals


def main() -> None:
    args = parse_args()
    print_header("bench_remote.py", args)
    data = SEED.data()
    if args.part in ("c", "all"):
        table, goals = bench_client_cpu(args.repeat)
        table.print()
        goals.print()
    if args.part in ("a", "all"):
        bench_s3(data, args.s3_delay, args.repeat)
    if args.part in ("b", "all"):
        with scratch_dir() as root:
            table, goals = bench_http(root, data, args.http_delay, args.repeat)
        table.print()
        goals.print()


if __name__ == "__main__":
    main()
