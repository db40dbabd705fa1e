"""The ``zarrflow`` command: ``demo``, ``info``, ``copy``, ``stats``, ``bench``.

Argument parsing lives here; what each subcommand does lives in
:mod:`zarrflow.cli.commands`. An error the user can fix (a missing path, a bad URL,
an unreadable array, a missing optional package) prints one line on stderr
and exits with status 1; so does any other failure (with its type named);
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from zarrflow.errors import ZarrflowError

__all__ = ["main"]

#: Exceptions reported as one line (status 1) unless ``--debug``: zarrflow's own,
#: and what storage (fsspec, s3fs, a missing optional package) raises on bad input.
_USER_ERRORS: tuple[type[BaseException], ...] = (
    ZarrflowError,
    OSError,
    ValueError,
    KeyError,
    ImportError,
    MemoryError,
)

_EXAMPLES = """\
examples:
  zarrflow demo                                   the seed workload, timed, in a temp dir
  zarrflow demo --dashboard                       the same on a local cluster, with its dashboard
  zarrflow info data/a.zarr                       format, shape, chunks, codecs, stored bytes
  zarrflow info g.zarr --path sub/x               a member of a group (or g.zarr/sub/x)
  zarrflow copy a.zarr b.zarr --zarr-format 3 --chunks 250,250 --compressor blosc
  zarrflow stats s3://bucket/a.zarr -o anon=true  min, max, mean, std, NaN count
  zarrflow copy a.zarr b.zarr --profile           ... and where the time went (stderr)
