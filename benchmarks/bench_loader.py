"""Training batches: ``zarrflow.batches`` against a plain ``chunk_stream`` over the same array.

A 4096 × 1024 float32 array (16 MiB) in 64-row chunks of 256 KiB, zstd, and
a label array beside it. Each contender walks one epoch and touches every
row: ``chunk_stream`` in order (the reading floor: no shuffling, no batching),
``batches`` unshuffled, and ``batches`` shuffled with prefetch 1, 2, 4 and 8.
The table gives MB/s of uncompressed data and the ratio to the plain stream,
and the peak of live allocations (tracemalloc) of one epoch.

Run: ``python benchmarks/bench_loader.py [--quick] [--repeat N]``
"""

from __future__ import annotations

import numpy as np

import zarrflow as zf
from common import Case, TracedPeak, parse_args, print_header, run_table, scratch_dir


def _epoch(stream) -> int:
    rows = 0
    for batch in stream:
        rows += len(batch["x"])
    return rows


def main() -> None:
    args = parse_args(__doc__)
    print_header("bench_loader.py", args)
    rows = 1024 if args.quick else 4096
    with scratch_dir() as root:
        g = zf.open_group(f"{root}/train.zarr", mode="w")
        x = g.create_array(
            "x", shape=(rows, 1024), chunks=(64, 1024), dtype="f4", compressor="zstd"
        )
        rng = np.random.default_rng(0)
        x[:] = rng.standard_normal((rows, 1024), dtype="f4")
        g.create_array("y", shape=(rows,), chunks=(64,), dtype="i1")[:] = rng.integers(0, 2, rows)
        nbytes = x.nbytes + rows

        def plain_stream() -> int:
            return sum(c.shape[0] for _, c in x.chunk_stream(parallel=2))

        cases = {"chunk_stream(parallel=2), in order": Case(plain_stream, 2)}
        cases["batches(shuffle=False)"] = Case(
            lambda: _epoch(zf.batches(g, 256, shuffle=False, parallel=2)), 2
        )
        for prefetch in (1, 2, 4, 8):
            cases[f"batches(shuffle=True, prefetch={prefetch})"] = Case(
                lambda p=prefetch: _epoch(zf.batches(g, 256, seed=0, prefetch=p, parallel=2)), 2
            )
        table = run_table(
            f"one epoch over {rows} rows ({nbytes / 2**20:.0f} MiB), batches of 256",
            nbytes,
            x.nchunks,
            cases,
            args.repeat,
        )
        table.print()

        print("| contender | peak traced MiB |\n|---|---|")
        for label, case in cases.items():
            with TracedPeak() as peak:
                case.fn()
            print(f"| {label} | {(peak.peak - peak.baseline) / 2**20:.1f} |")


if __name__ == "__main__":
    main()
