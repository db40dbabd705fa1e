"""Issue 15: what telemetry costs on small chunks, with no hook and with ``zf.profile()``.

Workload: a 4096 x 4096 uint8 array in 64 x 64 chunks (4096 chunks of 4 KiB,
zstd, local disk), read whole with ``a[:]``. Contenders, each in a fresh
Python process, taken round-robin (A, B, C, A, B, C, ...) so that load from
neighbours on this shared machine hits them alike:

* ``before`` — the source tree *without* the instrumentation (``--baseline``:
  a checkout of the commit before it; made with ``git worktree add``),
* ``no hook`` — this tree, no hook registered (the default),
* ``profile`` — this tree inside ``with zf.profile():``.

Each process times ``--inner`` reads after one warm-up and prints the median;
the table shows the median over processes and the overhead against
``before``. Run::

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
import statistics, sys, time
import zarrflow as zf
a = zf.open_array(sys.argv[1], mode="r")
profiled = sys.argv[2] == "profile"
a[:]
times = []
for _ in range(int(sys.argv[3])):
    if profiled:
        with zf.profile():
            t0 = time.perf_counter(); a[:]; times.append(time.perf_counter() - t0)
    else:
        t0 = time.perf_counter(); a[:]; times.append(time.perf_counter() - t0)
print(statistics.median(times))
"""


def child(src: str, path: str, mode: str, inner: int) -> float:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path, mode, str(inner)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="src/ of the tree without telemetry")
    parser.add_argument("--rounds", type=int, default=9, help="fresh processes per contender")
    parser.add_argument("--inner", type=int, default=7, help="timed reads per process")
    args = parser.parse_args()
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
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
        results: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(args.rounds):
            for name, (src, mode) in contenders.items():
                results[name].append(child(src, path, mode, args.inner))
    base = statistics.median(results["before"])
    print("| contender | median ms (a[:], 4096 chunks) | min | max | vs before |")
    print("|---|---|---|---|---|")
    for name, times in results.items():
        med = statistics.median(times)
        print(
            f"| {name} | {med * 1e3:.1f} | {min(times) * 1e3:.1f} | {max(times) * 1e3:.1f} "
            f"| {(med / base - 1) * 100:+.1f} % |"
        )


if __name__ == "__main__":
    main()
