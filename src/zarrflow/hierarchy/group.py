"""The Zarr group: a named container of arrays and groups; and building nodes from metadata.

:mod:`~zarrflow.hierarchy.nodes` writes and finds metadata; the functions
here (:func:`open_node`, :func:`create_array`, ...) turn it into an
:class:`~zarrflow.Array` or a :class:`Group`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from zarrflow.chunks import ChunkCache, resolve_chunk_cache
from zarrflow.errors import (
    ContainsArrayError,
    ContainsGroupError,
    MetadataError,
    NodeNotFoundError,
    ReadOnlyError,
)
from zarrflow.hierarchy.array import Array
from zarrflow.hierarchy.node_base import Node
from zarrflow.hierarchy.nodes import (
    create_array_metadata,
    create_group_metadata,
    load_node_metadata,
    node_exists,
    normalize_path,
    probe_node_metadata,
)
from zarrflow.hierarchy.unreadable import MEMBER_ERRORS, UnreadableMember
from zarrflow.metadata import GroupMetadata, UnreadableMetadata
from zarrflow.parallel.dask_write import store_dask
from zarrflow.storage import Store, validate_key

__all__ = ["Group", "create_array", "create_group", "open_node", "probe_node"]


class Group(Node):
    """A Zarr group (v2 or v3): members by name, attributes, and child creation.

    Examples
    --------
    >>> import zarrflow as zf
    >>> g = zf.open_group("memory://doc-group", mode="w")
    >>> x = g.create_array("x", shape=(10,), chunks=(5,), dtype="f4")
    >>> sorted(g)
    ['x']
    >>> g["x"].shape
    (10,)
    """

    kind = "group"

    def __init__(
        self,
        store: Store,
        path: str,
        metadata: GroupMetadata,
        *,
        consolidated: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(store, path, metadata)
        self._consolidated = consolidated  # relative path -> node metadata
        self._chunk_cache: ChunkCache | None = None  # given to the arrays opened from here

    def use_chunk_cache(self, chunk_cache: ChunkCache | int) -> Group:
        """Give ``chunk_cache`` to every array opened or created through this group from now on.

        Parameters
        ----------
        chunk_cache
            A :class:`~zarrflow.ChunkCache`, a size in bytes for a new one
            (shared by this group's arrays), or 0 for none.

        Returns
        -------
        Group
            This group.

        Examples
        --------
        >>> import zarrflow as zf
        >>> g = zf.open_group("memory://doc-group-cache", mode="w").use_chunk_cache(2**20)
        >>> g.create_array("x", shape=(4,), dtype="u1").chunk_cache is g.chunk_cache
        True
        """
        self._chunk_cache = None if chunk_cache is None else resolve_chunk_cache(chunk_cache)
        return self

    @property
    def chunk_cache(self) -> ChunkCache | None:
        """The cache given to the arrays opened through this group (None: the default)."""
        return self._chunk_cache

    def _with_cache(self, node: Any) -> Any:
        if self._chunk_cache is not None:
            node.use_chunk_cache(self._chunk_cache)
        return node

    # members ------------------------------------------------------------------
    def _child(self, name: str) -> str:
        name = validate_key(name)  # member names are relative: "/x" and ".." are refused
        return f"{self._path}/{name}" if self._path else name

    def _consolidated_meta(self, relpath: str):
        if self._consolidated is None:
            return None
        return self._consolidated.get(relpath)

    def _sub_consolidated(self, relpath: str) -> dict[str, Any] | None:
        if self._consolidated is None:
            return None
        head = relpath + "/"
        return {k[len(head) :]: v for k, v in self._consolidated.items() if k.startswith(head)}

    def __getitem__(self, name: str):
        relpath = validate_key(name)
        meta = self._consolidated_meta(relpath)
        if isinstance(meta, UnreadableMetadata):
            raise meta.error
        try:
            return self._with_cache(
                open_node(
                    self._store,
                    self._child(relpath),
                    metadata=meta,
                    consolidated=self._sub_consolidated(relpath),
                )
            )
        except NodeNotFoundError:
            raise KeyError(f"{name!r}: no array or group in {self.name!r}") from None

    def get(self, name: str, default: Any = None):
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        relpath = validate_key(name)
        if self._consolidated is not None:
            return relpath in self._consolidated
        try:
            return node_exists(self._store, self._child(relpath)) is not None
        except MetadataError:  # a zarr.json that is not JSON: a member, unreadable
            return True

    def keys(self) -> list[str]:
        """Names of the direct members, sorted."""
        if self._consolidated is not None:
            return sorted(k for k in self._consolidated if "/" not in k)
        prefix = f"{self._path}/" if self._path else ""
        names = []
        for name in self._store.list_dir(prefix):
            if name in ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"):
                continue
            try:
                found = node_exists(self._store, prefix + name)
            except MetadataError:  # a zarr.json that is not JSON: a member, unreadable
                found = "unreadable"
            if found is not None:
                names.append(name)
        return names

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def members(self) -> list[tuple[str, Any]]:
        """``(name, node)`` for each direct member, sorted by name.

        A member that cannot be opened (an unknown codec, data type or
        extension) is an :class:`~zarrflow.hierarchy.unreadable.UnreadableMember`
        holding the error ``self[name]`` raises; the other members are
        unaffected. :meth:`arrays` and :meth:`groups` leave it out.
        """
        return [(k, self._member(k)) for k in self.keys()]

    def _member(self, name: str) -> Any:
        try:
            return self[name]
        except MEMBER_ERRORS as e:
            return UnreadableMember(name, self._child(name), e)

    def unreadable(self) -> list[UnreadableMember]:
        """The members below this group (at any depth) that cannot be opened.

        Examples
        --------
        >>> import zarrflow as zf
        >>> g = zf.open_group("memory://doc-unreadable", mode="w")
        >>> g.store.set("bad/zarr.json", b'{"zarr_format": 3, "node_type": "array"}')
        >>> [(m.path, type(m.error).__name__) for m in g.unreadable()]
        [('bad', 'MetadataError')]
        """
        found = []
        for _, node in self.members():
            if isinstance(node, UnreadableMember):
                found.append(node)
            elif isinstance(node, Group):
                found += node.unreadable()
        return found

    def arrays(self) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in self.members() if isinstance(v, Array)]

    def groups(self) -> list[tuple[str, Group]]:
        return [(k, v) for k, v in self.members() if isinstance(v, Group)]

    def array_keys(self) -> list[str]:
        return [k for k, _ in self.arrays()]

    def group_keys(self) -> list[str]:
        return [k for k, _ in self.groups()]

    def tree(self) -> str:
        """The hierarchy below this group as indented text.

        Examples
        --------
        >>> import zarrflow as zf
        >>> g = zf.open_group("memory://doc-tree", mode="w")
        >>> _ = g.create_group("sub").create_array("y", shape=(3,), dtype="i1")
        >>> print(g.tree())
        /
        └── sub
            └── y (3,) int8
        """
        lines = [f"/{self._path}" if self._path else "/"]
        self._tree_lines(lines, "")
        return "\n".join(lines)

    def _tree_lines(self, lines: list[str], indent: str) -> None:
        members = self.members()
        for i, (name, node) in enumerate(members):
            last = i == len(members) - 1
            branch = "└── " if last else "├── "
            if isinstance(node, Group):
                lines.append(f"{indent}{branch}{name}")
                node._tree_lines(lines, indent + ("    " if last else "│   "))
            elif isinstance(node, UnreadableMember):
                lines.append(f"{indent}{branch}{name} (cannot be opened: {node.describe()})")
            else:
                lines.append(f"{indent}{branch}{name} {node.shape} {node.dtype}")

    # creation ------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"group {self.name!r} is read-only")

    def create_array(self, name: str, **kwargs: Any):
        """Create an array member (arguments as :func:`zarrflow.create`)."""
        self._check_writable()
        kwargs.setdefault("zarr_format", self.zarr_format)
        return self._with_cache(create_array(self._store, self._child(name), **kwargs))

    def create_group(self, name: str, **kwargs: Any) -> Group:
        """Create a group member."""
        self._check_writable()
        kwargs.setdefault("zarr_format", self.zarr_format)
        return self._with_cache(create_group(self._store, self._child(name), **kwargs))

    def require_group(self, name: str, **kwargs: Any) -> Group:
        """The group member ``name``, created if missing."""
        if name in self:
            node = self[name]
            if not isinstance(node, Group):
                raise ContainsArrayError(f"{name!r} in {self.name!r} is an array, not a group")
            return node
        return self.create_group(name, **kwargs)

    def require_array(self, name: str, **kwargs: Any):
        """The array member ``name``, created with ``kwargs`` if missing."""
        if name in self:
            node = self[name]
            if isinstance(node, Group):
                raise ContainsGroupError(f"{name!r} in {self.name!r} is a group, not an array")
            return node
        return self.create_array(name, **kwargs)

    def __delitem__(self, name: str) -> None:
        self._check_writable()
        if name not in self:
            raise KeyError(name)
        self._store.delete_prefix(self._child(name) + "/")

    # presentation --------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<zarrflow.Group {self.name!r} zarr_format={self.zarr_format}>"

    @property
    def info(self):
        from zarrflow.hierarchy.info import group_info

        return group_info(self)

    def __reduce__(self):
        return (Group, (self._store, self._path, self._meta), {"_consolidated": self._consolidated})


def open_node(
    store: Store,
    path: str = "",
    *,
    zarr_format: int | None = None,
    metadata: Any = None,
    consolidated: Mapping[str, Any] | None = None,
    write_empty_chunks: bool = False,
) -> Array | Group:
    """Open what lives at ``path``: an :class:`~zarrflow.Array` or a :class:`Group`.

    ``metadata`` (already loaded) saves the read. Raises
    :class:`~zarrflow.NodeNotFoundError` when nothing lives there.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = MemoryStore()
    >>> _ = create_group(store, "g")
    >>> open_node(store, "g").kind
    'group'
    """
    path = normalize_path(path)
    meta = (
        metadata
        if metadata is not None
        else load_node_metadata(store, path, zarr_format=zarr_format)
    )
    if isinstance(meta, GroupMetadata):
        return Group(store, path, meta, consolidated=consolidated)
    return Array(store, path, meta, write_empty_chunks=write_empty_chunks)


def create_array(
    store: Store,
    path: str = "",
    *,
    write_empty_chunks: bool = False,
    data: Any = None,
    **kwargs: Any,
) -> Array:
    """Write a new array's metadata at ``path`` and return the :class:`~zarrflow.Array`.

    See :func:`zarrflow.create` for the keywords. ``data`` (array-like or a
    dask array) gives the shape and dtype when they are not given, and is
    written into the new array (a dask array task by task).

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> create_array(MemoryStore(), "a", shape=(4,), dtype="u1").shape
    (4,)
    >>> create_array(MemoryStore(), "b", data=[1, 2, 3])[:].tolist()
    [1, 2, 3]
    """
    if data is not None and not (hasattr(data, "shape") and hasattr(data, "dtype")):
        data = np.asarray(data)
    meta = create_array_metadata(store, path, data=data, **kwargs)
    array = Array(store, normalize_path(path), meta, write_empty_chunks=write_empty_chunks)
    if data is not None:
        if type(data).__module__.startswith("dask."):
            store_dask(data, array.engine, None)
        else:
            array[...] = data
    return array


def create_group(store: Store, path: str = "", **kwargs: Any) -> Group:
    """Write a new group's metadata at ``path`` and return the :class:`Group`.

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> create_group(MemoryStore(), "g", attributes={"a": 1}).attrs["a"]
    1
    """
    meta = create_group_metadata(store, path, **kwargs)
    return Group(store, normalize_path(path), meta)


def probe_node(
    store: Store,
    path: str = "",
    zarr_format: int | None = None,
    *,
    use_consolidated: bool = False,
    write_empty_chunks: bool = False,
) -> Array | Group | None:
    """Open what lives at ``path`` from the fewest reads, or None when nothing does.

    One request opens a v3 array or group (with its consolidated metadata
    when ``use_consolidated``); a v2 node costs that request, unless
    ``zarr_format=2``, and one ``get_many`` of its documents (and
    ``.zmetadata``). See :func:`~zarrflow.metadata.consolidated.probe_node_metadata`.

    Parameters
    ----------
    store
        Where to look.
    path
        The node's path (``""`` for the root).
    zarr_format
        2 or 3 to look for one format only; None for either.
    use_consolidated
        Open a group from its consolidated metadata, when it has some.
    write_empty_chunks
        Passed to the :class:`~zarrflow.Array` opened.

    Returns
    -------
    Array or Group or None

    Examples
    --------
    >>> from zarrflow.storage import MemoryStore
    >>> store = MemoryStore()
    >>> _ = create_array(store, "a", shape=(4,), dtype="u1")
    >>> probe_node(store, "a").shape, probe_node(store, "b") is None
    ((4,), True)
    """
    path = normalize_path(path)
    found = probe_node_metadata(store, path, zarr_format, consolidated=use_consolidated)
    if found is None:
        return None
    meta, members = found
    return open_node(
        store, path, metadata=meta, consolidated=members, write_empty_chunks=write_empty_chunks
    )
