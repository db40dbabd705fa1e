"""An array's codecs as zarr-python shows them: ``compressors``, ``filters``, ``serializer``.

zarr-python 3 splits an array's codecs by kind. For a v2 array the filters
and the compressor are numcodecs codec objects (as zarr-python returns them);
for a v3 array each codec is its JSON form, ``{"name": ..., "configuration":
{...}}`` — what :func:`zarrflow.create`, zarr-python's ``create_array`` and
xarray's ``to_zarr`` encoding accept. A sharded v3 array shows the codecs
inside its shards (zarr-python's ``inner_codecs``).

Examples
--------
>>> from zarrflow.metadata import ArrayMetadataV2
>>> meta = ArrayMetadataV2.create(shape=4, chunks=2, dtype="i4",
...                               compressor={"id": "zlib", "level": 1})
>>> compressors(meta), filters(meta), serializer(meta)
((Zlib(level=1),), (), None)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from zarrflow.codecs import lookup_codec
from zarrflow.errors import ZarrflowError
from zarrflow.storage import LocalStore, Store

__all__ = ["compressors", "filters", "serializer", "stored_bytes"]


def _numcodec(config: Mapping[str, Any]) -> Any:
    """A numcodecs codec object for a v2 config, or the config itself if numcodecs lacks it."""
    import numcodecs

    try:
        return numcodecs.get_codec(dict(config))
    except (KeyError, ValueError, TypeError):
        return dict(config)


def _v3_codecs(meta) -> list[dict[str, Any]]:
    """The v3 codec list, the one inside the shards for a sharded array, in JSON form."""
    codecs = [dict(c) for c in meta.codecs]
    if len(codecs) == 1 and codecs[0]["name"] == "sharding_indexed":
        inner = (codecs[0].get("configuration") or {}).get("codecs") or ["bytes"]
        codecs = [{"name": c} if isinstance(c, str) else dict(c) for c in inner]
    return codecs


def _kind(codec: Mapping[str, Any], seen_serializer: bool) -> str:
    try:
        return lookup_codec(codec["name"]).kind
    except ZarrflowError:  # unknown to zarrflow: its place in the list says what it is
        return "bytes_to_bytes" if seen_serializer else "array_to_array"


def _split_v3(meta) -> tuple[list[dict], dict | None, list[dict]]:
    before, serial, after = [], None, []
    for codec in _v3_codecs(meta):
        kind = _kind(codec, serial is not None)
        if kind == "array_to_bytes" and serial is None:
            serial = codec
        elif serial is None:
            before.append(codec)
        else:
            after.append(codec)
    return before, serial, after


def compressors(meta) -> tuple[Any, ...]:
    """The bytes-to-bytes codecs (v2: the numcodecs compressor), in order.

    Examples
    --------
    >>> from zarrflow.metadata import ArrayMetadataV3
    >>> gzip = {"name": "gzip", "configuration": {"level": 1}}
    >>> meta = ArrayMetadataV3.create(shape=4, chunks=2, dtype="int8", codecs=["bytes", gzip])
    >>> compressors(meta)
    ({'name': 'gzip', 'configuration': {'level': 1}},)
    """
    if meta.zarr_format == 2:
        return () if meta.compressor is None else (_numcodec(meta.compressor),)
    return tuple(_split_v3(meta)[2])


def filters(meta) -> tuple[Any, ...]:
    """The array-to-array codecs (v2: numcodecs filter objects), in order.

    Examples
    --------
    >>> from zarrflow.metadata import ArrayMetadataV3
    >>> meta = ArrayMetadataV3.create(shape=(2, 2), chunks=2, dtype="int8",
    ...     codecs=[{"name": "transpose", "configuration": {"order": [1, 0]}}, "bytes"])
    >>> [f["name"] for f in filters(meta)]
    ['transpose']
    """
    if meta.zarr_format == 2:
        return tuple(_numcodec(f) for f in meta.filters or ())
    return tuple(_split_v3(meta)[0])


def serializer(meta) -> dict[str, Any] | None:
    """The v3 array-to-bytes codec; None for v2, which has none (zarr-python's answer).

    Examples
    --------
    >>> from zarrflow.metadata import ArrayMetadataV3
    >>> serializer(ArrayMetadataV3.create(shape=4, chunks=2, dtype="int16"))["name"]
    'bytes'
    """
    if meta.zarr_format == 2:
        return None
    return _split_v3(meta)[1]


def stored_bytes(store: Store, prefix: str, batch: int = 256) -> int:
    """The total size of the objects under ``prefix``, metadata documents included.

    One listing, then the file sizes on a local store, or each object read
    elsewhere (zarrflow's stores report no sizes).

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> s = MemoryStore()
    >>> s.set("a/zarr.json", b"{}"); s.set("a/c/0", b"1234"); s.set("b/c/0", b"1")
    >>> stored_bytes(s, "a/")
    6
    """
    keys = list(store.list_prefix(prefix))
    if isinstance(store, LocalStore):
        return sum(_file_size(os.path.join(store.root, *k.split("/"))) for k in keys)
    total = 0
    for i in range(0, len(keys), batch):
        total += sum(len(v) for v in store.get_many(keys[i : i + batch]) if v is not None)
    return total


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:  # deleted since the listing
        return 0
