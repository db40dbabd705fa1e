"""Issue 15: the chunk cache on a remote store — repeated ``a[sel]`` over a hot set.

Setup: moto's S3 server (a child process) behind the latency proxy (a child
process, ``--delay`` seconds per request, default 0.05); a 2048 x 2048
float32 array in 128 x 128 chunks (256 chunks of 64 KiB, zstd). Workload:
``--reads`` selections of 256 x 256 at random offsets, 90 % of them inside a
hot region of 768 x 768 (at most 49 chunks, 3 MiB decoded) and 10 % anywhere
(seeded: every contender reads the same sequence). Contenders, each a fresh
``zf.open`` (an empty cache), run round-robin ``--repeat`` times:

* ``no cache`` — the default;
* ``cache 32 MiB`` — ``chunk_cache=32 * 2**20``: every hit is revalidated
  with an ``If-None-Match`` GET (a round trip, no bytes, no decode): never stale;
* ``cache 32 MiB, max_age 60 s`` — hits younger than a minute are served
  without asking S3 (the opt-in staleness bound);
* ``cache 1 MiB`` — a bound smaller than the hot set (LRU churn).

Reported per contender: median seconds for the sequence, speed-up over no
cache, hit ratio, the cache's peak bytes against its bound (sampled after
every read), and every result checked against the data.

A local table first: opening 200 arrays of a group on local disk with and
without the metadata cache (each cache lives across the rounds, so it is
warm after the first). A remote table opens ``--arrays`` arrays of one (not
consolidated) group, twice, with ``zf.open_array(url, path=name)``: without the metadata cache,
with it (``zarrflow.metadata_cache_entries``; each open revalidated), and
with ``zarrflow.metadata_cache_max_age`` 60 s. Run::

    python benchmarks/bench_cache.py [--reads 60] [--repeat 3] [--delay 0.05] [--arrays 40]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import zarrflow as zf
from zarrflow.testing.processes import ServerProcess
from zarrflow.testing.s3_server import S3Server

SHAPE, CHUNKS, WINDOW, HOT = (2048, 2048), (128, 128), 256, 768
MiB = 2**20


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reads", type=int, default=60, help="selections per sequence")
    p.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--delay", type=float, default=0.05, help="seconds per request")
    p.add_argument("--arrays", type=int, default=40, help="arrays opened, metadata table")
    return p.parse_args()


def selections(n: int, seed: int = 0) -> list[tuple[slice, slice]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        limit = HOT if rng.random() < 0.9 else SHAPE[0]
        i, j = rng.integers(0, limit - WINDOW + 1, size=2)
        out.append((slice(int(i), int(i) + WINDOW), slice(int(j), int(j) + WINDOW)))
    return out


def run(url: str, options: dict, cache, sels, data) -> tuple[float, float, int]:
    """Seconds for the sequence, the hit ratio, and the cache's peak bytes."""
    a = zf.open(url, mode="r", storage_options=options, chunk_cache=cache)
    peak = 0
    t0 = time.perf_counter()
    for sel in sels:
        got = a[sel]
        if a.chunk_cache is not None:
            peak = max(peak, a.chunk_cache.nbytes)
        if not np.array_equal(got, data[sel]):
            raise AssertionError(f"wrong data for {sel}")
    seconds = time.perf_counter() - t0
    ratio = a.chunk_cache.hit_ratio if a.chunk_cache is not None else 0.0
    return seconds, ratio, peak


def open_many(url: str, options: dict, names: list[str], config: dict) -> float:
    """Seconds to open every array twice, under ``config``."""
    import dask

    with dask.config.set(config):
        t0 = time.perf_counter()
        for _ in range(2):
            for name in names:
                zf.open_array(url, path=name, mode="r", storage_options=options)
        return time.perf_counter() - t0


