"""Group metadata: ``.zgroup`` + ``.zattrs`` (v2) or a group ``zarr.json`` (v3)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from zarrflow.errors import MetadataError
from zarrflow.metadata.json import json_dumps, parse_attributes, where
from zarrflow.metadata.v2 import ArrayMetadataV2
from zarrflow.metadata.v3 import ArrayMetadataV3, split_extra_fields

__all__ = ["GroupMetadata", "NodeMetadata"]

#: the fields the v3 core spec defines for a group's zarr.json (plus consolidation)
GROUP_FIELDS = frozenset({"zarr_format", "node_type", "attributes", "consolidated_metadata"})


@dataclass(frozen=True, eq=False)
class GroupMetadata:
    """The metadata of a group.

    Parameters
    ----------
    zarr_format
        2 or 3.
    attributes
        User attributes.
    consolidated
        Consolidated metadata of the hierarchy below this group (relative path
        -> node metadata), written with the group's documents; None for none.
    extra_fields
        v3 fields with ``"must_understand": false`` kept as read.

    Examples
    --------
    >>> sorted(GroupMetadata(2, {"a": 1}).to_documents())
    ['.zattrs', '.zgroup']
    >>> GroupMetadata(3).to_json()["zarr.json"]
    {'zarr_format': 3, 'node_type': 'group', 'attributes': {}}
    """

    zarr_format: int
    attributes: dict[str, Any] = field(default_factory=dict)
    consolidated: dict[str, NodeMetadata] | None = None
    extra_fields: dict[str, Any] = field(default_factory=dict)

    node_type: ClassVar[str] = "group"

    def __post_init__(self) -> None:
        if self.zarr_format not in (2, 3):
            raise MetadataError(f"zarr_format must be 2 or 3, got {self.zarr_format!r}")
        object.__setattr__(self, "attributes", parse_attributes(self.attributes))
        if self.consolidated is not None:
            object.__setattr__(self, "consolidated", dict(self.consolidated))
            for relpath, meta in self.consolidated.items():
                if meta.zarr_format != self.zarr_format:
                    raise MetadataError(
                        f"consolidated entry {relpath!r} is Zarr v{meta.zarr_format} in a "
                        f"v{self.zarr_format} hierarchy"
                    )
        extra = split_extra_fields(self.extra_fields, frozenset())
        if extra and self.zarr_format == 2:
            raise MetadataError("extra_fields are a Zarr v3 feature")
        object.__setattr__(self, "extra_fields", extra)

    @classmethod
    def from_json(
        cls,
        doc: Mapping[str, Any],
        attrs: Mapping[str, Any] | None = None,
        path: str | None = None,
    ) -> GroupMetadata:
        """Parse a ``.zgroup`` (with its ``.zattrs``) or a group ``zarr.json``.

        A v3 document's ``consolidated_metadata`` is not parsed here (see
        :func:`~zarrflow.metadata.read_consolidated`) and is dropped, so a
        rewritten group never carries a stale copy.

        Examples
        --------
        >>> GroupMetadata.from_json({"zarr_format": 2}, {"title": "t"}).attributes
        {'title': 't'}
        >>> GroupMetadata.from_json({"zarr_format": 3, "node_type": "group"}).zarr_format
        3
        """
        with where(path, "group"):
            if not isinstance(doc, Mapping):
                raise MetadataError(f"group metadata must be a JSON object, got {doc!r}")
            fmt = doc.get("zarr_format")
            if fmt == 2:
                return cls(2, parse_attributes(attrs, ".zattrs"))
            if fmt != 3 or doc.get("node_type") != "group":
                raise MetadataError(
                    "group metadata needs zarr_format 2, or 3 with node_type 'group'; got "
                    f"zarr_format {fmt!r}, node_type {doc.get('node_type')!r}"
                )
            extra = split_extra_fields(doc, GROUP_FIELDS)
            attributes = attrs if attrs is not None else doc.get("attributes")
            return cls(3, parse_attributes(attributes), extra_fields=extra)

    def _consolidated_json(self) -> dict[str, Any]:
        entries: dict[str, Any] = {}
        for relpath, meta in sorted((self.consolidated or {}).items()):
            if isinstance(meta, GroupMetadata):
                meta = meta.replace(consolidated=None)
            for name, doc in meta.to_json().items():
                entries[relpath if self.zarr_format == 3 else f"{relpath}/{name}"] = doc
        return entries

    def to_json(self) -> dict[str, dict[str, Any]]:
        """The documents as JSON objects, file name -> object.

        v2 gives ``.zgroup`` and ``.zattrs`` (and ``.zmetadata`` when
        consolidated); v3 gives ``zarr.json`` (with ``consolidated_metadata``).
        """
        attrs = copy.deepcopy(self.attributes)
        if self.zarr_format == 2:
            docs: dict[str, dict[str, Any]] = {".zgroup": {"zarr_format": 2}, ".zattrs": attrs}
            if self.consolidated is not None:
                metadata = {".zgroup": {"zarr_format": 2}, ".zattrs": attrs}
                metadata.update(self._consolidated_json())
                docs[".zmetadata"] = {"zarr_consolidated_format": 1, "metadata": metadata}
            return docs
        doc: dict[str, Any] = {"zarr_format": 3, "node_type": "group", "attributes": attrs}
        doc.update(copy.deepcopy(self.extra_fields))
        if self.consolidated is not None:
            doc["consolidated_metadata"] = {
                "kind": "inline",
                "must_understand": False,
                "metadata": self._consolidated_json(),
            }
        return {"zarr.json": doc}

    def to_documents(self) -> dict[str, bytes]:
        """The documents to store, file name -> strict JSON bytes.

        Examples
        --------
        >>> GroupMetadata(2).to_documents()[".zgroup"]
        b'{\\n  "zarr_format": 2\\n}'
        """
        return {name: json_dumps(doc, name) for name, doc in self.to_json().items()}

    def replace(self, **changes: Any) -> GroupMetadata:
        """A copy with some fields changed.

        Examples
        --------
        >>> GroupMetadata(3).replace(attributes={"a": 1}).attributes
        {'a': 1}
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"GroupMetadata has no field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GroupMetadata):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]


#: the metadata of any node: an array (v2 or v3) or a group
NodeMetadata: TypeAlias = ArrayMetadataV2 | ArrayMetadataV3 | GroupMetadata
