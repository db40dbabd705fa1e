"""Issue 4: sharded Zarr v3 writes and reads through Dask, against the peers.

Workload ``large`` (8192×8192 float32, a smooth field plus noise, zstd level
3) stored as 2048×2048 shards of 512×512 inner chunks (16 shards of 16 inner
chunks; index at the end with crc32c, as all three write by default).
Contenders, in one run on the same data:

- zarrflow: ``zf.to_zarr(x, a)`` and ``a.to_dask().compute()``, on Dask's
  threaded scheduler (one task per shard);
- zarr-python 3 + Dask: ``da.to_zarr(x, z)`` and ``da.from_zarr(z).compute()``
  — with ``from_zarr``'s default blocks (``z.chunks``: the inner chunks, one
  task each) and with one block per shard (``chunks=z.shards``);
- zarrs-python (zarr-python with the Rust ``ZarrsCodecPipeline``) reading
  zarr-python's copy: ``arr[:]`` and through Dask with one block per shard;
- tensorstore's zarr3 driver with the same sharding codec (its own pools);
- the ceiling: numcodecs zstd alone over the 256 inner chunks on every core.

The dask array written is ``da.from_array(data, chunks=(2048, 2048))`` (blocks
on shard boundaries, so no contender needs a lock). Every array is created
once; the timed runs rewrite or reread all of it. Results are checked.

Run: ``python benchmarks/bench_sharding.py [--quick] [--repeat N]``
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import dask.array as da
import numcodecs
import numpy as np

import zarrflow as zf
from common import (
    CORES,
    Case,
    Goals,
    Table,
    Threads,
    check_equal,
    optional,
    parse_args,
    print_header,
    run_table,
    scratch_dir,
    smooth_field,
    stored_bytes,
    zarrs_array,
)

SHAPE, SHARDS, INNER = (8192, 8192), (2048, 2048), (512, 512)
QUICK_SHAPE = (4096, 4096)
DTYPE = "float32"
ZSTD = {"name": "zstd", "configuration": {"level": 3, "checksum": False}}

ZF_W, ZF_R = "zarrflow `to_zarr`", "zarrflow `to_dask().compute()`"
ZARR_W = "zarr-python + Dask `da.to_zarr`"
ZARR_R = "zarr-python + Dask `from_zarr` (inner-chunk blocks)"
ZARR_RS = "zarr-python + Dask `from_zarr(chunks=shards)`"
TS_W, TS_R = "tensorstore `write`", "tensorstore `read`"
ZARRS_R = "zarrs-python `arr[:]` (zarr-python + ZarrsCodecPipeline)"
ZARRS_RD = "zarrs-python + Dask `from_zarr(chunks=shards)`"


def _metadata(shape: tuple[int, ...]) -> dict[str, Any]:
    """The zarr3 metadata all three write: same grid, codecs and fill value."""
    sharding = {
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": list(INNER),
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, ZSTD],
            "index_codecs": [
                {"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "crc32c"},
            ],
            "index_location": "end",
        },
    }
    return {
        "shape": list(shape),
        "data_type": DTYPE,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(SHARDS)}},
        "codecs": [sharding],
        "fill_value": 0.0,
    }


def make_arrays(root: str, shape: tuple[int, ...], zarr, ts) -> dict[str, Any]:
    """One array per contender (zarrflow, zarr-python, tensorstore), metadata only."""
    arrays: dict[str, Any] = {
        "zf": zf.create(
            os.path.join(root, "zf.zarr"),
            shape=shape,
            chunks=INNER,
            shards=SHARDS,
            dtype=DTYPE,
            compressor=("zstd", {"level": 3}),
            fill_value=0.0,
        )
    }
    if zarr is not None:
        from zarr.codecs import ZstdCodec

        arrays["zarr"] = zarr.create_array(
            os.path.join(root, "zarr.zarr"),
            shape=shape,
            chunks=INNER,
            shards=SHARDS,
            dtype=DTYPE,
            compressors=[ZstdCodec(level=3)],
            fill_value=0.0,
        )
    if ts is not None:
        spec = {
            "driver": "zarr3",
            "kvstore": {"driver": "file", "path": os.path.join(root, "ts.zarr")},
            "metadata": _metadata(shape),
            "create": True,
        }
        arrays["ts"] = ts.open(spec).result()
    return arrays


def codec_ceiling(data: np.ndarray, pool: Threads) -> tuple[Callable, Callable]:
    """Encode and decode the inner chunks with numcodecs alone, on ``pool``."""
    codec = numcodecs.Zstd(level=3)
    rows, cols = (range(0, n, c) for n, c in zip(data.shape, INNER, strict=True))
    chunks = [
        np.ascontiguousarray(data[r : r + INNER[0], c : c + INNER[1]]) for r in rows for c in cols
    ]
    encoded = [bytes(codec.encode(c)) for c in chunks]
    outs = np.empty((len(chunks), *INNER), DTYPE)
    jobs = list(zip(encoded, outs, strict=True))

    def encode() -> None:
        pool.run(codec.encode, chunks)

    def decode() -> None:
        pool.run(lambda job: codec.decode(job[0], out=job[1]), jobs)

    return encode, decode


def write_cases(arrays: dict[str, Any], data: np.ndarray, ceiling: Callable) -> dict[str, Case]:
    x = da.from_array(data, chunks=SHARDS)
    cases = {ZF_W: Case(lambda: zf.to_zarr(x, arrays["zf"], scheduler="threads"), CORES)}
    if "zarr" in arrays:
        z = arrays["zarr"]
        cases[ZARR_W] = Case(lambda: da.to_zarr(x, z, scheduler="threads"), CORES)
    if "ts" in arrays:
        cases[TS_W] = Case(lambda: arrays["ts"].write(data).result(), "ts pools")
    cases[f"ceiling: numcodecs zstd-3 encode ({CORES} thr)"] = Case(ceiling, CORES)
    return cases


def read_cases(arrays: dict[str, Any], data: np.ndarray, ceiling: Callable) -> dict[str, Case]:
    def checked(label: str, read: Callable[[], np.ndarray]) -> Callable[[], None]:
        check_equal(label, read(), data)  # once, before timing
        return read

    a = arrays["zf"]
    cases = {ZF_R: Case(checked(ZF_R, lambda: a.to_dask().compute(scheduler="threads")), CORES)}
    if "zarr" in arrays:
        z = arrays["zarr"]
        inner = checked(ZARR_R, lambda: da.from_zarr(z).compute(scheduler="threads"))
        shards = checked(ZARR_RS, lambda: da.from_zarr(z, chunks=z.shards).compute())
        cases[ZARR_R] = Case(inner, CORES)
        cases[ZARR_RS] = Case(shards, CORES)
    if "zarrs" in arrays:
        zs = arrays["zarrs"]
        cases[ZARRS_R] = Case(checked(ZARRS_R, lambda: zs[:]), "zarrs pool")
        dask_read = checked(ZARRS_RD, lambda: da.from_zarr(zs, chunks=zs.shards).compute())
        cases[ZARRS_RD] = Case(dask_read, CORES)
    if "ts" in arrays:
        t = arrays["ts"]
        cases[TS_R] = Case(checked(TS_R, lambda: t.read().result()), "ts pools")
    cases[f"ceiling: numcodecs zstd-3 decode ({CORES} thr)"] = Case(ceiling, CORES)
    return cases


def goals(write: Table, read: Table) -> Goals:
    """The issue's goals: as fast as tensorstore, 3× zarr-python + Dask (its best row)."""
    g = Goals()
    rows = {r.label for r in write.rows} | {r.label for r in read.rows}
    if TS_W in rows:
        g.at_most("write: t(zarrflow) / t(tensorstore)", write.relative(ZF_W, TS_W))
        g.at_most("read: t(zarrflow) / t(tensorstore)", read.relative(ZF_R, TS_R), 1 / 1.2)
    if ZARRS_R in rows:
        g.at_most("read: t(zarrflow) / t(zarrs-python)", read.relative(ZF_R, ZARRS_R), 1 / 0.9)
    if ZARR_W in rows:
        g.at_most("write: t(zarrflow) / t(zarr-python + Dask)", write.relative(ZF_W, ZARR_W), 1 / 3)
        best = min(read.timing(ZARR_R).median, read.timing(ZARR_RS).median)
        g.at_most(
            "read: t(zarrflow) / t(best zarr-python + Dask)", read.timing(ZF_R).median / best, 1 / 3
        )
    return g