def metadata_table(url: str, direct: dict, options: dict, n: int, repeat: int) -> None:
    g = zf.open_group(url, mode="w", storage_options=direct)
    names = [f"a{i}" for i in range(n)]
    for name in names:
        g.create_array(name, shape=(10,), chunks=(5,), dtype="f4")
    contenders = {
        "no metadata cache": {"zarrflow.metadata_cache_entries": 0},
        "metadata cache": {"zarrflow.metadata_cache_entries": 4096},
        "metadata cache, max_age 60 s": {
            "zarrflow.metadata_cache_entries": 4096,
            "zarrflow.metadata_cache_max_age": 60,
        },
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for i in range(repeat):
        for name, config in contenders.items():
            fresh = dict(config)
            if fresh["zarrflow.metadata_cache_entries"]:
                fresh["zarrflow.metadata_cache_entries"] += i  # a new, empty cache each round
            times[name].append(open_many(url, options, names, fresh))
    base = statistics.median(times["no metadata cache"])
    print(f"\nopening {n} arrays of one group twice ({2 * n} opens), median of {repeat}\n")
    print("| contender | seconds | ms per open | speed-up |")
    print("|---|---|---|---|")
    for name, runs in times.items():
        seconds = statistics.median(runs)
        print(f"| {name} | {seconds:.2f} | {seconds / (2 * n) * 1e3:.0f} | {base / seconds:.2f}x |")


def local_metadata_table(n: int, repeat: int) -> None:
    """Opening ``n`` arrays of a group on local disk (attributes of ~1 KiB each)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        url = f"{tmp}/group.zarr"
        g = zf.open_group(url, mode="w")
        names = [f"a{i}" for i in range(n)]
        for name in names:
            g.create_array(name, shape=(10,), chunks=(5,), dtype="f4", attributes={"v": [0] * 200})
        contenders = {
            "no metadata cache": {"zarrflow.metadata_cache_entries": 0},
            "metadata cache": {"zarrflow.metadata_cache_entries": 100_000},
            "metadata cache, max_age 60 s": {
                "zarrflow.metadata_cache_entries": 200_000,
                "zarrflow.metadata_cache_max_age": 60,
            },
        }
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(repeat):
            for name, config in contenders.items():
                times[name].append(open_many(url, None, names, config) / 2)
    base = statistics.median(times["no metadata cache"])
    print(f"\nlocal disk: opening {n} arrays of one group (warm cache), median of {repeat}\n")
    print("| contender | µs per open | speed-up |")
    print("|---|---|---|")
    for name, runs in times.items():
        seconds = statistics.median(runs)
        print(f"| {name} | {seconds / n * 1e6:.0f} | {base / seconds:.2f}x |")


def main() -> None:
    args = parse_args()
    local_metadata_table(200, 5)
    data = np.random.default_rng(1).integers(0, 100, SHAPE).astype("f4")
    sels = selections(args.reads)
    contenders = {
        "no cache": (None, None),
        "cache 32 MiB": (32 * MiB, None),
        "cache 32 MiB, max_age 60 s": (32 * MiB, 60.0),
        "cache 1 MiB": (1 * MiB, None),
    }
    results: dict[str, list[tuple[float, float, int]]] = {k: [] for k in contenders}
    with (
        S3Server() as s3,
        ServerProcess(
            "zarrflow.testing.latency_proxy",
            ["--target", s3.endpoint_url, "--delay", str(args.delay)],
        ) as proxy,
    ):
        s3.create_bucket("bench-cache")
        url = "s3://bench-cache/hot.zarr"
        direct = s3.storage_options()
        a = zf.create(url, shape=SHAPE, chunks=CHUNKS, dtype="f4", storage_options=direct)
        a[:] = data
        options = s3.storage_options(proxy.url)
        metadata_table("s3://bench-cache/group.zarr", direct, options, args.arrays, args.repeat)
        for _ in range(args.repeat):
            for name, (nbytes, max_age) in contenders.items():
                cache = None if nbytes is None else zf.ChunkCache(nbytes, max_age=max_age)
                results[name].append(run(url, options, cache, sels, data))
    base = statistics.median(r[0] for r in results["no cache"])
    print(
        f"{args.reads} reads of {WINDOW}x{WINDOW} float32 (90 % in a {HOT}x{HOT} hot region), "
        f"S3 (moto) behind a {args.delay * 1e3:.0f} ms proxy, median of {args.repeat}\n"
    )
    print(
        "| contender | seconds | ms per read | speed-up | hit ratio | peak cache MiB | bound MiB |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        seconds = statistics.median(r[0] for r in runs)
        ratio = statistics.median(r[1] for r in runs)
        peak = max(r[2] for r in runs)
        bound = contenders[name][0]
        if bound is not None and peak > bound:
            raise AssertionError(f"{name}: the cache held {peak} bytes, over its bound {bound}")
        print(
            f"| {name} | {seconds:.2f} | {seconds / args.reads * 1e3:.0f} | {base / seconds:.2f}x "
            f"| {ratio:.0%} | {peak / MiB:.1f} | {'-' if bound is None else bound // MiB} |"
        )


if __name__ == "__main__":
    main()
