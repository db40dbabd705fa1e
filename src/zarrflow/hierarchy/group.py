"""The Zarr group: a named container of arrays and groups."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from zarrflow.errors import (
    ContainsArrayError,
    ContainsGroupError,
    MetadataError,
    NodeNotFoundError,
    ReadOnlyError,
)
from zarrflow.hierarchy.node_base import Node
from zarrflow.hierarchy.nodes import create_array, create_group, node_exists, open_node
from zarrflow.hierarchy.unreadable import MEMBER_ERRORS, UnreadableMember
from zarrflow.metadata import GroupMetadata, UnreadableMetadata
from zarrflow.storage import Store, validate_key

__all__ = ["Group"]


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

    def _persist_attributes(self, attrs: dict[str, Any]) -> None:
        meta = GroupMetadata(zarr_format=self.zarr_format, attributes=attrs)
        prefix = f"{self._path}/" if self._path else ""
        self._store.set_many({prefix + k: v for k, v in meta.to_documents().items()})
        self._meta = meta

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
            return open_node(
                self._store,
                self._child(relpath),
                metadata=meta,
                consolidated=self._sub_consolidated(relpath),
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
        from zarrflow.hierarchy.array import Array

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
        return create_array(self._store, self._child(name), **kwargs)

    def create_group(self, name: str, **kwargs: Any) -> Group:
        """Create a group member."""
        self._check_writable()
        kwargs.setdefault("zarr_format", self.zarr_format)
        return create_group(self._store, self._child(name), **kwargs)

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
