"""Human-readable summaries of arrays and groups (``Array.info``, ``Group.info``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NodeInfo", "array_info", "group_info"]


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    return f"{n} B"  # pragma: no cover


@dataclass
class NodeInfo:
    """Ordered ``(label, value)`` rows that print as an aligned table."""

    rows: list[tuple[str, Any]] = field(default_factory=list)

    def __getitem__(self, label: str) -> Any:
        return dict(self.rows)[label]

    def __repr__(self) -> str:
        width = max((len(k) for k, _ in self.rows), default=0)
        return "\n".join(f"{k:<{width}} : {v}" for k, v in self.rows)

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in self.rows)
        return f"<table>{body}</table>"


def _codecs(array) -> str:
    meta = array.metadata
    if meta.zarr_format == 2:
        parts = [f.get("id") for f in (meta.filters or [])]
        comp = meta.compressor
        return ", ".join([*map(str, parts), str(comp.get("id")) if comp else "no compressor"])
    return ", ".join(c["name"] for c in meta.codecs)


def _shard_rows(array, inner: tuple[int, ...]) -> list[tuple[str, Any]]:
    """The rows a sharded array adds: shard and inner chunk shapes, counts, layout."""
    config = array.metadata.codecs[0].get("configuration") or {}
    per_shard = math.prod(s // c for s, c in zip(array.shards, inner, strict=True))
    grid = tuple(math.ceil(s / c) for s, c in zip(array.shape, inner, strict=True))
    inner_codecs = _names(config.get("codecs") or ["bytes"])
    index_codecs = _names(config.get("index_codecs") or ["bytes", "crc32c"])
    return [
        ("Shards", array.shards),
        ("Inner chunks", inner),
        ("Inner chunks per shard", per_shard),
        ("Inner chunk grid", f"{grid} ({math.prod(grid)} inner chunks)"),
        ("Inner codecs", inner_codecs),
        ("Shard index", f"at the {config.get('index_location', 'end')} ({index_codecs})"),
    ]


def _names(codecs: list[Any]) -> str:
    return ", ".join(c if isinstance(c, str) else str(c.get("name", "?")) for c in codecs)


def _sizes(sizes: list[int]) -> str:
    mean = sum(sizes) // len(sizes)
    return f"{_human(min(sizes))} / {_human(mean)} / {_human(max(sizes))}"


def array_info(array, complete: bool = False) -> NodeInfo:
    """Summarise an array, listing its stored chunks once for counts and sizes.

    A sharded array shows ``Shards`` and ``Inner chunks`` (``Array.chunks`` is
    the inner chunk) and counts stored shards. ``complete`` adds what
    zarr-python's ``info_complete`` does: the chunks initialized and the bytes
    stored, metadata included.

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-info", shape=(4, 4), chunks=(2, 2), dtype="f4")
    >>> array_info(a)["Chunks stored"]
    '0 / 4'
    """
    keys = list(array.stored_chunk_keys())
    sizes = []
    if keys and not array.store.is_remote:
        sizes = [len(value or b"") for value in array.store.get_many(keys)]
    stored = sum(sizes)
    inner = array.chunks if array.shards is not None else None
    rows: list[tuple[str, Any]] = [
        ("Type", "zarrflow.Array"),
        ("Name", array.name),
        ("Zarr format", array.zarr_format),
        ("Shape", array.shape),
    ]
    rows += _shard_rows(array, inner) if inner is not None else [("Chunks", array.chunks)]
    rows += [
        ("Data type", array.dtype),
        ("Fill value", array.fill_value),
        ("Codecs", _codecs(array)),
        ("Store", type(array.store).__name__),
        ("Bytes (uncompressed)", _human(array.nbytes)),
        (
            "Shards stored" if inner is not None else "Chunks stored",
            f"{len(keys)} / {array.nshards}",
        ),
    ]
    if stored:
        rows.append(("Bytes stored", _human(stored)))
        if inner is not None:
            rows.append(("Shard size (min / mean / max)", _sizes(sizes)))
        rows.append(("Compression ratio", f"{array.nbytes / stored:.1f}"))
    if complete:
        rows.append(("Chunks initialized", f"{array.nchunks_initialized} / {array.nchunks}"))
        rows.append(("Bytes stored (with metadata)", array.nbytes_stored()))
    return NodeInfo(rows)


def group_info(group) -> NodeInfo:
    """Summarise a group: format, members, those that cannot be opened, and the tree.

    Examples
    --------
    >>> import zarrflow as zf
    >>> g = zf.open_group("memory://doc-group-info", mode="w")
    >>> g.store.set("bad/zarr.json", b"not json")
    >>> group_info(g)["Unreadable members"].split(":")[0]
    'bad (MetadataError'
    """
    rows: list[tuple[str, Any]] = [
        ("Type", "zarrflow.Group"),
        ("Name", group.name),
        ("Zarr format", group.zarr_format),
        ("Members", len(group)),
    ]
    unreadable = group.unreadable()
    if unreadable:
        listed = "; ".join(f"{m.path} ({m.describe()})" for m in unreadable)
        rows.append(("Unreadable members", listed))
    rows.append(("Tree", "\n" + group.tree()))
    return NodeInfo(rows)
