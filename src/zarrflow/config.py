"""zarrflow's defaults, under Dask's config namespace (``zarrflow.*``).

Set them the way Dask's own are set: ``dask.config.set({"zarrflow.io_concurrency": 64})``,
a YAML file in ``~/.config/dask/``, or ``DASK_ZARRFLOW__IO_CONCURRENCY=64``.
"""

from __future__ import annotations

import dask

__all__ = ["DEFAULTS", "get"]

DEFAULTS: dict = {
    "zarrflow": {
        # per-chunk write locking: auto (thread lock locally, distributed lock on a
        # cluster), thread, distributed, or none (unsafe; for benchmarks and tests)
        "lock": "auto",
        # reads spanning fewer chunks than this run inline, without a graph
        "inline_chunks": 8,
        # chunk_stream / parallel_chunk_map default concurrency (None: number of cores)
        "parallelism": None,
        # outstanding storage requests for remote stores, across the whole process
        "io_concurrency": 64,
        # a task carries several whole chunks when chunks are smaller than this
        "task_target_bytes": 4 * 2**20,
        # transient storage errors: attempts and backoff
        "retries": {"attempts": 5, "backoff": 0.1, "max_backoff": 5.0, "max_time": 60.0},
    }
}

dask.config.update_defaults(DEFAULTS)


def get(key: str):
    """A zarrflow setting from Dask's config, e.g. ``get("io_concurrency")``.

    Examples
    --------
    >>> get("lock")
    'auto'
    """
    return dask.config.get(f"zarrflow.{key}")
