"""The metadata layer: Zarr v2/v3 documents, data types, fill values, chunk keys.

Everything above this layer reads array and group metadata through the names
exported here; nothing here does chunk I/O.

Examples
--------
>>> from zarrflow.metadata import ArrayMetadataV3
>>> meta = ArrayMetadataV3.create(shape=(100,), chunks=(10,), dtype="int16")
>>> meta.chunk_key((3,)), meta.parse_chunk_key("c/3")
('c/3', (3,))
"""

from __future__ import annotations

from zarrflow.metadata.chunk_keys import (
    ChunkKeyEncoding,
    chunk_grid_shape,
    parse_chunk_shape,
    parse_shape,
)
from zarrflow.metadata.consolidated import read_consolidated, write_consolidated
from zarrflow.metadata.dtypes import (
    V3_DATA_TYPES,
    dtype_from_json_v2,
    dtype_from_json_v3,
    dtype_to_json_v2,
    dtype_to_json_v3,
    parse_dtype,
)
from zarrflow.metadata.fill_value import (
    DEFAULT_FILL_VALUE,
    default_fill_value,
    fill_value_from_json,
    fill_value_to_json,
    parse_fill_value,
)
from zarrflow.metadata.group import GroupMetadata, NodeMetadata
from zarrflow.metadata.json import json_dumps, json_loads
from zarrflow.metadata.load import UnreadableMetadata, load_node, node_from_json, node_key
from zarrflow.metadata.v2 import ArrayMetadataV2
from zarrflow.metadata.v3 import ArrayMetadataV3

#: the array metadata of either format
ArrayMetadata = ArrayMetadataV2 | ArrayMetadataV3

__all__ = [
    "DEFAULT_FILL_VALUE",
    "V3_DATA_TYPES",
    "ArrayMetadata",
    "ArrayMetadataV2",
    "ArrayMetadataV3",
    "ChunkKeyEncoding",
    "GroupMetadata",
    "NodeMetadata",
    "UnreadableMetadata",
    "chunk_grid_shape",
    "default_fill_value",
    "dtype_from_json_v2",
    "dtype_from_json_v3",
    "dtype_to_json_v2",
    "dtype_to_json_v3",
    "fill_value_from_json",
    "fill_value_to_json",
    "json_dumps",
    "json_loads",
    "load_node",
    "node_from_json",
    "node_key",
    "parse_chunk_shape",
    "parse_dtype",
    "parse_fill_value",
    "parse_shape",
    "read_consolidated",
    "write_consolidated",
]
