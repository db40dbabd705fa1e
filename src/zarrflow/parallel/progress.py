"""Progress callbacks: ``progress_callback(done, total)`` objects for streams, maps and the CLI.

Library code never prints; these are passed in by callers that want a bar.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["TextProgressBar"]


class TextProgressBar:
    """A one-line text progress bar, usable as ``progress_callback``.

    On a terminal the bar redraws in place (at most ten times a second) and
    ends with a newline when the work is done. On anything else (a pipe, a
    log file) only the finished line is written, so captured output holds
    no carriage returns.

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

    Examples
    --------
    >>> import io
    >>> buf = io.StringIO()
    >>> bar = TextProgressBar("read", stream=buf)
    >>> bar(1, 2); bar(2, 2)
    >>> "100%" in buf.getvalue(), "\\r" in buf.getvalue()
    (True, False)
    """

    def __init__(
        self,
        label: str = "",
        stream: TextIO | None = None,
        width: int = 30,
        live: bool | None = None,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.live = _isatty(self.stream) if live is None else live
        self._start = time.perf_counter()
        self._last = 0.0
        self._open = False  # a live line is drawn and not yet ended

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        finished = done >= total
        if not finished and (not self.live or now - self._last < 0.1):
            return
        self._last = now
        frac = done / total if total else 1.0
        filled = round(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{self.label:<24} [{bar}] {frac:4.0%} {done}/{total} {now - self._start:5.2f}s"
        self.stream.write(("\r" if self.live else "") + line + ("\n" if finished else ""))
        self.stream.flush()
        self._open = self.live and not finished

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
