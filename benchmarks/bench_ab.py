"""Issue 14: full reads as alternating fresh processes, for a machine too loaded for one run.

Each contender reads the same array in a fresh interpreter (one warm-up, then
``--repeat`` timed reads; median wall clock and process CPU time), and the
contenders take turns, ``--rounds`` times: a burst of a neighbour's load then
lands on one process of one contender, not on all its repetitions. Contenders:
zarrflow ``a.to_dask().compute()`` (Dask's threaded scheduler) and ``a[:]``,
tensorstore's ``read()``, zarrs-python's ``arr[:]`` (zarr-python with the
``ZarrsCodecPipeline``), zarr-python + Dask ``da.from_zarr(arr).compute()``.

Run: ``python benchmarks/bench_ab.py [--workload NAME] [--rounds N] [--repeat N]``
(workloads: ``seed``, ``large-zstd``, ``large-blosc``, ``sharded``, ``small-chunks``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from common import (
    LARGE_BLOSC,
    LARGE_ZSTD,
    SEED,
    SMALL_CHUNKS,
    markdown_table,
    optional,
    scratch_dir,
    ts_array,
    zarr_array,
    zarrs_array,
)

WORKLOADS = {
    "seed": SEED,
    "large-zstd": LARGE_ZSTD,
    "large-blosc": LARGE_BLOSC,
    "sharded": LARGE_ZSTD,
    "small-chunks": SMALL_CHUNKS,
}
#: each contender and the module it needs
CONTENDERS = {
    "zarrflow to_dask": "zarrflow",
    "zarrflow a[:]": "zarrflow",
    "tensorstore": "tensorstore",
    "zarrs-python": "zarrs",
    "zarr-python+dask": "zarr",
}


def reader(contender: str, path: str) -> Callable[[], Any]:
    """The full read of ``path`` by one contender."""
    if contender.startswith("zarrflow"):
        import zarrflow as zf

        a = zf.open(path)
        return (lambda: a.to_dask().compute()) if "to_dask" in contender else (lambda: a[:])
    if contender == "tensorstore":
        t = ts_array(path)
        return lambda: t.read().result()
    if contender == "zarrs-python":
        z = zarrs_array(path)
        return lambda: z[:]
    import dask.array as da

    z = zarr_array(path)
    return lambda: da.from_zarr(z).compute()


def child(contender: str, path: str, repeat: int) -> None:
    """Time ``repeat`` reads after one warm-up; print the medians as JSON."""
    import dask

    dask.config.set(scheduler="threads")
    read = reader(contender, path)
    read()
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        read()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    print(json.dumps({"wall": statistics.median(walls), "cpu": statistics.median(cpus)}))


def make_array(name: str, path: str) -> None:
    wl = WORKLOADS[name]
    shards = {"shards": (2048, 2048)} if name == "sharded" else {}
    a = wl.create(path, **shards)
    a[:] = wl.data()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=list(WORKLOADS), default="large-zstd")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--child", nargs=2, metavar=("CONTENDER", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.repeat)
        return
    here = os.path.dirname(os.path.abspath(__file__))
    present = [c for c, module in CONTENDERS.items() if optional(module)]
    runs: dict[str, list[dict]] = {c: [] for c in present}
    with scratch_dir() as root:
        path = os.path.join(root, "a.zarr")
        make_array(args.workload, path)
        for r in range(args.rounds):
            for contender in present[r % len(present) :] + present[: r % len(present)]:
                cmd = [sys.executable, os.path.join(here, "bench_ab.py"), "--repeat"]
                cmd += [str(args.repeat), "--child", contender, path]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=here)
                runs[contender].append(json.loads(out.stdout.strip().splitlines()[-1]))
    ref = statistics.median(x["wall"] for x in runs[present[0]])
    ref_cpu = statistics.median(x["cpu"] for x in runs[present[0]])
    rows = []
    for contender, results in runs.items():
        wall = statistics.median(x["wall"] for x in results)
        cpu = statistics.median(x["cpu"] for x in results)
        rows.append(
            (
                contender,
                ", ".join(f"{x['wall'] * 1e3:.1f}" for x in results),
                ", ".join(f"{x['cpu'] * 1e3:.1f}" for x in results),
                f"{wall / ref:.2f}",
                f"{cpu / ref_cpu:.2f}",
            )
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    title = f"{args.workload}: {WORKLOADS[args.workload].title} — load average now {load}"
    header = ("contender", "wall ms (per process)", "CPU ms (per process)", "ratio", "CPU ratio")
    print(markdown_table(title, header, rows))
    print("ratio: median over processes, t(contender) / t(zarrflow to_dask); above 1 = slower")


if __name__ == "__main__":
    main()
