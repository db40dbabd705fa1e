"""What each ``zarrflow`` subcommand does (argument parsing lives in ``cli``).

Results go to stdout, progress bars to stderr: only when stderr is a
terminal, or when ``--progress`` asks for them (then a captured stderr holds
one finished line per bar), never with ``--quiet``. A bar counts in the unit
its text uses (chunks, or bytes for ``copy``) and shows the rate and the time
left. stdout is flushed before a bar starts and every bar ends its line
before the next table prints, so the two never garble each other (see
:class:`~zarrflow.parallel.progress.TextProgressBar`).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import zarrflow as zf
from zarrflow.errors import ZarrflowError
from zarrflow.parallel.progress import TextProgressBar

__all__ = ["run"]

Progress = Callable[[int, int], None]


def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed command line to its subcommand.

    Parameters
    ----------
    args
        The parsed command line; ``args.command`` names the subcommand.

    Returns
    -------
    int
        The exit code.
    """
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "demo": demo,
        "info": info,
        "copy": copy,
        "stats": stats,
        "bench": bench,
    }
    return commands[args.command](args)


# output helpers ------------------------------------------------------------------
def _say(*parts: Any) -> None:
    """Print to stdout and flush, so output and stderr bars stay in order."""
    print(*parts, flush=True)


def _wants_bars(args: argparse.Namespace) -> bool:
    """Bars when asked (``--progress``), else when stderr is a terminal; never with ``--quiet``."""
    if getattr(args, "quiet", False):
        return False
    if getattr(args, "progress", False):
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _progress(
    label: str, args: argparse.Namespace, unit: str = "chunks"
) -> Iterator[TextProgressBar | None]:
    """A progress bar on stderr (None when not wanted), its line ended on the way out."""
    if not _wants_bars(args):
        yield None
        return
    sys.stdout.flush()
    with TextProgressBar(label, unit=unit) as bar:
        yield bar


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A Markdown table, columns padded to their widest cell.

    Examples
    --------
    >>> print(_table([("a", "1")], ("k", "v")))
    | k | v |
    |---|---|
    | a | 1 |
    """
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *map(line, rows)])


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def _rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e6:.0f} MB/s" if seconds > 0 else "-"


def _median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Run ``fn`` once untimed (warm-up), then ``repeat`` times; the median time and a result."""
    result = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


class _RunsBar:
    """One bar across several runs that each report ``(done, total)`` from zero."""

    def __init__(self, bar: Progress | None, runs: int, per_run: int) -> None:
        self.bar, self.total, self.per_run, self.run = bar, runs * per_run, per_run, -1

    def next(self) -> Progress | None:
        """The callback for the next run."""
        self.run += 1
        if self.bar is None:
            return None
        base, bar, total = self.run * self.per_run, self.bar, self.total
        return lambda done, _total: bar(base + done, total)


# demo ------------------------------------------------------------------------------
def _seed_data() -> np.ndarray:
    """The seed workload's values: 1000×1000 int32, ``a[i, j] = 1000 i + j``."""
    i, j = np.indices((1000, 1000))
    return (i * 1000 + j).astype("int32")


def _chunk_sum(_idx: tuple[int, ...], chunk: np.ndarray) -> int:
    """Per-chunk work for the demo's map (module level, so cluster workers can import it)."""
    return int(chunk.sum(dtype="int64"))


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    """A distributed client for ``--dashboard`` / ``--scheduler``, else None.

    The client is made here (not by the library from an address string) so it
    is the default client, connects within 10 s or fails with one clear line.
    """
    if getattr(args, "dashboard", False):
        from distributed import Client, LocalCluster

        with (
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c,
            Client(c) as client,
        ):
            _say(f"Local cluster: 2 workers. Dask dashboard: {client.dashboard_link}")
            yield client
        return
    if getattr(args, "scheduler", None):
        from distributed import Client

        with Client(args.scheduler, timeout="10s") as client:
            _say(f"Connected to {args.scheduler}; dashboard: {client.dashboard_link}")
            yield client
        return
    yield None


def _where(client: Any) -> str:
    if client is None:
        from zarrflow.parallel.scheduling import default_parallelism

        return f"local threads ({default_parallelism()} workers)"
    threads = sum(client.nthreads().values())
    return f"the cluster at {client.scheduler.address} ({threads} worker threads)"


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if "://" in root else str(Path(root) / name)


