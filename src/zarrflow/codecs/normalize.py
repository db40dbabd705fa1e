"""Turn what users pass to ``create`` into the codec configs Zarr stores.

A compressor may be given as a name (``"zstd"``), a ``(name, {options})``
pair, a numcodecs codec instance, a numcodecs config dict, or None. v2 stores
numcodecs configs; v3 stores a ``codecs`` list, built here from the same
inputs (or normalised from an explicit list).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numcodecs.blosc
import numpy as np
from numcodecs.abc import Codec

from zarrflow.codecs.numcodecs_stages import filter_encoded_spec, get_numcodec, numcodecs_kind
from zarrflow.codecs.pipeline import parse_codecs_v3
from zarrflow.codecs.registry import ChunkSpec
from zarrflow.codecs.v3 import NUMCODECS_PREFIX, numcodecs_to_v3, v3_to_numcodecs
from zarrflow.errors import CodecError, UnknownCodecError
from zarrflow.metadata.object_dtypes import object_kind

__all__ = [
    "COMPRESSOR_NAMES",
    "DEFAULT_COMPRESSOR",
    "build_codecs_v3",
    "normalize_compressor_v2",
    "normalize_filters_v2",
]

#: The compressor ``create`` uses when none is named.
DEFAULT_COMPRESSOR: dict[str, Any] = {"id": "zstd", "level": 3, "checksum": False}
#: Compressor names accepted by name (any other numcodecs id works too).
COMPRESSOR_NAMES = ("zstd", "blosc", "lz4", "gzip", "zlib", "bz2", "lzma")
_NEEDS_DTYPE = ("delta", "fixedscaleoffset", "quantize")
_VLEN_CODECS = {"string": "vlen-utf8", "variable_length_bytes": "vlen-bytes"}


def _config_from_name(name: str, options: Mapping[str, Any], what: str) -> dict[str, Any]:
    if name == "zstd":
        return {**DEFAULT_COMPRESSOR, **options}
    try:
        return {"id": name, **get_numcodec({"id": name, **options}).get_config()}
    except UnknownCodecError as e:
        raise UnknownCodecError(
            f"unknown {what} {name!r}; known names: {', '.join(COMPRESSOR_NAMES)} "
            "(or any numcodecs codec id)"
        ) from e


def _to_numcodecs_config(x: Any, what: str, dtype: np.dtype | None = None) -> dict[str, Any]:
    """One compressor or filter, in any accepted form, as a validated numcodecs config."""
    if isinstance(x, Codec):
        return x.get_config()
    if isinstance(x, str):
        name, options = x, {}
    elif (
        isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) and isinstance(x[1], Mapping)
    ):
        name, options = x[0], dict(x[1])
    elif isinstance(x, Mapping) and isinstance(x.get("id"), str):
        name, options = x["id"], {k: v for k, v in x.items() if k != "id"}
    elif isinstance(x, Mapping) and isinstance(x.get("name"), str):  # a v3 codec object
        config = v3_to_numcodecs(x["name"], x.get("configuration") or {})
        name, options = config.pop("id"), config
    else:
        raise CodecError(
            f"cannot use {x!r} as a {what}: give a name, (name, {{options}}), "
            "a numcodecs codec or a numcodecs config dict"
        )
    if dtype is not None and name in _NEEDS_DTYPE and "dtype" not in options:
        options["dtype"] = np.dtype(dtype).str
    config = _config_from_name(name, options, what)
    if config["id"] == "blosc" and config.get("cname") not in numcodecs.blosc.list_compressors():
        known = ", ".join(numcodecs.blosc.list_compressors())
        raise CodecError(f"blosc: unknown cname {config.get('cname')!r}; known: {known}")
    return config


def normalize_compressor_v2(x: Any) -> dict[str, Any] | None:
    """A v2 ``compressor``: a numcodecs config dict, or None for no compression.

    Examples
    --------
    >>> normalize_compressor_v2("zstd")
    {'id': 'zstd', 'level': 3}
    >>> normalize_compressor_v2(("gzip", {"level": 5}))
    {'id': 'gzip', 'level': 5}
    >>> normalize_compressor_v2(None) is None
    True
    """
    if x is None:
        return None
    config = _to_numcodecs_config(x, "compressor")
    if config["id"] == "zstd" and config.get("checksum") is False:
        # the same codec to numcodecs and zarr-python, and tensorstore's v2 driver
        # refuses a zstd compressor that names a checksum at all
        del config["checksum"]
    return config


def normalize_filters_v2(x: Any, dtype: Any = None) -> list[dict[str, Any]] | None:
    """v2 ``filters``: a list of numcodecs configs, or None when there are none.

    ``dtype`` fills in the ``dtype`` of filters that need one when given by name.

    Examples
    --------
    >>> normalize_filters_v2(["delta"], dtype="<i4")
    [{'id': 'delta', 'dtype': '<i4', 'astype': '<i4'}]
    >>> normalize_filters_v2([]) is None
    True
    """
    if x is None:
        return None
    items = [x] if isinstance(x, str | Mapping | Codec | tuple) else list(x)
    dt = None if dtype is None else np.dtype(dtype)
    configs = [_to_numcodecs_config(item, "filter", dt) for item in items]
    return configs or None


def _v3_codec(x: Any, dtype: np.dtype) -> dict[str, Any]:
    """One entry of an explicit v3 ``codecs`` list, as a v3 codec object."""
    if isinstance(x, str):
        if x in ("zstd", "gzip", "blosc"):  # zarr-python requires their configuration
            return numcodecs_to_v3(normalize_compressor_v2(x), dtype)  # type: ignore[arg-type]
        return {"name": x}
    if isinstance(x, Codec):
        x = x.get_config()
    if isinstance(x, Mapping) and isinstance(x.get("id"), str):
        config = {k: v for k, v in x.items() if k != "id"}
        return {"name": NUMCODECS_PREFIX + x["id"], "configuration": config}
    if isinstance(x, Mapping) and isinstance(x.get("name"), str):
        codec = {"name": x["name"]}
        if x.get("configuration") is not None:
            codec["configuration"] = dict(x["configuration"])
        return codec
    raise CodecError(
        f"cannot use {x!r} as a v3 codec: give a name, a codec object or a numcodecs codec"
    )


def _filter_codecs_v3(filters: Any, dtype: np.dtype) -> tuple[list[dict], list[dict], np.dtype]:
    """v2-style filters as v3 ``numcodecs.*`` codecs split by kind, and the dtype ``bytes`` sees."""
    before, after = [], []
    for config in normalize_filters_v2(filters, dtype) or ():
        cid = config["id"]
        codec = {
            "name": NUMCODECS_PREFIX + cid,
            "configuration": {k: v for k, v in config.items() if k != "id"},
        }
        if numcodecs_kind(cid) == "array_to_array":
            before.append(codec)
            spec = filter_encoded_spec(cid, config, ChunkSpec((1,), dtype))
            dtype = spec.dtype if spec is not None else dtype
        else:
            after.append(codec)
    return before, after, dtype


def _listed(x: Any) -> list[Any]:
    return [x] if isinstance(x, str | Mapping | Codec | tuple) else list(x)


def _filter_id(x: Any) -> Any:
    if isinstance(x, Codec):
        return x.codec_id
    if isinstance(x, Mapping):
        return x.get("id")
    return x


def build_codecs_v3(
    *,
    compressor: Any = None,
    filters: Any = None,
    codecs: Sequence[Any] | None = None,
    dtype: Any,
    order: str = "C",
    ndim: int | None = None,
) -> list[dict[str, Any]]:
    """The v3 ``codecs`` list for ``create``.

    With ``codecs``, that list normalised (names -> ``{"name": ...}``,
    numcodecs codecs -> ``numcodecs.<id>``) and checked. Otherwise:
    ``transpose`` when ``order`` is "F" (needs ``ndim``), the filters as
    ``numcodecs.*`` codecs, ``bytes`` (little-endian), then the compressor
    (zstd, blosc and gzip as the core v3 codecs, others as ``numcodecs.<id>``).

    Examples
    --------
    >>> build_codecs_v3(compressor="zstd", dtype="int32")
    [{'name': 'bytes', 'configuration': {'endian': 'little'}}, \
{'name': 'zstd', 'configuration': {'level': 3, 'checksum': False}}]
    >>> build_codecs_v3(codecs=["bytes", "crc32c"], dtype="uint8")
    [{'name': 'bytes'}, {'name': 'crc32c'}]
    """
    dtype = np.dtype(dtype)
    if codecs is not None:
        result = [_v3_codec(c, dtype) for c in codecs]
        parse_codecs_v3(result)
        return result
    result = []
    if order == "F":
        if ndim is None:
            raise CodecError("order='F' for Zarr v3 needs ndim= to build the transpose codec")
        if ndim > 1:
            result.append(
                {"name": "transpose", "configuration": {"order": list(range(ndim))[::-1]}}
            )
    elif order != "C":
        raise CodecError(f"order must be 'C' or 'F', got {order!r}")
    vlen = _VLEN_CODECS.get(object_kind(dtype))  # type: ignore[arg-type]
    if vlen is not None and filters:  # a v2 object codec filter is v3's vlen codec itself
        filters = [f for f in _listed(filters) if _filter_id(f) != vlen] or None
    before, after, bytes_dtype = _filter_codecs_v3(filters, dtype)
    result += before
    if vlen is not None:  # variable-length: zarr-python's vlen-utf8 / vlen-bytes
        result.append({"name": vlen, "configuration": {}})
        bytes_dtype = np.dtype("u1")
    elif bytes_dtype.byteorder == "|":  # one byte, S, V, structured: no byte order
        result.append({"name": "bytes"})
    else:
        result.append({"name": "bytes", "configuration": {"endian": "little"}})
    result += after
    if isinstance(compressor, Mapping) and isinstance(compressor.get("name"), str):
        result.append(_v3_codec(compressor, bytes_dtype))
    elif compressor is not None:
        result.append(numcodecs_to_v3(normalize_compressor_v2(compressor), bytes_dtype))  # type: ignore[arg-type]
    parse_codecs_v3(result)
    return result
