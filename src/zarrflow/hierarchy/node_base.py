"""What an array and a group share: where they live, their metadata, their attributes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zarrflow.hierarchy.attributes import Attributes
from zarrflow.hierarchy.metadata_update import update_metadata
from zarrflow.storage import Store

__all__ = ["Node"]


class Node:
    """A node of a hierarchy: a store, a path in it, and the node's metadata.

    Subclasses (:class:`~zarrflow.Array`, :class:`~zarrflow.Group`) say what
    they are in messages (``kind``) and how changed attributes are stored
    (``_persist_attributes``).

    Examples
    --------
    >>> import zarrflow as zf
    >>> g = zf.open_group("memory://doc-node", mode="w")
    >>> a = g.create_array("x/y", shape=(2,), dtype="u1")
    >>> a.path, a.basename, a.name, g.read_only
    ('x/y', 'y', 'memory://doc-node/x/y', False)
    """

    kind = "node"

    def __init__(self, store: Store, path: str, metadata: Any) -> None:
        self._store = store
        self._path = path.strip("/")
        self._meta = metadata

    @property
    def store(self) -> Store:
        return self._store

    @property
    def path(self) -> str:
        return self._path

    @property
    def name(self) -> str:
        """The node's URL: store URL plus path."""
        base = self._store.url.rstrip("/")
        return f"{base}/{self._path}" if self._path else base

    @property
    def basename(self) -> str:
        return self._path.rsplit("/", 1)[-1]

    @property
    def metadata(self) -> Any:
        return self._meta

    @property
    def zarr_format(self) -> int:
        return self._meta.zarr_format

    @property
    def read_only(self) -> bool:
        return self._store.read_only

    @property
    def attrs(self) -> Attributes:
        """User attributes, persisted on every change."""
        return Attributes(
            self._meta.attributes,
            self._persist_attributes,
            read_only=self.read_only,
            owner=f"{self.kind} {self.name!r}",
        )

    def _persist_attributes(
        self, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Apply ``change`` to the stored attributes (compare-and-swap); the attributes stored."""
        meta = update_metadata(
            self._store,
            self._path,
            self.zarr_format,
            lambda m: m.replace(attributes=change(dict(m.attributes))),
            self.name,
        )
        self._metadata_changed(meta)
        return dict(meta.attributes)

    def _metadata_changed(self, metadata: Any) -> None:
        """Take ``metadata`` (just stored) as this handle's own."""
        self._meta = metadata
