"""Progress callbacks: ``progress_callback(done, total)`` objects for streams, maps and the CLI.

Library code never prints; these are passed in by callers that want a bar.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["TextProgressBar"]


def _count(n: float, unit: str) -> str:
    """``n`` in ``unit``: bytes with a decimal prefix, anything else as a whole number.

    Examples
    --------
    >>> _count(12_345_678, "B"), _count(1234, "chunks")
    ('12.3 MB', '1234')
    """
    if unit != "B":
        return f"{int(n)}"
    for prefix in ("", "k", "M", "G", "T"):
        if abs(n) < 1000 or prefix == "T":
            return f"{n:.0f} {prefix}B" if not prefix else f"{n:.1f} {prefix}B"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


def _duration(seconds: float) -> str:
    """A short duration: ``4.2s``, ``3m05s``, ``2h01m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


class TextProgressBar:
    """A one-line text progress bar, usable as ``progress_callback(done, total)``.

    The line shows the count in the bar's ``unit`` (``"chunks"``, or ``"B"``
    for bytes with a decimal prefix), the rate in that unit per second, and
    while the work runs an estimate of the time left (ETA); the finished
    line shows the elapsed time. On a terminal the bar redraws in place (at
    most ten times a second) and ends with a newline when the work is done.
    On anything else (a pipe, a log file) only the finished line is written,
    so captured output holds no carriage returns. Library code never makes
    one: callers that want a bar pass it in, as with fsspec's ``Callback``.

    Parameters
    ----------
    label
        Shown before the bar.
    stream
        Where to draw (stderr by default).
    width
        Bar width in characters.
    live
        Redraw in place; by default, when ``stream`` is a terminal.
    unit
        What ``done`` and ``total`` count: ``"chunks"`` (the default), ``"B"``
        (bytes), or any other plural noun.

    Examples
    --------
    >>> import io
    >>> buf = io.StringIO()
    >>> bar = TextProgressBar("read", stream=buf, unit="chunks")
    >>> bar(1, 2); bar(2, 2)
    >>> line = buf.getvalue()
    >>> "100% 2/2 chunks" in line, "chunks/s" in line, "\\r" in line
    (True, True, False)
    """

    def __init__(
        self,
        label: str = "",
        stream: TextIO | None = None,
        width: int = 30,
        live: bool | None = None,
        unit: str = "chunks",
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.live = _isatty(self.stream) if live is None else live
        self.unit = unit
        self._start = time.perf_counter()
        self._last = 0.0
        self._open = False  # a live line is drawn and not yet ended

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        finished = done >= total
        if not finished and (not self.live or now - self._last < 0.1):
            return
        self._last = now
        self.stream.write(("\r" if self.live else "") + self.line(done, total, now - self._start))
        self.stream.write("\n" if finished else "")
        self.stream.flush()
        self._open = self.live and not finished

    def line(self, done: int, total: int, elapsed: float) -> str:
        """The bar's text for ``done`` of ``total`` after ``elapsed`` seconds.

        Examples
        --------
        >>> TextProgressBar("copy", width=4, unit="B").line(500_000, 1_000_000, 2.0)
        'copy                     [##--]  50% 500.0 kB/1.0 MB 250.0 kB/s ETA 2.0s'
        """
        frac = min(1.0, done / total) if total else 1.0
        filled = round(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        unit = self.unit
        counts = (
            f"{_count(done, unit)}/{_count(total, unit)}"
            if unit == "B"
            else f"{done}/{total} {unit}"
        )
        rate = done / elapsed if elapsed > 0 else 0.0
        speed = f"{_count(rate, unit)}/s" if unit == "B" else f"{rate:.0f} {unit}/s"
        if done >= total:
            when = f"in {_duration(elapsed)}"
        elif rate > 0:
            when = f"ETA {_duration((total - done) / rate)}"
        else:
            when = "ETA -"
        return f"{self.label:<24} [{bar}] {frac:4.0%} {counts} {speed} {when}"

    def close(self) -> None:
        """End a bar left unfinished (the work failed or stopped early) with a newline."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def __enter__(self) -> TextProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def compute_with_progress(
    collection,
    backend,
    progress_callback=None,
    prefix: str = "zarrflow-",
    pool: Any = None,
):
    """Compute a dask collection, reporting ``(done, total)`` of its ``prefix`` tasks.

    On the local schedulers progress comes from Dask's scheduler callbacks; on a
    cluster from the futures of the persisted collection completing. Either
    way ``progress_callback`` runs in the caller's thread (for the local
    schedulers: Dask's own calling thread). ``pool`` is the thread pool the
    threaded scheduler runs on (see :func:`~zarrflow.parallel.scheduling.
    own_thread_pool`); other schedulers ignore it.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> from zarrflow.parallel.scheduling import Backend
    >>> x = da.from_array(np.ones(4), chunks=1, name="zarrflow-doc")
    >>> seen = []
    >>> int(compute_with_progress(x.sum(), Backend("sync"), lambda d, t: seen.append((d, t)),
    ...                           prefix="zarrflow-doc"))
    4
    >>> seen[-1]
    (4, 4)
    """
    local = {"pool": pool} if pool is not None and backend.kind == "threads" else {}
    if progress_callback is None:
        return collection.compute(scheduler=backend.dask_scheduler, **local)
    if backend.kind == "distributed":
        from distributed import as_completed, futures_of

        client = backend.client
        persisted = client.persist(collection)
        futures = [f for f in futures_of(persisted) if str(f.key).find(prefix) >= 0]
        futures = futures or futures_of(persisted)
        for done, _ in enumerate(as_completed(futures), 1):
            progress_callback(done, len(futures))
        return client.compute(persisted).result()
    from dask.callbacks import Callback

    def _name(key) -> str:
        return key[0] if isinstance(key, tuple) else str(key)

    state = {"total": 0, "done": 0}

    def start_state(dsk, _state):
        state["total"] = sum(1 for k in dsk if _name(k).startswith(prefix)) or len(dsk)

    def posttask(key, result, dsk, _state, worker_id):
        if _name(key).startswith(prefix) or state["total"] == len(dsk):
            state["done"] += 1
            progress_callback(state["done"], state["total"])

    with Callback(start_state=start_state, posttask=posttask):
        return collection.compute(scheduler=backend.dask_scheduler, **local)
