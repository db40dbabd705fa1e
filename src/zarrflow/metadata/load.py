"""Finding and loading the metadata of the node at a path in a store."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zarrflow.errors import (
    ArrayNotFoundError,
    GroupNotFoundError,
    MetadataError,
    NodeNotFoundError,
)
from zarrflow.metadata.cache import default_metadata_cache, read_through
from zarrflow.metadata.group import GroupMetadata, NodeMetadata
from zarrflow.metadata.json import load_json_object, where
from zarrflow.metadata.v2 import ArrayMetadataV2
from zarrflow.metadata.v3 import ArrayMetadataV3

if TYPE_CHECKING:
    from zarrflow.storage import Store

__all__ = [
    "METADATA_NAMES",
    "UnreadableMetadata",
    "load_node",
    "node_from_json",
    "node_from_json_or_error",
    "node_key",
]

#: the metadata document names of each format, in the order load_node reads them
METADATA_NAMES = {3: ("zarr.json",), 2: (".zarray", ".zgroup", ".zattrs")}


def node_key(path: str, name: str) -> str:
    """The store key of ``name`` below the node at ``path`` (``""`` is the root).

    Examples
    --------
    >>> node_key("", "zarr.json"), node_key("a/b/", ".zarray")
    ('zarr.json', 'a/b/.zarray')
    """
    path = path.strip("/")
    return f"{path}/{name}" if path else name


@dataclass(frozen=True)
class UnreadableMetadata:
    """A member's metadata that zarrflow cannot read (an unknown data type, extension...).

    Consolidated metadata keeps it in place of the member's metadata, so the
    rest of the hierarchy opens; opening the member raises :attr:`error`.
    :meth:`to_json` gives back the documents as they were stored.

    Examples
    --------
    >>> bad = node_from_json_or_error({"zarr.json": {"zarr_format": 3, "node_type": "array",
    ...     "data_type": "float8_e4m3"}}, "x")
    >>> type(bad).__name__, bad.zarr_format
    ('UnreadableMetadata', 3)
    """

    docs: dict[str, Any]
    error: MetadataError
    zarr_format: int = 3
    node_type: str = field(default="unreadable")

    def to_json(self) -> dict[str, Any]:
        """The documents as stored."""
        return copy.deepcopy(self.docs)


def node_from_json_or_error(
    docs: Mapping[str, Any], path: str | None = None, zarr_format: int | None = None
) -> NodeMetadata | UnreadableMetadata | None:
    """:func:`node_from_json`, with a :class:`UnreadableMetadata` for what cannot be read.

    Examples
    --------
    >>> node_from_json_or_error({".zgroup": {"zarr_format": 2}}).zarr_format
    2
    """
    try:
        return node_from_json(docs, path, zarr_format)
    except MetadataError as e:
        fmt = 3 if "zarr.json" in docs and zarr_format != 2 else 2
        return UnreadableMetadata(dict(docs), e, fmt)


def node_from_json(
    docs: Mapping[str, Any], path: str | None = None, zarr_format: int | None = None
) -> NodeMetadata | None:
    """The node described by decoded metadata documents (file name -> JSON object).

    ``zarr.json`` wins over v2 documents unless ``zarr_format=2``; None when
    ``docs`` describe no node (e.g. only ``.zattrs``).

    Examples
    --------
    >>> node_from_json({".zgroup": {"zarr_format": 2}, ".zattrs": {"a": 1}}).attributes
    {'a': 1}
    """
    if zarr_format not in (None, 2, 3):
        raise MetadataError(f"zarr_format must be 2, 3 or None, got {zarr_format!r}")
    doc = docs.get("zarr.json")
    if doc is not None and zarr_format != 2:
        node_type = doc.get("node_type")
        if node_type == "array":
            return ArrayMetadataV3.from_json(doc, None, path)
        if node_type == "group":
            return GroupMetadata.from_json(doc, None, path)
        with where(path, "node"):
            raise MetadataError(
                f"zarr.json node_type must be 'array' or 'group', got {node_type!r}"
            )
    if zarr_format == 3:
        return None
    zarray, zgroup, attrs = docs.get(".zarray"), docs.get(".zgroup"), docs.get(".zattrs")
    if zarray is not None and zgroup is not None:
        with where(path, "node"):
            raise MetadataError("both .zarray and .zgroup exist: is it an array or a group?")
    if zarray is not None:
        return ArrayMetadataV2.from_json(zarray, attrs, path)
    if zgroup is not None:
        return GroupMetadata.from_json(zgroup, attrs, path)
    return None


def _store_label(store: Store) -> str:
    return store.url or repr(store)


def _not_found(
    store: Store, path: str, zarr_format: int | None, node_type: str | None, found: str = ""
) -> None:
    kind = node_type or "array or group"
    version = f"Zarr v{zarr_format} " if zarr_format else ""
    message = f"no {version}{kind} at path {path!r} in store {_store_label(store)}"
    if found:
        message += f" (found a {found})"
    error = {"array": ArrayNotFoundError, "group": GroupNotFoundError}.get(
        node_type or "", NodeNotFoundError
    )
    raise error(message)


def load_node(
    store: Store,
    path: str = "",
    zarr_format: int | None = None,
    *,
    node_type: str | None = None,
) -> NodeMetadata:
    """Load the metadata of the array or group at ``path``.

    All candidate documents (``zarr.json``, ``.zarray``, ``.zgroup``,
    ``.zattrs``) are fetched in one ``get_many`` call; v3 is preferred when
    both formats are present and ``zarr_format`` is None.

    Parameters
    ----------
    store
        Where to look.
    path
        The node's path (``""`` for the root).
    zarr_format
        2 or 3 to look for one format only; None for either.
    node_type
        ``"array"`` or ``"group"`` to require that kind of node.

    Returns
    -------
    ArrayMetadataV2 or ArrayMetadataV3 or GroupMetadata

    Raises
    ------
    NodeNotFoundError
        (:class:`ArrayNotFoundError` / :class:`GroupNotFoundError` when
        ``node_type`` is given) if there is no such node.
    MetadataError
        If a document is not valid JSON or not valid metadata.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = MemoryStore()
    >>> store.set("g/zarr.json", GroupMetadata(3).to_documents()["zarr.json"])
    >>> load_node(store, "g").node_type
    'group'
    """
    path = path.strip("/")
    if zarr_format not in (None, 2, 3):
        raise MetadataError(f"zarr_format must be 2, 3 or None, got {zarr_format!r}")
    if node_type not in (None, "array", "group"):
        raise ValueError(f"node_type must be 'array', 'group' or None, got {node_type!r}")
    if zarr_format != 2 and default_metadata_cache() is not None:
        meta = _cached_v3(store, path)
        if meta is not None:
            if node_type is not None and meta.node_type != node_type:
                _not_found(store, path, zarr_format, node_type, found=meta.node_type)
            return meta
    names = METADATA_NAMES[zarr_format] if zarr_format else (*METADATA_NAMES[3], *METADATA_NAMES[2])
    values = store.get_many([node_key(path, name) for name in names])
    found = {name: value for name, value in zip(names, values, strict=True) if value is not None}
    if "zarr.json" in found:  # v3 wins: do not even parse the v2 documents
        found = {"zarr.json": found["zarr.json"]}
    docs = {name: load_json_object(value, node_key(path, name)) for name, value in found.items()}
    meta = node_from_json(docs, path, zarr_format)
    if meta is None:
        _not_found(store, path, zarr_format, node_type)
    elif node_type is not None and meta.node_type != node_type:
        _not_found(store, path, zarr_format, node_type, found=meta.node_type)
    return meta  # type: ignore[return-value]


def _cached_v3(store: Store, path: str) -> NodeMetadata | None:
    """The v3 node at ``path`` through the metadata cache (None: no ``zarr.json``)."""
    key = node_key(path, "zarr.json")

    def parse(raw: bytes) -> NodeMetadata | None:
        return node_from_json({"zarr.json": load_json_object(raw, key)}, path, 3)

    return read_through(store, key, parse, "node")
