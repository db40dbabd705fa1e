"""Independent processes contending for one array: lost updates, mixed reads, lost rows.

The harnesses of the reliability suite (``tests/test_no_lost_updates.py``) and
of ``benchmarks/bench_reliability.py``. Every worker is a plain
``multiprocessing`` process (forked: no Dask, no shared lock), which opens the
array from its URL itself, so nothing but the store is shared.

* :func:`run_counters` — each process owns some columns of row 0 of one chunk
  (or shard) and, ``rounds`` times, reads its columns and writes them back
  plus one. A read that does not see its own previous value, or a final
  value short of ``rounds``, is a lost update (another process's partial
  write of the same chunk put back older bytes).
* :func:`run_mixed_reads` — one process rewrites a whole shard again and
  again, each version one value everywhere; reader processes read inner
  chunks that are not adjacent (separate ranged requests). A read returning
  two values, or bytes that do not decode, is a mixed read.
* :func:`run_appenders` — processes each append ``rounds`` rows of their own
  id; afterwards every row must be there exactly once per append.

``conditional=False`` runs the same harness with conditional writes and
consistent reads switched off (``zarrflow.conditional_writes`` /
``zarrflow.consistent_reads``), to show what they prevent.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

import dask
import numpy as np

__all__ = ["run_appenders", "run_counters", "run_mixed_reads"]

_TIMEOUT = 300


def _switches(conditional: bool) -> dict[str, Any]:
    return {
        "zarrflow.conditional_writes": conditional,
        "zarrflow.consistent_reads": conditional,
        "zarrflow.shard_coalesce_gap": 0,  # separate inner chunks: separate requests
    }


def _open(url: str, storage_options: dict | None, mode: str = "r+"):
    import zarrflow as zf

    return zf.open_array(url, mode=mode, storage_options=storage_options)


def _run(target: Callable, argsets: list[tuple], barrier_parties: int) -> list[Any]:
    """Run ``target(*args, start, results)`` in one forked process per argset; their results."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(barrier_parties)
    results = ctx.Queue()
    processes = [ctx.Process(target=target, args=(*args, start, results)) for args in argsets]
    for p in processes:
        p.start()
    try:
        out = [results.get(timeout=_TIMEOUT) for _ in processes]
    finally:
        for p in processes:
            p.join(30)
            if p.is_alive():  # pragma: no cover - a hung worker: do not leave it behind
                p.kill()
    for p in processes:
        if p.exitcode != 0:
            raise RuntimeError(f"a contention worker exited with {p.exitcode}")
    return out


def _counter(url, options, cols, rounds, conditional, start, results) -> None:
    from zarrflow.errors import CorruptChunkError

    try:
        with dask.config.set(_switches(conditional)):
            a = _open(url, options)
            start.wait()
            lost = corrupt = 0
            for i in range(rounds):
                try:
                    if (a[0, cols] != i).any():  # my previous write was overwritten
                        lost += 1
                except CorruptChunkError:  # a read mixing two versions of a shard
                    corrupt += 1
                a[0, cols] = i + 1
        results.put(("ok", lost, corrupt))
    except BaseException as e:  # reported to the parent, never swallowed
        results.put(("error", repr(e), 0))


def run_counters(
    url: str,
    storage_options: dict | None,
    processes: int,
    rounds: int,
    conditional: bool = True,
) -> dict[str, int]:
    """``processes`` writers, ``rounds`` each, on row 0 of the array at ``url``: updates lost.

    The array must exist, with row 0 at zero and at least ``2 * processes``
    columns sharing one chunk (or shard); writer ``k`` owns columns
    ``2k, 2k + 1``. Returns the rounds, the updates lost and the reads of
    a writer's own columns that did not decode (a shard read mixing versions).

    Parameters
    ----------
    url, storage_options
        Where the array is.
    processes, rounds
        How many writers, and how many read-modify-writes each.
    conditional
        False switches conditional writes off (the control).

    Examples
    --------
    >>> import tempfile, zarrflow as zf
    >>> url = tempfile.mkdtemp() + "/c.zarr"
    >>> a = zf.create(url, shape=(1, 4), chunks=(1, 4), dtype="i4")
    >>> run_counters(url, None, processes=2, rounds=5)
    {'rounds': 10, 'lost': 0, 'corrupt_reads': 0}
    """
    argsets = [
        (url, storage_options, slice(2 * k, 2 * k + 2), rounds, conditional)
        for k in range(processes)
    ]
    outcomes = _run(_counter, argsets, processes)
    errors = [detail for kind, detail, _ in outcomes if kind == "error"]
    if errors:
        raise RuntimeError(f"a writer failed: {errors[0]}")
    final = _open(url, storage_options, "r")[0, : 2 * processes].reshape(processes, 2)
    lost = sum(n for _, n, _ in outcomes) + int((final != rounds).any(axis=1).sum())
    corrupt = sum(c for _, _, c in outcomes)
    return {"rounds": processes * rounds, "lost": lost, "corrupt_reads": corrupt}


