"""The codecs layer: one chunk's bytes <-> one chunk's array, for Zarr v2 and v3.

:class:`CodecPipeline` encodes and decodes chunks (built from array metadata);
the ``normalize_*`` / :func:`build_codecs_v3` functions turn what users pass
to ``create`` into the codec configs Zarr stores. New v3 codecs plug in with
:func:`register_codec`, as ``sharding_indexed`` (:class:`ShardingCodec`,
:func:`wrap_in_sharding`) does.

Examples
--------
>>> import numpy as np
>>> from zarrflow.codecs import CodecPipeline, build_codecs_v3
>>> codecs = build_codecs_v3(compressor="zstd", dtype="uint8")
>>> p = CodecPipeline.from_v3(codecs, np.dtype("uint8"), (2, 2))
>>> p.decode(p.encode(np.eye(2, dtype="uint8"))).tolist()
[[1, 0], [0, 1]]
"""

from __future__ import annotations

from zarrflow.codecs import v3 as _v3  # noqa: F401 - registers the core v3 codecs
from zarrflow.codecs.normalize import (
    DEFAULT_COMPRESSOR,
    build_codecs_v3,
    normalize_compressor_v2,
    normalize_filters_v2,
)
from zarrflow.codecs.pipeline import CodecPipeline, parse_codecs_v3
from zarrflow.codecs.registry import (
    ArrayArrayCodec,
    ArrayBytesCodec,
    BytesBytesCodec,
    ChunkSpec,
    known_codec_names,
    lookup_codec,
    register_codec,
)
from zarrflow.codecs.sharding import (
    DEFAULT_INDEX_CODECS,
    ShardingCodec,
    coalesce_ranges,
    wrap_in_sharding,
)

__all__ = [
    "DEFAULT_COMPRESSOR",
    "DEFAULT_INDEX_CODECS",
    "ArrayArrayCodec",
    "ArrayBytesCodec",
    "BytesBytesCodec",
    "ChunkSpec",
    "CodecPipeline",
    "ShardingCodec",
    "build_codecs_v3",
    "coalesce_ranges",
    "known_codec_names",
    "lookup_codec",
    "normalize_compressor_v2",
    "normalize_filters_v2",
    "parse_codecs_v3",
    "register_codec",
    "wrap_in_sharding",
]
