"""The public face: create and open arrays and groups from URLs, paths or stores.

:mod:`~zarrflow.api.creation` creates arrays, :mod:`~zarrflow.api.opening`
opens arrays and groups as a mode says, :mod:`~zarrflow.api.writing` writes
dask arrays (``to_zarr``); :mod:`~zarrflow.api.stores` is what they share.

Examples
--------
>>> import zarrflow.api as api
>>> api.zeros(3, dtype="i1")[:].tolist()
[0, 0, 0]
"""

from __future__ import annotations

from zarrflow.api.creation import array, create, empty, full, ones, zeros
from zarrflow.api.opening import (
    consolidate_metadata,
    open,
    open_array,
    open_consolidated,
    open_group,
)
from zarrflow.api.stores import Mode, StoreLike
from zarrflow.api.writing import plan_write, to_zarr

__all__ = [
    "Mode",
    "StoreLike",
    "array",
    "consolidate_metadata",
    "create",
    "empty",
    "full",
    "ones",
    "open",
    "open_array",
    "open_consolidated",
    "open_group",
    "plan_write",
    "to_zarr",
    "zeros",
]
