"""Consolidated metadata: a whole hierarchy's metadata in one document.

Zarr v2 keeps it in ``.zmetadata``::

    {"zarr_consolidated_format": 1, "metadata": {"a/.zarray": {...}, ...}}

and zarr-python 3 keeps v3's in the root group's ``zarr.json``::

    "consolidated_metadata": {"kind": "inline", "must_understand": false,
                              "metadata": {"a": {...}, "a/b": {...}}}

Both read into one mapping: relative path -> node metadata, with the group
that holds it under ``""``. :func:`probe_node_metadata` reads a node's own
metadata and, for a group, its consolidated metadata in the same requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zarrflow.errors import GenerationConflictError, MetadataError, ReadOnlyError
from zarrflow.metadata.cache import read_through
from zarrflow.metadata.group import GroupMetadata, NodeMetadata
from zarrflow.metadata.json import json_loads, load_json_object, where
from zarrflow.metadata.load import (
    METADATA_NAMES,
    load_node,
    node_from_json,
    node_from_json_or_error,
    node_key,
)
from zarrflow.storage.base import IfGeneration
from zarrflow.storage.keys import is_valid_key

if TYPE_CHECKING:
    from zarrflow.storage import Store

__all__ = [
    "parse_consolidated_v2",
    "parse_consolidated_v3",
    "probe_node_metadata",
    "read_consolidated",
    "write_consolidated",
]

_ZMETADATA = ".zmetadata"


def _join(path: str, relpath: str) -> str:
    return f"{path}/{relpath}" if path and relpath else path or relpath


def parse_consolidated_v2(doc: Mapping[str, Any], path: str = "") -> dict[str, NodeMetadata]:
    """Parse a ``.zmetadata`` document into relative path -> node metadata.

    Examples
    --------
    >>> doc = {"zarr_consolidated_format": 1, "metadata": {
    ...     ".zgroup": {"zarr_format": 2}, "g/.zgroup": {"zarr_format": 2},
    ...     "g/.zattrs": {"a": 1}}}
    >>> nodes = parse_consolidated_v2(doc)
    >>> sorted(nodes), nodes["g"].attributes
    (['', 'g'], {'a': 1})
    """
    with where(path, "group"):
        metadata = doc.get("metadata")
        if doc.get("zarr_consolidated_format") != 1 or not isinstance(metadata, dict):
            raise MetadataError(f"{_ZMETADATA} needs zarr_consolidated_format 1 and metadata")
        by_node: dict[str, dict[str, Any]] = {}
        for key, value in metadata.items():
            relpath, _, name = key.rpartition("/")
            if name not in METADATA_NAMES[2] or (relpath and not is_valid_key(relpath)):
                continue  # a member name that cannot be a key ("..", "a\\b") is never listed
            if not isinstance(value, dict):
                raise MetadataError(f"{_ZMETADATA} entry {key!r} is not a JSON object")
            by_node.setdefault(relpath, {})[name] = value
    nodes = {}
    for relpath, docs in by_node.items():
        if not relpath:  # the group itself must be readable
            meta = node_from_json(docs, path, 2)
        else:  # a member that cannot be read is kept with its error
            meta = node_from_json_or_error(docs, _join(path, relpath), 2)  # type: ignore[assignment]
        if meta is not None:
            nodes[relpath] = meta
    return nodes


def _flatten_v3(metadata: Any, prefix: str = "") -> dict[str, Any]:
    """Relative path -> zarr.json document, nested consolidated entries flattened."""
    if not isinstance(metadata, dict):
        raise MetadataError(f"consolidated_metadata.metadata must be an object, got {metadata!r}")
    flat: dict[str, Any] = {}
    for relpath, doc in metadata.items():
        if not isinstance(doc, dict):
            raise MetadataError(f"consolidated_metadata entry {relpath!r} is malformed")
        full = _join(prefix, relpath.strip("/"))
        nested = doc.get("consolidated_metadata")
        if isinstance(nested, dict) and nested.get("metadata"):
            for sub, sub_doc in _flatten_v3(nested["metadata"], full).items():
                flat.setdefault(sub, sub_doc)
        flat[full] = doc
    return flat


def parse_consolidated_v3(doc: Mapping[str, Any], path: str = "") -> dict[str, NodeMetadata] | None:
    """Parse a v3 group ``zarr.json`` with inline consolidated metadata.

    Returns None when the document carries none (or a kind other than
    ``"inline"``, which ``must_understand: false`` lets us ignore).

    Examples
    --------
    >>> doc = {"zarr_format": 3, "node_type": "group", "consolidated_metadata": {
    ...     "kind": "inline", "must_understand": False, "metadata": {
    ...         "g": {"zarr_format": 3, "node_type": "group"}}}}
    >>> sorted(parse_consolidated_v3(doc))
    ['', 'g']
    """
    inline = doc.get("consolidated_metadata")
    if not isinstance(inline, dict) or inline.get("kind") != "inline":
        return None
    with where(path, "group"):
        flat = _flatten_v3(inline.get("metadata"))
    nodes: dict[str, NodeMetadata] = {"": GroupMetadata.from_json(doc, None, path)}
    for relpath, entry in flat.items():
        if not is_valid_key(relpath):
            continue  # a member name that cannot be a key ("..", "a\\b") is never listed
        meta = node_from_json_or_error({"zarr.json": entry}, _join(path, relpath), 3)
        if meta is None:
            raise MetadataError(f"consolidated entry {relpath!r} is not Zarr v3 metadata")
        nodes[relpath] = meta
    return nodes


def _with_root(nodes: dict[str, NodeMetadata]) -> dict[str, NodeMetadata]:
    """Attach the children to the root group's ``consolidated`` field."""
    root = nodes[""]
    children = {k: v for k, v in nodes.items() if k}
    if isinstance(root, GroupMetadata):
        nodes[""] = root.replace(consolidated=children)
    return nodes


