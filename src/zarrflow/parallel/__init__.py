"""The Dask layer: every chunk operation as Dask tasks, driving a chunk engine.

Everything here takes a :class:`~zarrflow.chunks.ChunkEngine` (``Array.engine``),
never an Array: :func:`to_dask`, :func:`parallel_read` / :func:`parallel_write`
(what ``a[...]`` uses), :func:`store_dask` / :func:`plan_write` (``to_zarr``),
and :func:`chunk_stream`, :func:`parallel_chunk_map`, :func:`reduce_chunks`.
:mod:`.driver` and :mod:`.futures` run batched chunk work on threads, processes
or a cluster; :mod:`.reduction` folds results on a cluster's workers;
:mod:`.scheduling` resolves ``scheduler=``; :mod:`.progress` draws progress.
"""

from __future__ import annotations

from zarrflow.parallel.dask_read import (
    TaskScope,
    block_shape,
    in_task,
    parallel_read,
    parallel_write,
    to_dask,
)
from zarrflow.parallel.dask_write import WritePlan, plan_write, store_dask
from zarrflow.parallel.scheduling import Backend, default_parallelism, resolve_backend
from zarrflow.parallel.stream import chunk_stream, parallel_chunk_map, reduce_chunks

__all__ = [
    "Backend",
    "TaskScope",
    "WritePlan",
    "block_shape",
    "chunk_stream",
    "default_parallelism",
    "in_task",
    "parallel_chunk_map",
    "parallel_read",
    "parallel_write",
    "plan_write",
    "reduce_chunks",
    "resolve_backend",
    "store_dask",
    "to_dask",
]