def demo(args: argparse.Namespace) -> int:
    """The seed array end to end: create, write, read, stream, map and write back, timed.

    Every time printed is the median of ``--repeat`` runs after one untimed
    warm-up run, and every result is checked against the data written.
    """
    with contextlib.ExitStack() as stack:
        root = args.store or stack.enter_context(tempfile.TemporaryDirectory(prefix="zarrflow-"))
        client = stack.enter_context(_client(args))
        scheduler = client if client is not None else "threads"
        data = _seed_data()
        a = _demo_seed(_join(root, "seed.zarr"), data, args.repeat)
        _say(f"Parallel work runs on {_where(client)}.")
        _say()
        _demo_streams(a, scheduler, args)
        _demo_jobs(a, _join(root, "copy.zarr"), scheduler, args)
        _say("Checked: every stream, the map's sums and the written copy equal the seed data.")
        if args.dashboard:
            _until_ctrl_c(client.dashboard_link)
    return 0


def _until_ctrl_c(link: str) -> None:
    """Keep the cluster (and its dashboard) up until Ctrl-C (SIGINT)."""
    _say(f"The cluster keeps running: Dask dashboard at {link}")
    _say("Press Ctrl-C to stop it.")
    try:
        while True:
            if hasattr(signal, "pause"):
                signal.pause()  # returns after any signal; SIGINT raises KeyboardInterrupt
            else:  # pragma: no cover - Windows
                time.sleep(3600)
    except KeyboardInterrupt:
        _say("Stopping the cluster.")


def _demo_seed(url: str, data: np.ndarray, repeat: int) -> zf.Array:
    """Create the seed array, write it and read it back; print the timings."""
    t0 = time.perf_counter()
    a = zf.create(
        url, shape=(1000, 1000), chunks=(100, 100), dtype="int32", compressor="zstd", overwrite=True
    )
    t_create = time.perf_counter() - t0
    _say(
        f"Seed array {a.name}: shape {a.shape}, chunks {a.chunks}, {a.nchunks} chunks, int32, zstd"
    )
    runs = "1 run" if repeat == 1 else f"the median of {repeat} runs"
    _say(f"Times: {runs} after one untimed warm-up run (create: a single run).")
    _say()
    t_write, _ = _median_time(lambda: a.__setitem__(slice(None), data), repeat)
    t_open, b = _median_time(lambda: zf.open(url, mode="r"), repeat)
    t_read, back = _median_time(lambda: b[:], repeat)
    if not np.array_equal(back, data):
        raise ZarrflowError(f"demo: {url} reads back different values from those written")
    rows = [
        ("create (metadata only)", "", _ms(t_create), ""),
        ("write a[:] = data", "threads", _ms(t_write), _rate(a.nbytes, t_write)),
        ("reopen (mode r)", "", _ms(t_open), ""),
        ("read a[:]", "threads", _ms(t_read), _rate(a.nbytes, t_read)),
    ]
    _say(_table(rows, ("step", "runs on", "time", "throughput")))
    _say()
    return b


def _consume(stream: Iterator[tuple[tuple[int, ...], np.ndarray]]) -> int:
    return sum(int(chunk.sum(dtype="int64")) for _, chunk in stream)


def _runs_label(name: str, runs: int, nchunks: int) -> str:
    """A demo bar's label: what runs, and how the chunk count is made up."""
    return f"{name} ({runs} runs x {nchunks} chunks)"


def _demo_streams(a: zf.Array, scheduler: Any, args: argparse.Namespace) -> None:
    """Time chunk_stream sequentially and at concurrency 1/2/4/8, ordered and unordered."""
    repeat = args.repeat
    expected = int(a[:].sum(dtype="int64"))
    configs = [(0, True)] + [(n, o) for o in (True, False) for n in (1, 2, 4, 8)]
    results: list[tuple[int, bool, float]] = []
    label = _runs_label("chunk_stream", len(configs) * (repeat + 1), a.nchunks)
    with _progress(label, args) as bar:
        runs = _RunsBar(bar, len(configs) * (repeat + 1), a.nchunks)
        for n, ordered in configs:

            def once(n: int = n, ordered: bool = ordered) -> int:
                kwargs = {"parallel": n, "ordered": ordered, "scheduler": scheduler} if n else {}
                return _consume(a.chunk_stream(progress_callback=runs.next(), **kwargs))

            t, total = _median_time(once, repeat)
            if total != expected:
                raise ZarrflowError(f"demo: stream (parallel={n}) summed {total}, not {expected}")
            results.append((n, ordered, t))
    seq = results[0][2]
    rows = [
        (
            f"parallel={n}" if n else "sequential",
            "yes" if ordered else "no",
            _ms(t),
            _rate(a.nbytes, t),
            f"{seq / t:.2f}x",
        )
        for n, ordered, t in results
    ]
    _say(f"chunk_stream: read, decode and sum each of the {a.nchunks} chunks")
    _say(_table(rows, ("stream", "ordered", "time", "throughput", "speed-up")))
    _say()