def _rewriter(url, options, stop, conditional, start, results) -> None:
    try:
        with dask.config.set(_switches(conditional)):
            a = _open(url, options)
            start.wait()
            v = 2
            while not stop.is_set():  # until every reader is done
                a[...] = v  # a whole shard: one unconditional write of one version
                v += 1
        results.put(("writer", v - 2, 0))
    except BaseException as e:
        results.put(("error", repr(e), 0))


def _reader(url, options, reads, conditional, start, results) -> None:
    from zarrflow.errors import CorruptChunkError

    try:
        with dask.config.set(_switches(conditional)):
            a = _open(url, options, "r")
            step = a.engine.inner_shape[1] * 2  # every other inner chunk: separate ranges
            start.wait()
            mixed = corrupt = 0
            for _ in range(reads):
                try:
                    values = a[0, ::step]
                except CorruptChunkError:
                    corrupt += 1
                    continue
                if len(np.unique(values)) > 1:
                    mixed += 1
        results.put(("reader", mixed, corrupt))
    except BaseException as e:
        results.put(("error", repr(e), 0))


def run_mixed_reads(
    url: str,
    storage_options: dict | None,
    readers: int,
    reads: int,
    conditional: bool = True,
) -> dict[str, int]:
    """One writer rewriting the shard at ``url`` while ``readers`` processes read it.

    The array must be sharded, one shard of one row, already written with
    one value everywhere. Returns the reads made and those that were mixed
    (two values) or corrupt (bytes of another version that did not decode).

    Parameters
    ----------
    url, storage_options
        Where the array is.
    readers, reads
        Reader processes and reads each.
    conditional
        False switches pinned (consistent) reads off (the control).

    Examples
    --------
    >>> import tempfile, zarrflow as zf
    >>> url = tempfile.mkdtemp() + "/s.zarr"
    >>> a = zf.create(url, shape=(1, 32), chunks=(1, 4), shards=(1, 32), dtype="i4")
    >>> a[...] = 1
    >>> counts = run_mixed_reads(url, None, readers=1, reads=20)
    >>> counts["reads"], counts["mixed"], counts["corrupt"]
    (20, 0, 0)
    """
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    argsets = [(url, storage_options, stop, conditional)]
    argsets += [(url, storage_options, reads, conditional)] * readers
    start = ctx.Barrier(len(argsets))
    results = ctx.Queue()
    processes = [
        ctx.Process(target=role, args=(*args, start, results))
        for role, args in zip([_rewriter] + [_reader] * readers, argsets, strict=True)
    ]
    for p in processes:
        p.start()
    outcomes = []
    try:
        while len(outcomes) < readers + 1:
            outcomes.append(results.get(timeout=_TIMEOUT))
            if sum(kind != "writer" for kind, _, _ in outcomes) == readers:
                stop.set()  # the readers are done (or one failed): stop the writer
    finally:
        stop.set()
        for p in processes:
            p.join(30)
            if p.is_alive():  # pragma: no cover
                p.kill()
    errors = [detail for kind, detail, _ in outcomes if kind == "error"]
    if errors:
        raise RuntimeError(f"a reader or writer failed: {errors[0]}")
    mixed = sum(m for kind, m, _ in outcomes if kind == "reader")
    corrupt = sum(c for kind, _, c in outcomes if kind == "reader")
    versions = sum(v for kind, v, _ in outcomes if kind == "writer")
    return {"reads": readers * reads, "mixed": mixed, "corrupt": corrupt, "versions": versions}


def _appender(url, options, ident, rounds, conditional, start, results) -> None:
    try:
        with dask.config.set(_switches(conditional)):
            a = _open(url, options)
            width = a.shape[1]
            start.wait()
            for _ in range(rounds):
                a.append(np.full((1, width), ident, dtype=a.dtype))
        results.put(("ok", 0))
    except BaseException as e:
        results.put(("error", repr(e)))


def run_appenders(
    url: str,
    storage_options: dict | None,
    processes: int,
    rounds: int,
    conditional: bool = True,
) -> dict[str, int]:
    """``processes`` appenders, ``rounds`` one-row appends each: rows appended and rows lost.

    The array must be 2-d, empty along axis 0, with a fill value of 0; appender
    ``k`` appends rows of ``k + 1``.

    Parameters
    ----------
    url, storage_options
        Where the array is.
    processes, rounds
        Appender processes and appends each.
    conditional
        False switches compare-and-swap metadata updates off (the control).

    Examples
    --------
    >>> import tempfile, zarrflow as zf
    >>> url = tempfile.mkdtemp() + "/a.zarr"
    >>> a = zf.create(url, shape=(0, 3), chunks=(4, 3), dtype="i4")
    >>> run_appenders(url, None, processes=2, rounds=3)
    {'rows': 6, 'lost': 0}
    """
    argsets = [(url, storage_options, k + 1, rounds, conditional) for k in range(processes)]
    outcomes = _run(_appender, argsets, processes)
    errors = [detail for kind, detail in outcomes if kind == "error"]
    if errors:
        raise RuntimeError(f"an appender failed: {errors[0]}")
    got = _open(url, storage_options, "r")[...]
    lost = 0
    for k in range(processes):
        mine = int((got == k + 1).all(axis=1).sum())
        lost += max(0, rounds - mine)
    return {"rows": processes * rounds, "lost": lost}
