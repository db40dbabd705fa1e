"""The ``zarrflow`` command: ``demo``, ``info``, ``copy``, ``stats``, ``bench``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from zarrflow.errors import ZarrflowError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zarrflow", description="Parallel chunk I/O for Zarr arrays, every chunk a Dask task."
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="create, write, stream and read the seed array")
    demo.add_argument("--store", default=None, help="where to put the array (default: a temp dir)")
    demo.add_argument("--scheduler", default=None, help="a distributed scheduler address")
    demo.add_argument(
        "--dashboard", action="store_true", help="start a local cluster and print its dashboard"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    info = sub.add_parser("info", help="describe an array or group")
    info.add_argument("url")
    info.add_argument("--storage-option", "-o", action="append", default=[], metavar="KEY=VALUE")

    copy = sub.add_parser("copy", help="copy an array or group, converting on the way")
    copy.add_argument("src")
    copy.add_argument("dst")
    copy.add_argument("--zarr-format", type=int, choices=(2, 3), default=None)
    copy.add_argument("--chunks", default=None, help="e.g. 256,256")
    copy.add_argument("--shards", default=None, help="e.g. 2048,2048 (v3)")
    copy.add_argument("--compressor", default=None, help="e.g. zstd, blosc, gzip, none")
    copy.add_argument("--scheduler", default=None)
    copy.add_argument("--overwrite", action="store_true")
    copy.add_argument("--quiet", action="store_true")

    stats = sub.add_parser("stats", help="min, max, mean, std and NaN count, chunk-parallel")
    stats.add_argument("url")
    stats.add_argument("--scheduler", default=None)
    stats.add_argument("--quiet", action="store_true")

    bench = sub.add_parser("bench", help="a quick benchmark table against the peers")
    bench.add_argument("--repeat", type=int, default=3)
    return p


def _storage_options(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ZarrflowError(f"storage option {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Examples
    --------
    >>> main(["info", "memory://no-such-array"])  # doctest: +SKIP
    1
    """
    args = _parser().parse_args(argv)
    from zarrflow import commands

    try:
        return commands.run(args)
    except (ZarrflowError, OSError, ValueError, KeyError) as e:
        if args.debug:
            raise
        print(f"zarrflow {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