def _demo_jobs(a: zf.Array, out: str, scheduler: Any, args: argparse.Namespace) -> None:
    """Time parallel_chunk_map and a chunk-parallel write back; check both."""
    repeat = args.repeat
    expected = {idx: int(c.sum(dtype="int64")) for idx, c in a.chunk_stream()}
    with _progress(_runs_label("parallel_chunk_map", repeat + 1, a.nchunks), args) as bar:
        runs = _RunsBar(bar, repeat + 1, a.nchunks)
        t_map, sums = _median_time(
            lambda: dict(
                a.parallel_chunk_map(_chunk_sum, scheduler=scheduler, progress_callback=runs.next())
            ),
            repeat,
        )
    if sums != expected:
        raise ZarrflowError("demo: parallel_chunk_map's per-chunk sums differ from the data's")
    # one write task per chunk here (same chunks, one chunk per read task): tasks are chunks
    with _progress(_runs_label("to_zarr write back", repeat + 1, a.nchunks), args) as bar:
        runs = _RunsBar(bar, repeat + 1, a.nchunks)
        t_write, copy = _median_time(
            lambda: zf.to_zarr(
                a.to_dask(chunks_per_task=1),
                out,
                chunks=a.chunks,
                mode="w",
                scheduler=scheduler,
                progress_callback=runs.next(),
            ),
            repeat,
        )
    if copy.nchunks_initialized != a.nchunks or not np.array_equal(copy[:], a[:]):
        raise ZarrflowError(f"demo: the copy at {out} does not read equal to the seed array")
    rows = [
        ("parallel_chunk_map (sum per chunk)", str(len(sums)), _ms(t_map), _rate(a.nbytes, t_map)),
        ("to_zarr(a.to_dask()) write back", str(a.nchunks), _ms(t_write), _rate(a.nbytes, t_write)),
    ]
    _say("Chunk-parallel jobs: one zarrflow-map, or one (read +) zarrflow-write task per chunk")
    _say(_table(rows, ("job", "chunks", "time", "throughput")))
    _say()


# info, copy, stats, bench --------------------------------------------------------
def _opts(pairs: Sequence[str] | None) -> dict[str, str] | None:
    """``KEY=VALUE`` pairs as fsspec storage options (None when there are none).

    Examples
    --------
    >>> _opts(["anon=true", "endpoint_url=http://127.0.0.1:5555"])
    {'anon': 'true', 'endpoint_url': 'http://127.0.0.1:5555'}
    """
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ZarrflowError(f"storage option {pair!r} is not KEY=VALUE")
        out[key] = value
    return out or None


def _open_node(args: argparse.Namespace) -> zf.Array | zf.Group:
    """The node ``URL`` (``--path MEMBER``) names; ``URL/member`` works for any store.

    When ``URL`` itself holds no node, its last parts are tried as a member
    path inside a group above it (``g.zip/sub/x`` is member ``sub/x`` of ``g.zip``).
    """
    opts = _opts(args.storage_option)
    try:
        return zf.open(args.url, mode="r", path=args.path, storage_options=opts)
    except zf.NodeNotFoundError as missing:
        head, parts = args.url.rstrip("/"), []
        while "/" in head.split("://", 1)[-1].strip("/"):
            head, part = head.rsplit("/", 1)
            parts.insert(0, part)
            member = "/".join([*parts, *([args.path] if args.path else [])])
            try:
                return zf.open(head, mode="r", path=member, storage_options=opts)
            except (zf.NodeNotFoundError, OSError, ValueError):
                continue
        raise missing


def _array_paths(group: zf.Group, prefix: str = "") -> list[str]:
    """The paths of every array below ``group``, sorted."""
    paths = []
    for name, member in group.members():
        if isinstance(member, zf.Group):
            paths += _array_paths(member, f"{prefix}{name}/")
        else:
            paths.append(f"{prefix}{name}")
    return paths


def _open_array(args: argparse.Namespace) -> zf.Array:
    """The array ``URL`` (``--path``) names; a group is refused, naming its arrays."""
    node = _open_node(args)
    if isinstance(node, zf.Array):
        return node
    arrays = _array_paths(node)
    more = f" (and {len(arrays) - 20} more)" if len(arrays) > 20 else ""
    listed = ", ".join(arrays[:20]) + more
    raise zf.ContainsGroupError(
        f"{args.url!r}{f' (path {args.path!r})' if args.path else ''} is a group, not an array; "
        + (
            f"name one of its arrays with --path MEMBER or URL/MEMBER: {listed}"
            if arrays
            else "it holds no arrays"
        )
    )


def info(args: argparse.Namespace) -> int:
    """Print an array's or a group's summary (a group's includes its tree)."""
    _say(repr(_open_node(args).info))
    return 0


