"""Issue 15: what telemetry costs on small chunks, with no hook and with ``zf.profile()``.

Workload: a 4096 x 4096 uint8 array in 64 x 64 chunks (4096 chunks of 4 KiB,
zstd, local disk), read whole with ``a[:]``. Contenders, each in a fresh
Python process, taken round-robin (A, B, C, A, B, C, ...) so that load from
neighbours on this shared machine hits them alike:

* ``before`` — the source tree *without* the instrumentation (``--baseline``:
  a checkout of the commit before it; made with ``git worktree add``),
* ``no hook`` — this tree, no hook registered (the default),
* ``profile`` — this tree inside ``with zf.profile():``.

Each process times ``--inner`` reads after one warm-up and reports its best
wall-clock and CPU (``process_time``: every thread) times; the table shows
the median over processes and the overhead against ``before``. Run::

    git worktree add /tmp/zf-before <commit before the instrumentation>
    python benchmarks/bench_telemetry.py --baseline /tmp/zf-before/src --rounds 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import contextlib, sys, time
import zarrflow as zf
a = zf.open_array(sys.argv[1], mode="r")
profiled = sys.argv[2] == "profile"
a[:]
times, cpu = [], []
for _ in range(int(sys.argv[3])):
    with zf.profile() if profiled else contextlib.nullcontext():
        c0 = time.process_time(); t0 = time.perf_counter(); a[:]
        times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
print(min(times), min(cpu))
"""


def child(src: str, path: str, mode: str, inner: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path, mode, str(inner)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu = out.stdout.split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="src/ of the tree without telemetry")
    parser.add_argument(
        "--current", default=None, help="src/ of the tree measured (default: this one's)"
    )
    parser.add_argument("--rounds", type=int, default=9, help="fresh processes per contender")
    parser.add_argument("--inner", type=int, default=7, help="timed reads per process")
    args = parser.parse_args()
    here = args.current or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"
    )
    sys.path.insert(0, here)
    import numpy as np

    import zarrflow as zf

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "small.zarr")
        a = zf.create(path, shape=(4096, 4096), chunks=(64, 64), dtype="u1", compressor="zstd")
        a[:] = np.random.default_rng(0).integers(0, 8, (4096, 4096), dtype="u1")
        contenders = {
            "before": (args.baseline, "plain"),
            "no hook": (here, "plain"),
            "profile": (here, "profile"),
        }
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in contenders}
        for _ in range(args.rounds):
            for name, (src, mode) in contenders.items():
                results[name].append(child(src, path, mode, args.inner))
    base_wall = statistics.median(w for w, _ in results["before"])
    base_cpu = statistics.median(c for _, c in results["before"])
    print(
        "| contender | wall ms, median of processes | vs before | CPU ms, median | vs before "
        "| wall ms, best process |"
    )
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(
            f"| {name} | {wall * 1e3:.1f} | {(wall / base_wall - 1) * 100:+.1f} % "
            f"| {cpu * 1e3:.1f} | {(cpu / base_cpu - 1) * 100:+.1f} % "
            f"| {min(w for w, _ in runs) * 1e3:.1f} |"
        )


if __name__ == "__main__":
    main()
