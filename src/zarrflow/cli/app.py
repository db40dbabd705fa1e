"""The ``zarrflow`` command: ``demo``, ``info``, ``copy``, ``stats``, ``bench``.

Argument parsing lives here; what each subcommand does lives in
:mod:`zarrflow.cli.commands`. An error the user can fix (a missing path, a bad URL,
an unreadable array, a missing optional package) prints one line on stderr
and exits with status 1; ``--debug`` shows the traceback instead.
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
)

_EXAMPLES = """\
examples:
  zarrflow demo                                   the seed workload, timed, in a temp dir
  zarrflow demo --dashboard                       the same on a local cluster, with its dashboard
  zarrflow info data/a.zarr                       format, shape, chunks, codecs, stored bytes
  zarrflow copy a.zarr b.zarr --zarr-format 3 --chunks 250,250 --compressor blosc
  zarrflow stats s3://bucket/a.zarr -o anon=true  min, max, mean, std, NaN count
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


def _add_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo",
        help="the seed workload: write, read, stream, map and write back, timed",
        description="Create the seed array (1000x1000 int32, 100x100 chunks, zstd), write and "
        "read it, stream it sequentially and in parallel (ordered and unordered, concurrency "
        "1/2/4/8), map over its chunks and write it back in parallel; print the times.",
    )
    demo.add_argument("--store", default=None, help="where to put the arrays (default: a temp dir)")
    demo.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on this distributed scheduler (its workers must see --store)",
    )
    demo.add_argument(
        "--dashboard", action="store_true", help="start a local cluster and print its dashboard"
    )
    demo.add_argument(
        "--repeat", type=_positive_int, default=3, help="timed runs per step (median shown)"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_copy(sub: argparse._SubParsersAction) -> None:
    copy = sub.add_parser(
        "copy",
        help="copy an array or group, converting on the way",
        description="Copy an array or a group between any stores (paths, memory://, .zip, "
        "s3:// ...), chunk-parallel; change the format, chunks, shards or compressor on the "
        "way. What is not changed is kept.",
    )
    copy.add_argument("src")
    copy.add_argument("dst")
    copy.add_argument("--zarr-format", type=int, choices=(2, 3), default=None)
    copy.add_argument(
        "--chunks", default=None, help="new chunk shape (inner chunk with --shards), e.g. 256,256"
    )
    copy.add_argument(
        "--shards", default=None, help="shard shape, e.g. 2048,2048 (Zarr v3; --chunks inside)"
    )
    copy.add_argument("--compressor", default=None, help="e.g. zstd, blosc, gzip, lz4, none")
    copy.add_argument("--scheduler", default=None, metavar="ADDRESS")
    copy.add_argument("--overwrite", action="store_true", help="replace what is at DST")
    copy.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_storage_option(copy, "--storage-option", "-o", dest="storage_option", what="SRC")
    _add_storage_option(copy, "--dst-storage-option", "-O", dest="dst_storage_option", what="DST")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zarrflow",
        description="Parallel chunk I/O for Zarr arrays, every chunk a Dask task.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)

    info = sub.add_parser("info", help="describe an array or group (a tree for groups)")
    info.add_argument("url")
    _add_storage_option(info, "--storage-option", "-o", dest="storage_option", what="URL")

    _add_copy(sub)

    stats = sub.add_parser("stats", help="min, max, mean, std and NaN count, chunk-parallel")
    stats.add_argument("url")
    stats.add_argument("--scheduler", default=None, metavar="ADDRESS")
    stats.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_storage_option(stats, "--storage-option", "-o", dest="storage_option", what="URL")

    bench = sub.add_parser("bench", help="a quick benchmark table against the peers")
    bench.add_argument("--repeat", type=_positive_int, default=3, help="timed runs per measurement")
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

        return commands.run(args)
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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
