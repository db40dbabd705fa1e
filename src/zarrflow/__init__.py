"""zarrflow: parallel chunk I/O for Zarr v2 and v3 arrays, where every chunk is a Dask task.

Examples
--------
>>> import zarrflow as zf
>>> a = zf.create("memory://doc-init", shape=(100, 100), chunks=(10, 10), dtype="int32")
>>> a[:10, :10] = 1
>>> int(a[:].sum())
100
"""

from __future__ import annotations

from zarrflow import config as _config  # noqa: F401 - registers zarrflow.* Dask config defaults
from zarrflow.api import (
    array,
    consolidate_metadata,
    create,
    empty,
    full,
    ones,
    open,
    open_array,
    open_consolidated,
    open_group,
    plan_write,
    to_zarr,
    zeros,
)
from zarrflow.chunks.cache import ChunkCache
from zarrflow.errors import (
    ArrayNotFoundError,
    ChunkFailure,
    ChunkTimeoutError,
    CodecError,
    ContainsArrayError,
    ContainsGroupError,
    CorruptChunkError,
    GenerationConflictError,
    GroupNotFoundError,
    KeyPathError,
    MetadataError,
    NodeNotFoundError,
    ParallelChunkError,
    ReadOnlyError,
    SelectionError,
    StoreError,
    TransientStoreError,
    UnknownCodecError,
    UnsupportedExtensionError,
    UnsupportedOperationError,
    ValueShapeError,
    ZarrflowError,
)
from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.group import Group
from zarrflow.parallel.dask_write import WritePlan

__version__ = "0.1.0"

_LAZY = {
    "profile": "zarrflow.telemetry.profile",
    "batches": "zarrflow.integrations.loader",
    "to_dask_dataframe": "zarrflow.integrations.dataframe",
    "from_dask_dataframe": "zarrflow.integrations.dataframe",
}


def __getattr__(name: str):
    # pandas-backed helpers load on first use: pandas is not a core dependency
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zarrflow' has no attribute {name!r}")


__all__ = [
    "Array",
    "ArrayNotFoundError",
    "ChunkCache",
    "ChunkFailure",
    "ChunkTimeoutError",
    "CodecError",
    "ContainsArrayError",
    "ContainsGroupError",
    "CorruptChunkError",
    "GenerationConflictError",
    "Group",
    "GroupNotFoundError",
    "KeyPathError",
    "MetadataError",
    "NodeNotFoundError",
    "ParallelChunkError",
    "ReadOnlyError",
    "SelectionError",
    "StoreError",
    "TransientStoreError",
    "UnknownCodecError",
    "UnsupportedExtensionError",
    "UnsupportedOperationError",
    "ValueShapeError",
    "WritePlan",
    "ZarrflowError",
    "__version__",
    "array",
    "batches",
    "consolidate_metadata",
    "create",
    "empty",
    "from_dask_dataframe",
    "full",
    "ones",
    "open",
    "open_array",
    "open_consolidated",
    "open_group",
    "plan_write",
    "profile",
    "to_dask_dataframe",
    "to_zarr",
    "zeros",
]