def read_consolidated(
    store: Store, path: str = "", zarr_format: int | None = None
) -> dict[str, NodeMetadata] | None:
    """Read the consolidated metadata of the group at ``path``, if it has any.

    Parameters
    ----------
    store
        Where to read.
    path
        The group holding the consolidated metadata (``""`` for the root).
    zarr_format
        2 or 3 to read one form only; None prefers v3's.

    Returns
    -------
    dict or None
        A new dict: ``""`` -> the group's :class:`GroupMetadata` (with
        ``consolidated`` set) and relative path -> metadata of every node below;
        None when there is no consolidated metadata.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = MemoryStore()
    >>> store.set("zarr.json", GroupMetadata(3).to_documents()["zarr.json"])
    >>> read_consolidated(store) is None
    True
    """
    path = path.strip("/")
    names = ["zarr.json", _ZMETADATA]
    if zarr_format is not None:
        names = names[:1] if zarr_format == 3 else names[1:]
    values = dict(zip(names, store.get_many([node_key(path, n) for n in names]), strict=True))
    raw = values.get("zarr.json")
    if raw is not None:
        doc = load_json_object(raw, node_key(path, "zarr.json"))
        nodes = parse_consolidated_v3(doc, path) if doc.get("node_type") == "group" else None
        return _with_root(nodes) if nodes is not None else None
    raw = values.get(_ZMETADATA)
    if raw is None:
        return None
    nodes = parse_consolidated_v2(load_json_object(raw, node_key(path, _ZMETADATA)), path)
    if "" not in nodes:
        nodes[""] = load_node(store, path, 2, node_type="group")
    return _with_root(nodes)


def _load_zarr_json(store: Store, path: str, raw: bytes) -> dict[str, Any]:
    """Decode a ``zarr.json`` document, naming its key and store when it is not JSON."""
    key = node_key(path, "zarr.json")
    try:
        doc = json_loads(raw, key)
    except MetadataError as e:
        raise MetadataError(f"{key!r} in {store.url!r} is not JSON") from e
    if not isinstance(doc, dict):
        raise MetadataError(f"{key!r} in {store.url!r} is not JSON")
    return doc


def _split_root(nodes: dict[str, NodeMetadata]) -> tuple[NodeMetadata, dict[str, NodeMetadata]]:
    """``(group metadata with consolidated set, members)`` from parsed consolidated metadata."""
    nodes = _with_root(nodes)
    return nodes.pop(""), nodes


