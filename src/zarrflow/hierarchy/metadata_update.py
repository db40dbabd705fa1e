"""Metadata changes as compare-and-swap on the stored documents.

An array or group handle caches its metadata; two handles (threads,
processes, a notebook beside a batch job) each writing *their* cached copy
back would revert each other: handle B setting an attribute would put back
the shape it saw before handle A appended. So every change (attributes,
``resize``, ``append``) goes through :func:`update_metadata`:

1. read the node's stored documents with their generations
   (``zarr.json``; or ``.zarray``/``.zgroup`` and ``.zattrs`` for Zarr v2);
2. apply the change to the metadata stored *now* (a function, never a copy);
3. write each changed document only if its generation is unchanged
   (``set_if``; ``IfAbsent`` for a new ``.zattrs``; ``delete_if`` for a
   ``.zattrs`` no longer needed);
4. on :class:`~zarrflow.errors.GenerationConflictError`, start again from 1.

A Zarr v2 change touches one document (a shape is in ``.zarray``,
attributes in ``.zattrs``), so each change is atomic there too. On a store
without generations (zip, plain HTTP) or with ``zarrflow.conditional_writes``
off, the change is still applied to freshly read documents, but written
plainly: two writers at the same instant can still lose one change there.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from zarrflow.chunks.conditional import conditional_writes
from zarrflow.errors import GenerationConflictError, NodeNotFoundError, StoreError
from zarrflow.metadata.json import load_json_object
from zarrflow.metadata.load import node_from_json, node_key
from zarrflow.storage import IfAbsent, IfGeneration, Store, Versioned

__all__ = ["update_metadata"]

_MAX_ATTEMPTS = 200
_BACKOFF = 0.0005
_MAX_BACKOFF = 0.05


def _read(store: Store, path: str, names: tuple[str, ...], versioned: bool) -> dict[str, Any]:
    """name -> Versioned (or plain bytes when not ``versioned``), for the documents stored."""
    found: dict[str, Any] = {}
    for name in names:
        key = node_key(path, name)
        value = store.get_versioned(key) if versioned else store.get(key)
        if value is not None:
            found[name] = value
    return found


def _data(value: Versioned | bytes) -> bytes:
    return value.data if isinstance(value, Versioned) else value


def update_metadata(
    store: Store,
    path: str,
    zarr_format: int,
    change: Callable[[Any], Any],
    name: str = "",
) -> Any:
    """Apply ``change`` to the node metadata stored now, write it back if unchanged meanwhile.

    Parameters
    ----------
    store, path
        Where the node lives.
    zarr_format
        2 or 3 (which documents hold the node).
    change
        Stored metadata -> new metadata. Called once per attempt, with the
        metadata read in that attempt; it may raise to refuse the change
        (nothing is then written).
    name
        The node's name, for errors.

    Returns
    -------
    The metadata now stored (``change``'s result in the attempt that won).

    Examples
    --------
    >>> import zarrflow as zf
    >>> a = zf.create("memory://doc-update-meta", shape=(4,), chunks=(2,), dtype="u1")
    >>> stale = zf.open_array("memory://doc-update-meta", mode="r+")
    >>> a.resize(6)
    >>> meta = update_metadata(stale.store, "", 3, lambda m: m.replace(attributes={"k": 1}))
    >>> meta.shape, meta.attributes  # the change applied to what is stored: shape kept
    ((6,), {'k': 1})
    """
    names = ("zarr.json",) if zarr_format == 3 else (".zarray", ".zgroup", ".zattrs")
    versioned = conditional_writes(store)
    last: GenerationConflictError | None = None
    for attempt in range(_MAX_ATTEMPTS if versioned else 1):
        if attempt:
            time.sleep(random.uniform(0, min(_MAX_BACKOFF, _BACKOFF * 2**attempt)))
        stored = _read(store, path, names, versioned)
        docs = {n: load_json_object(_data(v), node_key(path, n)) for n, v in stored.items()}
        meta = node_from_json(docs, path or None, zarr_format)
        if meta is None:
            raise NodeNotFoundError(
                f"{name or path!r}: no Zarr v{zarr_format} metadata is stored at "
                f"{node_key(path, names[0])!r} any more (deleted while open?)"
            )
        new = change(meta)
        new_docs = new.to_documents()
        try:
            for doc in names:
                key = node_key(path, doc)
                _write_doc(store, key, stored.get(doc), new_docs.get(doc), versioned)
            return new
        except GenerationConflictError as e:  # changed since read: apply to the new version
            last = e
    raise StoreError(
        f"{name or path!r}: metadata changed under {_MAX_ATTEMPTS} updates in a row "
        f"(other writers kept winning); this change was not stored"
    ) from last


def _write_doc(store: Store, key: str, old: Any, new: bytes | None, versioned: bool) -> None:
    """Write one document if it changed: conditional on ``old``'s generation if ``versioned``."""
    if (old is None and new is None) or (old is not None and new is not None and _data(old) == new):
        return
    if not versioned:
        if new is None:
            store.delete(key)
        else:
            store.set(key, new)
    elif new is None:
        store.delete_if(key, IfGeneration(old.generation))
    else:
        condition = IfAbsent() if old is None else IfGeneration(old.generation)
        store.set_if(key, new, condition)