"""


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _add_storage_option(p: argparse.ArgumentParser, *flags: str, dest: str, what: str) -> None:
    p.add_argument(
        *flags,
        dest=dest,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"an fsspec storage option for {what} (repeatable), e.g. anon=true",
    )


def _add_scheduler(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help=f"run {what} on the dask.distributed scheduler at ADDRESS (e.g. tcp://host:8786; "
        "its workers must reach the data); default: local threads",
    )


def _add_progress(p: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--quiet``: bars on stderr when it is a terminal, or when asked."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--progress",
        action="store_true",
        help="show progress bars on stderr even when it is not a terminal (one finished line "
        "per bar); by default they show only on a terminal",
    )
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_profile(p: argparse.ArgumentParser) -> None:
    """``--profile``: where the time went (``zarrflow.profile()``), a table on stderr after."""
    p.add_argument(
        "--profile",
        action="store_true",
        help="after the command, print on stderr where zarrflow's time went: per operation "
        "and phase (storage, decode, encode, ...) the chunks, seconds, share and MB/s",
    )


def _add_node(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "url",
        metavar="URL",
        help=f"the {what}: a path, a .zip file or an fsspec URL (memory://, s3://bucket/a.zarr, "
        "...); a group's member as URL/member or with --path",
    )
    p.add_argument(
        "--path",
        default=None,
        metavar="MEMBER",
        help="the member of the group at URL to use, e.g. sub/temperature",
    )


def _add_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo",
        help="the seed workload: write, read, stream, map and write back, timed",
        description="Create the seed array (1000x1000 int32, 100x100 chunks, zstd), write and "
        "read it, stream it sequentially and in parallel (ordered and unordered, concurrency "
        "1/2/4/8), map over its chunks and write it back in parallel; print the times. With "
        "--dashboard the work runs on a local cluster whose dashboard stays up until Ctrl-C.",
    )
    demo.add_argument(
        "--store",
        default=None,
        metavar="DIR",
        help="where to put the arrays (default: a temporary directory, removed at the end)",
    )
    _add_scheduler(demo, "the parallel steps")
    demo.add_argument(
        "--dashboard",
        action="store_true",
        help="start a local cluster (2 workers), print its dashboard link and keep it "
        "running after the demo until Ctrl-C",
    )
    demo.add_argument(
        "--repeat", type=_positive_int, default=3, help="timed runs per step (median shown)"
    )
    _add_progress(demo)


def _add_copy(sub: argparse._SubParsersAction) -> None:
    copy = sub.add_parser(
        "copy",
        help="copy an array or group, converting on the way",
        description="Copy an array or a group between any stores (paths, memory://, .zip, "
        "s3:// ...), chunk-parallel; change the format, chunks, shards or compressor on the "
        "way. What is not changed is kept: attributes, fill values, dimension names (v3 "
        "dimension_names <-> v2 _ARRAY_DIMENSIONS), consolidated metadata. A destination "
        "that is the source, inside it or around it is refused; a failed copy leaves "
        "nothing at DST.",
    )
    copy.add_argument("src", metavar="SRC", help="the array or group to copy (path or URL)")
    copy.add_argument("dst", metavar="DST", help="where to write the copy (path or URL)")
    copy.add_argument(
        "--zarr-format",
        type=int,
        choices=(2, 3),
        default=None,
        help="write Zarr format 2 or 3 (default: the source's)",
    )
    copy.add_argument(
        "--chunks", default=None, help="new chunk shape (inner chunk with --shards), e.g. 256,256"
    )
    copy.add_argument(
        "--shards", default=None, help="shard shape, e.g. 2048,2048 (Zarr v3; --chunks inside)"
    )
    copy.add_argument(
        "--compressor", default=None, help="e.g. zstd, blosc, gzip, lz4, none (default: kept)"
    )
    _add_scheduler(copy, "the copy")
    copy.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an array or group at DST (without it, an existing node is refused)",
    )
    _add_progress(copy)
    _add_profile(copy)
    _add_storage_option(copy, "--storage-option", "-o", dest="storage_option", what="SRC")
    _add_storage_option(copy, "--dst-storage-option", "-O", dest="dst_storage_option", what="DST")


def _add_info(sub: argparse._SubParsersAction) -> None:
    info = sub.add_parser(
        "info",
        help="describe an array or group (a tree for groups)",
        description="Print an array's format, shape, chunks, shards, data type, fill value, "
        "codecs and stored bytes, or a group's attributes and the tree of its members. "
        "Reads metadata and a listing only, never chunk data.",
    )
    _add_node(info, "array or group")
    _add_storage_option(info, "--storage-option", "-o", dest="storage_option", what="URL")


def _add_stats_bench(sub: argparse._SubParsersAction) -> None:
    stats = sub.add_parser(
        "stats",
        help="min, max, mean, std and NaN count, chunk-parallel",
        description="Compute an array's element count, minimum, maximum, mean, standard "
        "deviation and NaN count in one chunk-parallel pass that holds no more than a few "
        "chunks in memory. Only stored chunks are read: chunks never written count as the "
        "fill value without being read, so huge sparse arrays work.",
    )
    _add_node(stats, "array (or the group holding it)")
    _add_scheduler(stats, "the pass")
    _add_progress(stats)
    _add_storage_option(stats, "--storage-option", "-o", dest="storage_option", what="URL")

    bench = sub.add_parser(
        "bench",
        help="a quick benchmark table against the peers",
        description="Time zarrflow, zarr-python and tensorstore (those installed) on the seed "
        "workload (1000x1000 int32, 100x100 chunks) in a temporary directory; print one "
        "Markdown table row per measurement as it is made.",
    )
    bench.add_argument(
        "--repeat", type=_positive_int, default=3, help="timed runs per measurement (median shown)"
    )
    _add_profile(stats)
    _add_profile(bench)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    import zarrflow

    try:
        installed = version("zarrflow")
    except PackageNotFoundError:
        installed = None
    if installed is None or installed == zarrflow.__version__:
        return f"zarrflow {zarrflow.__version__}"
    return f"zarrflow {zarrflow.__version__} (installed metadata says {installed})"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zarrflow",
        description="Parallel chunk I/O for Zarr arrays, every chunk a Dask task.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=_version())
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="one of the commands below; `zarrflow COMMAND --help` describes its arguments",
    )
    _add_demo(sub)
    _add_info(sub)
    _add_copy(sub)
    _add_stats_bench(sub)
    return p


def _one_line(e: BaseException) -> str:
    """An exception as one line: its message, or its type when the message is empty."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if not isinstance(e, ImportError) else f"{text} (an optional package is missing)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    Parameters
    ----------
    argv
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 on an error (one line on stderr), 2 on a usage error,
        130 on Ctrl-C.

    Examples
    --------
    >>> main(["info", "memory://no-such-array"])  # doctest: +SKIP
    zarrflow info: error: no array or group at 'memory://no-such-array' (mode 'r')
    1
    """
    args = _parser().parse_args(argv)
    try:
        from zarrflow.cli import commands

        if not getattr(args, "profile", False):
            return commands.run(args)
        from zarrflow.telemetry import profile

        with profile() as p:
            status = commands.run(args)
        print(f"\nzarrflow {args.command}: where the time went\n{p.summary()}", file=sys.stderr)
        return status
    except BrokenPipeError:  # e.g. `zarrflow info x | head -1`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except _USER_ERRORS as e:
        if args.debug:
            raise
        print(f"zarrflow {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"zarrflow {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # unexpected: still one line, the traceback behind --debug
        if args.debug:
            raise
        print(
            f"zarrflow {args.command}: error: {type(e).__name__}: {_one_line(e)} "
            "(--debug shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
