"""``zarrflow bench``: a ~20-second side-by-side of zarrflow and its peers.

A small version of ``benchmarks/bench_local.py`` and ``benchmarks/bench_dask.py``
on the ``seed`` workload (1000×1000 int32, 100×100 chunks, zstd: full write,
full read, read through Dask) and the ``small-chunks`` one (4096×4096 uint8,
64×64 chunks, zstd: full read, read through Dask). zarr-python and tensorstore
are optional: a peer that is not installed is left out. Every contender reads
the same files (written by zarrflow) and writes its own copy of the array;
repetitions are taken round-robin so a burst of load hits everyone alike.
For figures worth quoting, run the scripts in ``benchmarks/``.
"""

from __future__ import annotations

import importlib
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

__all__ = ["quick_bench"]

_PEERS = ("zarr-python", "tensorstore")


@dataclass(frozen=True)
class _Workload:
    name: str
    shape: tuple[int, int]
    chunks: tuple[int, int]
    dtype: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def nchunks(self) -> int:
        return math.prod(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))

    def data(self) -> np.ndarray:
        """A smooth field plus noise (compresses like measured data, not like zeros)."""
        rng = np.random.default_rng(0)
        y, x = np.ogrid[: self.shape[0], : self.shape[1]]
        field = np.sin(y / 97.0) * np.cos(x / 61.0)
        field = field + rng.normal(0, 0.02, self.shape)
        if self.dtype == "uint8":
            return np.clip((field + 1.1) * (255 / 2.2), 0, 255).astype("uint8")
        return np.round(field * 1000).astype(self.dtype)


SEED = _Workload("seed", (1000, 1000), (100, 100), "int32")
SMALL_CHUNKS = _Workload("small-chunks", (4096, 4096), (64, 64), "uint8")


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _median_times(cases: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """One warm-up each, then the median of ``repeat`` round-robin runs (seconds)."""
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


class _Contenders:
    """zarrflow and the importable peers, opened over the arrays of one workload."""

    def __init__(self, root: str, wl: _Workload) -> None:
        import zarrflow as zf

        self.wl = wl
        self.root = root
        self.zf = zf
        self.zarr = _import("zarr")
        self.ts = _import("tensorstore")

    def create(self, name: str) -> str:
        path = os.path.join(self.root, f"{self.wl.name}-{name}.zarr")
        self.zf.create(
            path,
            shape=self.wl.shape,
            chunks=self.wl.chunks,
            dtype=self.wl.dtype,
            compressor=("zstd", {"level": 3}),
            overwrite=True,
        )
        return path

    def open_zarr(self, path: str) -> Any:
        return self.zarr.open_array(path, mode="r+") if self.zarr else None

    def open_ts(self, path: str) -> Any:
        if not self.ts:
            return None
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}
        return self.ts.open(spec).result()


def _write_cases(c: _Contenders, data: np.ndarray) -> dict[str, dict[str, Callable[[], Any]]]:
    a = c.zf.open(c.create("zarrflow"))
    z = c.open_zarr(c.create("zarr-python"))
    t = c.open_ts(c.create("tensorstore"))

    def assign(target: Any) -> Callable[[], None]:
        def run() -> None:
            target[:] = data

        return run

    row = {"zarrflow": assign(a)}
    if z is not None:
        row["zarr-python"] = assign(z)
    if t is not None:
        row["tensorstore"] = lambda: t.write(data).result()
    return {"write `a[:] = x`": row}


def _read_cases(c: _Contenders, data: np.ndarray) -> dict[str, dict[str, Callable[[], Any]]]:
    import dask.array as da

    path = c.create("read")
    a = c.zf.open(path, mode="r+")
    a[:] = data
    z = c.open_zarr(path)
    t = c.open_ts(path)
    direct: dict[str, Callable[[], Any]] = {"zarrflow": lambda: a[:]}
    dask: dict[str, Callable[[], Any]] = {"zarrflow": lambda: a.to_dask().compute()}
    if z is not None:
        direct["zarr-python"] = lambda: z[:]
        dask["zarr-python"] = lambda: da.from_zarr(z).compute()
    if t is not None:
        direct["tensorstore"] = dask["tensorstore"] = lambda: t.read().result()
    return {"read `a[:]`": direct, "read `to_dask().compute()`": dask}


def _row(wl: _Workload, op: str, medians: dict[str, float]) -> str:
    base = medians["zarrflow"]
    cells = [
        f"{wl.name} {op}",
        f"{base * 1e3:.1f}",
        f"{wl.nbytes / base / 1e6:,.0f}",
        f"{base / wl.nchunks * 1e6:,.1f}",
    ]
    for peer in _PEERS:
        if peer in medians:
            cells += [f"{medians[peer] * 1e3:.1f}", f"{medians[peer] / base:.2f}"]
        else:
            cells += ["—", "—"]
    return "| " + " | ".join(cells) + " |"


def quick_bench(repeat: int, out: TextIO) -> None:
    """Write a markdown table comparing zarrflow with zarr-python and tensorstore to ``out``.

    Parameters
    ----------
    repeat
        Timed repetitions per case (after one warm-up); the median is shown.
    out
        Where the table goes.

    Examples
    --------
    >>> import io
    >>> buf = io.StringIO()
    >>> quick_bench(repeat=3, out=buf)  # doctest: +SKIP
    >>> print(buf.getvalue())  # doctest: +SKIP
    """
    repeat = max(1, int(repeat))
    present = [p for p, m in zip(_PEERS, ("zarr", "tensorstore"), strict=True) if _import(m)]
    out.write(
        f"zarrflow bench: median of {repeat} runs after a warm-up; ratio = t(peer) / "
        "t(zarrflow), above 1 means zarrflow is faster.\n"
        f"Peers found: {', '.join(present) or 'none'}. For full figures run "
        "`python benchmarks/<name>.py`.\n\n"
        "| case | zarrflow ms | zarrflow MB/s | zarrflow µs/chunk | zarr-python ms | ratio "
        "| tensorstore ms | ratio |\n" + "|---" * 8 + "|\n"
    )
    with tempfile.TemporaryDirectory(prefix="zarrflow-bench-") as root:
        for wl in (SEED, SMALL_CHUNKS):
            c = _Contenders(root, wl)
            data = wl.data()
            cases = _read_cases(c, data)
            if wl is SEED:
                cases = {**_write_cases(c, data), **cases}
            for op, contenders in cases.items():
                out.write(_row(wl, op, _median_times(contenders, repeat)) + "\n")