def _shape(text: str | None, what: str) -> tuple[int, ...] | None:
    """``"256,256"`` (or ``256x256``) as a shape.

    Examples
    --------
    >>> _shape("250,250", "--chunks"), _shape(None, "--chunks")
    ((250, 250), None)
    """
    if not text:
        return None
    try:
        shape = tuple(int(t) for t in text.replace("x", ",").split(",") if t.strip())
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise ZarrflowError(f"{what} {text!r} is not a shape like 256,256 (positive integers)")
    return shape


def _codec_names(array: zf.Array) -> str:
    meta = array.metadata
    if array.zarr_format == 2:
        names = [f["id"] for f in meta.filters or ()]
        names.append(meta.compressor["id"] if meta.compressor else "no compressor")
        return ", ".join(names)
    codecs = list(meta.codecs)
    if getattr(meta, "inner_chunks", None) is not None:
        codecs = [*codecs, *codecs[0].get("configuration", {}).get("codecs", [])]
    return ", ".join(c["name"] for c in codecs)


def _describe(node: zf.Array | zf.Group) -> str:
    """One line on a node's layout, for ``copy``'s summary."""
    if isinstance(node, zf.Group):
        return f"group, Zarr v{node.zarr_format}, {len(node)} members"
    layout = f"chunks {node.chunks}" + (f", shards {node.shards}" if node.shards else "")
    return f"array, Zarr v{node.zarr_format}, {layout}, codecs: {_codec_names(node)}"


def copy(args: argparse.Namespace) -> int:
    """Copy (and convert) an array or a whole group, chunk-parallel."""
    from zarrflow.integrations.copy_target import refuse_overlap

    refuse_overlap(args.src, args.dst)  # before anything is opened
    src = zf.open(args.src, mode="r", storage_options=_opts(args.storage_option))
    with _client(args) as client:
        t0 = time.perf_counter()
        out = _copy(args, client)
        elapsed = time.perf_counter() - t0
    _say(f"copied {args.src} -> {args.dst} in {elapsed:.2f} s")
    _say(f"  from: {_describe(src)}")
    _say(f"  to:   {_describe(out)}")
    out.store.close()
    return 0


def _bytes_bar(bar: Progress, nbytes: int) -> Progress:
    """A task-count callback shown as bytes: write tasks hold near-equal blocks of the array."""

    def report(done: int, total: int) -> None:
        bar(nbytes if done >= total else nbytes * done // max(total, 1), nbytes)

    return report


def _copy(args: argparse.Namespace, client: Any) -> zf.Array | zf.Group:
    """``copy_node`` with the command line's options and a progress bar (in bytes) per array."""
    from zarrflow.integrations.copying import copy_node

    with contextlib.ExitStack() as bars:

        def progress_for(path: str, target: zf.Array) -> Progress | None:
            bar = bars.enter_context(_progress(f"copy {path}".strip(), args, unit="B"))
            return None if bar is None else _bytes_bar(bar, target.nbytes)

        try:
            return copy_node(
                args.src,
                args.dst,
                zarr_format=args.zarr_format,
                chunks=_shape(args.chunks, "--chunks"),
                shards=_shape(args.shards, "--shards"),
                compressor=args.compressor,
                overwrite=args.overwrite,
                scheduler=client,
                progress_for=progress_for,
                storage_options=_opts(args.storage_option),
                dst_storage_options=_opts(args.dst_storage_option),
            )
        except (zf.ContainsArrayError, zf.ContainsGroupError) as e:
            raise type(e)(f"{args.dst} exists already; add --overwrite to replace it") from e


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    return "-" if value is None else str(value)


def stats(args: argparse.Namespace) -> int:
    """Min, max, mean, std and NaN count of an array, chunk-parallel (stored chunks only)."""
    from zarrflow.integrations.statistics import array_statistics

    a = _open_array(args)
    with _client(args) as client:
        t0 = time.perf_counter()
        with _progress("stats (stored chunks)", args) as bar:
            result = array_statistics(a, scheduler=client, progress_callback=bar)
        elapsed = time.perf_counter() - t0
    stored = result["chunks_read"]
    layout = f"{a.nchunks} chunks" + (f" (inner; {a.nshards} shards)" if a.shards else "")
    _say(
        f"{a.name}: shape {a.shape}, {a.dtype}, {layout}, {stored} stored and read "
        f"({elapsed:.2f} s)"
    )
    for key in ("count", "min", "max", "mean", "std", "nan_count"):
        _say(f"{key:>9}: {_fmt(result[key])}")
    return 0


def bench(args: argparse.Namespace) -> int:
    """A quick side-by-side of zarrflow and its peers on the seed workload."""
    from zarrflow.cli.quickbench import quick_bench

    quick_bench(repeat=args.repeat, out=sys.stdout)  # rows appear as they are measured
    sys.stdout.flush()
    return 0