def _probe_v2(
    store: Store, path: str, consolidated: bool
) -> tuple[NodeMetadata, dict[str, NodeMetadata] | None] | None:
    """The v2 node at ``path`` from one ``get_many`` (with ``.zmetadata`` if asked)."""
    names = (*METADATA_NAMES[2], _ZMETADATA) if consolidated else METADATA_NAMES[2]
    values = store.get_many([node_key(path, name) for name in names])
    found = {name: value for name, value in zip(names, values, strict=True) if value is not None}
    zmetadata = found.pop(_ZMETADATA, None)
    nodes = None
    if zmetadata is not None and ".zgroup" in found and ".zarray" not in found:
        nodes = parse_consolidated_v2(load_json_object(zmetadata, node_key(path, _ZMETADATA)), path)
        if "" in nodes:  # the group's own documents, as consolidated: not parsed again
            return _split_root(nodes)
    docs = {name: load_json_object(value, node_key(path, name)) for name, value in found.items()}
    meta = node_from_json(docs, path, 2)
    if meta is None:
        return None
    if nodes is None:
        return meta, None
    nodes[""] = meta
    return _split_root(nodes)


def probe_node_metadata(
    store: Store, path: str = "", zarr_format: int | None = None, *, consolidated: bool = False
) -> tuple[NodeMetadata, dict[str, NodeMetadata] | None] | None:
    """Read the metadata of the node at ``path`` in as few requests as possible.

    ``zarr.json`` is read first, alone (unless ``zarr_format=2``): a v3 array
    or group, consolidated metadata included, costs that one request. Only
    when it is missing are the v2 documents read, in one ``get_many``.

    Parameters
    ----------
    store
        Where to look.
    path
        The node's path (``""`` for the root).
    zarr_format
        2 or 3 to look for one format only; None for either (v3 first).
    consolidated
        Also return a group's consolidated metadata (v3 ``zarr.json``'s
        ``consolidated_metadata``, v2 ``.zmetadata``, read in the same batch).

    Returns
    -------
    tuple or None
        ``(metadata, members)``: the node's metadata and, for a group with
        consolidated metadata when ``consolidated`` is true, relative path ->
        metadata of every node below (else None). None when there is no node.

    Raises
    ------
    MetadataError
        If a document is not valid JSON or not valid metadata (naming its key).

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = MemoryStore()
    >>> root = GroupMetadata(3, consolidated={"g": GroupMetadata(3)})
    >>> store.set("zarr.json", root.to_documents()["zarr.json"])
    >>> meta, members = probe_node_metadata(store, consolidated=True)
    >>> meta.node_type, sorted(members)
    ('group', ['g'])
    >>> probe_node_metadata(store, "missing") is None
    True
    """
    path = path.strip("/")
    if zarr_format not in (None, 2, 3):
        raise MetadataError(f"zarr_format must be 2, 3 or None, got {zarr_format!r}")
    if zarr_format != 2:
        found = read_through(  # through the metadata cache, when one is on
            store,
            node_key(path, "zarr.json"),
            lambda raw: _v3_node(store, path, raw, consolidated),
            "consolidated" if consolidated else "",
        )
        if found is not None:
            meta, members = found
            return meta, None if members is None else dict(members)  # the caller's own
        if zarr_format == 3:
            return None
    return _probe_v2(store, path, consolidated)


def _v3_node(
    store: Store, path: str, raw: bytes, consolidated: bool
) -> tuple[NodeMetadata, dict[str, NodeMetadata] | None]:
    """The node (and, if asked, its consolidated members) a ``zarr.json`` document describes."""
    doc = _load_zarr_json(store, path, raw)
    meta = node_from_json({"zarr.json": doc}, path, 3)
    assert meta is not None  # node_from_json raises for a bad node_type
    is_group = meta.node_type == "group"
    nodes = parse_consolidated_v3(doc, path) if consolidated and is_group else None
    return (meta, None) if nodes is None else _split_root(nodes)


