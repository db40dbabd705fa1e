"""What each ``zarrflow`` subcommand does (argument parsing lives in ``cli``)."""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

import zarrflow as zf
from zarrflow.progress import TextProgressBar

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed command line."""
    return {
        "demo": demo,
        "info": info,
        "copy": copy,
        "stats": stats,
        "bench": bench,
    }[args.command](args)


def _seed_data() -> np.ndarray:
    """The seed workload's values: a smooth field plus structure, as int32."""
    i, j = np.indices((1000, 1000))
    return (i * 1000 + j).astype("int32")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def _bar(label: str, quiet: bool):
    return None if quiet else TextProgressBar(label)


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    if getattr(args, "dashboard", False):
        from distributed import Client, LocalCluster

        with (
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c,
            Client(c) as client,
        ):
            print(f"Dask dashboard: {client.dashboard_link}")
            yield client
        return
    if getattr(args, "scheduler", None):
        from distributed import Client

        with Client(args.scheduler) as client:
            print(f"Connected to {args.scheduler}; dashboard: {client.dashboard_link}")
            yield client
        return
    yield None


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *map(line, rows)])


def demo(args: argparse.Namespace) -> int:
    """The seed array, end to end: create, write, reopen, read, stream, map, write back."""
    with contextlib.ExitStack() as stack:
        root = args.store or stack.enter_context(tempfile.TemporaryDirectory(prefix="zarrflow-"))
        client = stack.enter_context(_client(args))
        scheduler = client
        url = str(Path(root) / "seed.zarr") if "://" not in root else f"{root}/seed.zarr"
        steps: list[tuple[str, ...]] = []
        data = _seed_data()
        t, a = _timed(
            lambda: zf.create(
                url,
                shape=(1000, 1000),
                chunks=(100, 100),
                dtype="int32",
                compressor="zstd",
                overwrite=True,
            )
        )
        print(f"Created {a.name}: shape {a.shape}, chunks {a.chunks}, {a.nchunks} chunks, zstd")
        steps.append(("create", f"{t * 1e3:.1f} ms", ""))
        t, _ = _timed(lambda: a.__setitem__(slice(None), data))
        steps.append(
            ("write a[:] = data (parallel)", f"{t * 1e3:.1f} ms", f"{a.nbytes / t / 1e6:.0f} MB/s")
        )
        t, b = _timed(lambda: zf.open(url, mode="r"))
        steps.append(("reopen (mode r)", f"{t * 1e3:.1f} ms", ""))
        t, back = _timed(lambda: b[:])
        assert np.array_equal(back, data), "read-back differs from what was written"
        steps.append(
            ("read b[:] (parallel)", f"{t * 1e3:.1f} ms", f"{b.nbytes / t / 1e6:.0f} MB/s")
        )
        print(_table(steps, ("step", "time", "throughput")))
        print()
        _demo_streams(b, scheduler, args.quiet)
        _demo_map_and_write(b, root, scheduler, args.quiet)
    return 0


def _consume(stream) -> int:
    total = 0
    for _, chunk in stream:
        total += int(chunk.sum(dtype="int64"))
    return total


def _demo_streams(a: zf.Array, scheduler: Any, quiet: bool) -> None:
    expected = int(a[:].sum(dtype="int64"))
    rows: list[tuple[str, ...]] = []
    seq_t, total = _timed(
        lambda: _consume(a.chunk_stream(progress_callback=_bar("sequential", quiet)))
    )
    assert total == expected
    rows.append(("sequential", "1", "yes", f"{seq_t * 1e3:.1f} ms", "1.00x"))
    for ordered in (True, False):
        for n in (1, 2, 4, 8):
            label = f"parallel={n} {'ordered' if ordered else 'unordered'}"
            stream = a.chunk_stream(
                parallel=n,
                ordered=ordered,
                scheduler=scheduler if scheduler else "threads",
                progress_callback=_bar(label, quiet),
            )
            t, total = _timed(lambda s=stream: _consume(s))
            assert total == expected
            rows.append(
                (
                    "parallel",
                    str(n),
                    "yes" if ordered else "no",
                    f"{t * 1e3:.1f} ms",
                    f"{seq_t / t:.2f}x",
                )
            )
    print("chunk_stream over the seed array (100 chunks):")
    print(_table(rows, ("stream", "concurrency", "ordered", "time", "speed-up")))
    print()


def _demo_map_and_write(a: zf.Array, root: str, scheduler: Any, quiet: bool) -> None:
    t, sums = _timed(
        lambda: dict(
            a.parallel_chunk_map(
                lambda idx, c: int(c.sum(dtype="int64")),
                scheduler=scheduler,
                progress_callback=_bar("parallel_chunk_map", quiet),
            )
        )
    )
    print(f"parallel_chunk_map: per-chunk sums of {len(sums)} chunks in {t * 1e3:.1f} ms")
    out = str(Path(root) / "copy.zarr") if "://" not in root else f"{root}/copy.zarr"
    t, copy = _timed(lambda: zf.to_zarr(a.to_dask(), out, overwrite=True, scheduler=scheduler))
    assert np.array_equal(copy[:], a[:])
    print(
        f"to_zarr: wrote {copy.nchunks} chunks back in parallel in {t * 1e3:.1f} ms "
        f"({a.nbytes / t / 1e6:.0f} MB/s); copy reads equal"
    )


def info(args: argparse.Namespace) -> int:
    """Print an array's or group's summary."""
    node = zf.open(args.url, mode="r", storage_options=_opts(args))
    print(repr(node.info))
    return 0


def _opts(args: argparse.Namespace) -> dict[str, str] | None:
    from zarrflow.cli import _storage_options

    pairs = getattr(args, "storage_option", None) or []
    return _storage_options(pairs) or None


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    return tuple(int(t) for t in text.replace("x", ",").split(",") if t)


def copy(args: argparse.Namespace) -> int:
    """Copy (and convert) an array or a whole group."""
    from zarrflow.copying import copy_node

    progress = None if args.quiet else TextProgressBar("copy")
    copy_node(
        args.src,
        args.dst,
        zarr_format=args.zarr_format,
        chunks=_parse_shape(args.chunks),
        shards=_parse_shape(args.shards),
        compressor=args.compressor,
        overwrite=args.overwrite,
        scheduler=args.scheduler,
        progress_callback=progress,
    )
    print(f"copied {args.src} -> {args.dst}")
    return 0


def stats(args: argparse.Namespace) -> int:
    """Chunk-parallel statistics of an array."""
    from zarrflow.statistics import array_statistics

    a = zf.open_array(args.url, mode="r")
    result = array_statistics(
        a,
        scheduler=args.scheduler,
        progress_callback=None if args.quiet else TextProgressBar("stats"),
    )
    for key, value in result.items():
        print(f"{key:>6}: {value}")
    return 0


def bench(args: argparse.Namespace) -> int:
    """A quick side-by-side of zarrflow and the peers on the seed workload."""
    from zarrflow.quickbench import quick_bench

    out = io.StringIO()
    quick_bench(repeat=args.repeat, out=out)
    print(out.getvalue())
    return 0