def main() -> None:
    args = parse_args(__doc__)
    print_header("bench_sharding.py", args)
    zarr, ts = optional("zarr"), optional("tensorstore")
    shape = QUICK_SHAPE if args.quick else SHAPE
    data = smooth_field(shape, DTYPE)
    nbytes, ninner = data.nbytes, data.size // (INNER[0] * INNER[1])
    title = (
        f"large, sharded: {shape[0]}×{shape[1]} {DTYPE}, {SHARDS[0]}×{SHARDS[1]} shards of "
        f"{INNER[0]}×{INNER[1]} inner chunks, zstd-3 ({nbytes / 1e6:.1f} MB, {ninner} inner chunks)"
    )
    pool = Threads(CORES)
    encode, decode = codec_ceiling(data, pool)
    with scratch_dir() as root:
        arrays = make_arrays(root, shape, zarr, ts)
        write = run_table(
            f"write — {title}", nbytes, ninner, write_cases(arrays, data, encode), args.repeat
        )
        write.print()
        for who in sorted(arrays):  # zarrs-python reads zarr-python's copy
            print(
                f"- stored by {who}: {stored_bytes(os.path.join(root, who + '.zarr')) / 1e6:.1f} MB"
            )
        print()
        if zarr is not None and optional("zarrs"):
            arrays["zarrs"] = zarrs_array(os.path.join(root, "zarr.zarr"))
        read = run_table(
            f"read — {title}", nbytes, ninner, read_cases(arrays, data, decode), args.repeat
        )
        read.print()
    pool.close()
    goals(write, read).print()


if __name__ == "__main__":
    main()