def _children(store: Store, path: str, groups: list[str], zarr_format: int) -> list[str]:
    """Relative paths of the candidate child nodes of ``groups``."""
    skip = {*METADATA_NAMES[zarr_format], _ZMETADATA, "zarr.json"}
    out = []
    for relpath in groups:
        prefix = _join(path, relpath)
        for name in store.list_dir(f"{prefix}/" if prefix else ""):
            if name not in skip:
                out.append(_join(relpath, name))
    return out


def collect_hierarchy(store: Store, path: str, zarr_format: int) -> dict[str, NodeMetadata]:
    """The metadata of every node below the group at ``path``, by relative path.

    Walks group by group (``list_dir``), reading each level's candidate
    documents in one ``get_many``, and never lists inside arrays.
    """
    names = METADATA_NAMES[zarr_format]
    nodes: dict[str, NodeMetadata] = {}
    level = _children(store, path, [""], zarr_format)
    while level:
        keys = [node_key(_join(path, rel), n) for rel in level for n in names]
        values = iter(store.get_many(keys))
        groups = []
        for relpath in level:
            docs = {}
            for name in names:
                value = next(values)
                if value is not None:
                    docs[name] = load_json_object(value, node_key(_join(path, relpath), name))
            # a member zarrflow cannot read is kept as stored (its documents, verbatim)
            meta = node_from_json_or_error(docs, _join(path, relpath), zarr_format)
            if meta is None:
                continue
            nodes[relpath] = meta
            if isinstance(meta, GroupMetadata):
                groups.append(relpath)
        level = _children(store, path, groups, zarr_format)
    return nodes


def write_consolidated(
    store: Store, path: str = "", zarr_format: int | None = None
) -> dict[str, NodeMetadata]:
    """Consolidate the metadata of the hierarchy below the group at ``path``.

    Writes ``.zmetadata`` (v2) or the root ``zarr.json``'s
    ``consolidated_metadata`` (v3), in zarr-python's forms.

    Returns
    -------
    dict
        Relative path -> metadata of every node consolidated.

    Raises
    ------
    ReadOnlyError
        If the store is read-only (nothing is read or written then).

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = MemoryStore()
    >>> for rel, meta in {"": GroupMetadata(2), "g": GroupMetadata(2)}.items():
    ...     for name, doc in meta.to_documents().items():
    ...         store.set(node_key(rel, name), doc)
    >>> sorted(write_consolidated(store))
    ['g']
    >>> sorted(read_consolidated(store))
    ['', 'g']
    """
    path = path.strip("/")
    if store.read_only:  # refuse before reading anything, rather than let the store refuse
        where = f"{store.url.rstrip('/')}/{path}" if path else store.url
        raise ReadOnlyError(f"cannot consolidate metadata of {where!r}: the store is read-only")
    root = load_node(store, path, zarr_format, node_type="group")
    assert isinstance(root, GroupMetadata)
    nodes = collect_hierarchy(store, path, root.zarr_format)
    if root.zarr_format == 3 and store.supports_generations:
        _swap_root(store, path, nodes)
        return nodes
    docs = root.replace(consolidated=nodes).to_documents()
    name = "zarr.json" if root.zarr_format == 3 else _ZMETADATA
    store.set(node_key(path, name), docs[name])
    return nodes


def _swap_root(store: Store, path: str, nodes: dict[str, NodeMetadata]) -> None:
    """Put ``nodes`` into the root ``zarr.json`` stored now, by compare-and-swap.

    The root's attributes may change while the hierarchy is collected: the
    consolidated field is added to the document as stored when it is
    written, never to the copy read before, so no attribute change is undone.
    """
    key = node_key(path, "zarr.json")
    for _ in range(200):
        found = store.get_versioned(key)
        if found is None:
            raise MetadataError(f"{key!r}: the group was deleted while consolidating")
        root = node_from_json({"zarr.json": load_json_object(found.data, key)}, path or None, 3)
        if not isinstance(root, GroupMetadata):
            raise MetadataError(f"{key!r}: no longer a group while consolidating")
        data = root.replace(consolidated=nodes).to_documents()["zarr.json"]
        try:
            store.set_if(key, data, IfGeneration(found.generation))
            return
        except GenerationConflictError:
            continue
    raise MetadataError(f"{key!r}: changed under 200 attempts to consolidate; not written")
