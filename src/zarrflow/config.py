"""zarrflow's defaults, under Dask's config namespace (``zarrflow.*``).

Set them the way Dask's own are set: ``dask.config.set({"zarrflow.io_concurrency": 64})``,
a YAML file in ``~/.config/dask/``, or ``DASK_ZARRFLOW__IO_CONCURRENCY=64``. Settings
are per process: on a ``distributed`` cluster each worker reads its own
configuration (environment variables reach the workers most simply).
"""

from __future__ import annotations

from typing import Any

import dask

__all__ = ["DEFAULTS", "get"]

DEFAULTS: dict = {
    "zarrflow": {
        # per-chunk write locking: auto (thread lock locally, distributed lock on a
        # cluster), thread, distributed, or none (unsafe; for benchmarks and tests)
        "lock": "auto",
        # partial chunk/shard writes are conditional on the generation they read
        # (retried on conflict) where the store has generations. False only to
        # demonstrate what that prevents (tests, benchmarks): never in production
        "conditional_writes": True,
        # partial reads of a shard take its index and inner chunks from one
        # generation where the store has generations (False: only to demonstrate)
        "consistent_reads": True,
        # reads spanning fewer chunks than this run inline, without a graph
        "inline_chunks": 8,
        # chunk_stream / parallel_chunk_map default concurrency (None: number of cores)
        "parallelism": None,
        # the most storage requests outstanding at once to remote stores, over the
        # whole process (every store, Dask thread and call share one budget; see
        # zarrflow.storage.retry). Independent of CPU concurrency (Dask's threads).
        "io_concurrency": 64,
        # a task carries several whole chunks when chunks are smaller than this
        "task_target_bytes": 4 * 2**20,
        # transient storage errors (connection errors, timeouts, 429, 5xx, SlowDown):
        # at most `attempts` tries per request, sleeping min(max_backoff,
        # backoff * 2**(n-1)) seconds (half fixed, half random) after the n-th,
        # and never past `max_time` seconds after the first try began (a try still
        # running then is cancelled). For S3 stores zarrflow builds, botocore's and
        # s3fs's own retry loops are off, so these bound every request; see
        # zarrflow.storage.remote for how the loops compose when they are on.
        # the backend of s3:// gs:// az:// http(s):// URLs: "auto" (obstore when it is
        # installed and every storage option maps to it, else fsspec), "obstore" or
        # "fsspec" (see zarrflow.storage.url.store_from_url)
        "object_store": "auto",
        "retries": {"attempts": 5, "backoff": 0.1, "max_backoff": 5.0, "max_time": 60.0},
        # a local stream projected (from its first chunks) to finish within this many
        # seconds stays in the caller's thread; 0: always run as Dask tasks
        "stream_inline_seconds": 0.025,
        # sharded arrays: inner chunks of one shard closer than this many bytes are
        # fetched by one ranged request (None: 64 KiB locally, 1 MiB on remote stores)
        "shard_coalesce_gap": None,
        # a stream / map task over a sharded array groups about this many bytes of
        # inner chunks of one shard (its index fetched once)
        "shard_group_bytes": 16 * 2**20,
        # to_dask reads whole shards per task up to this size, inner chunks above it
        "shard_task_bytes": 64 * 2**20,
        # a process-wide cache of decoded chunks for every array opened without
        # chunk_cache= (0: none); bounded per process, so per worker on a cluster
        # (see zarrflow.chunks.cache)
        "chunk_cache_bytes": 0,
        # seconds a cached chunk is served without asking the store whether it
        # changed; None: always revalidate by generation (stores without
        # generations are then not cached)
        "chunk_cache_max_age": None,
        # parsed zarr.json documents a process keeps for opening nodes (0: no cache);
        # revalidated by generation unless younger than metadata_cache_max_age seconds
        # (see zarrflow.metadata.cache)
        "metadata_cache_entries": 0,
        "metadata_cache_max_age": None,
    }
}

dask.config.update_defaults(DEFAULTS)


def get(key: str) -> Any:
    """A zarrflow setting from Dask's config, e.g. ``get("io_concurrency")``.

    Examples
    --------
    >>> get("lock")
    'auto'
    """
    return dask.config.get(f"zarrflow.{key}")
