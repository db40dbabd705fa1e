"""Where a copy goes: refused when it overlaps the source, staged so a failure leaves nothing.

Before anything is read or written, :func:`refuse_overlap` compares the
normalised locations of source and destination (local paths through
``os.path.realpath``, so symlinks count) and refuses a destination that is
the source, lies inside it, or contains it.

:class:`Destination` then decides how the copy is written:

- a local directory or ``.zip`` file is written under a temporary sibling
  name and renamed into place once complete (an existing node is moved
  aside only then, and removed after the rename), so a failed copy leaves
  the destination exactly as it was;
- any other store (``memory://``, ``s3://``, a :class:`~zarrflow.storage.Store`)
  is written in place, and on failure every key the copy added is deleted.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from zarrflow.errors import ContainsArrayError, ContainsGroupError, ZarrflowError
from zarrflow.hierarchy.nodes import node_exists
from zarrflow.storage import LocalStore, Store, ZipStore, store_from_url
from zarrflow.storage.local import is_temp_name

__all__ = ["CopyError", "Destination", "location", "refuse_overlap"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+)://")
_LOCAL_SCHEMES = (None, "file", "local", "zip")


class CopyError(ZarrflowError):
    """A copy failed, or was refused before it started; the message says what was left."""


def location(target: str | os.PathLike[str] | Store) -> str:
    """A normalised URL naming where ``target`` lives, for comparing two locations.

    Local paths (and ``file://``, ``zip://`` URLs, local stores) become
    ``file://`` plus their real path, symlinks resolved; other URLs keep
    their scheme with the path's ``.``, ``..``, repeated and trailing
    slashes removed.

    Parameters
    ----------
    target
        A path, a URL or a store.

    Returns
    -------
    str
        The normalised location.

    Examples
    --------
    >>> location("s3://bucket//data/./a.zarr/")
    's3://bucket/data/a.zarr'
    >>> location("/tmp/../tmp/x.zarr") == location("file:///tmp/x.zarr")
    True
    """
    if isinstance(target, LocalStore):
        return "file://" + os.path.realpath(target.root)
    if isinstance(target, ZipStore):
        return "file://" + os.path.realpath(target.path)
    url = target.url if isinstance(target, Store) else os.fspath(target)
    match = None if "::" in url else _SCHEME.match(url)
    scheme = match.group(1).lower() if match else None
    rest = url[match.end() :] if match else url
    if scheme in _LOCAL_SCHEMES and "::" not in url:
        return "file://" + os.path.realpath(os.path.expanduser(rest))
    if scheme is None:
        return url
    return f"{scheme}://" + posixpath.normpath("/" + rest).lstrip("/")


def refuse_overlap(src: Any, dst: Any) -> None:
    """Raise :class:`CopyError` when ``dst`` is ``src``, inside it, or holds it.

    Parameters
    ----------
    src, dst
        Paths, URLs or stores.

    Examples
    --------
    >>> refuse_overlap("memory://a", "memory://b")
    >>> refuse_overlap("data/a.zarr", "data/a.zarr/copy")
    Traceback (most recent call last):
    ...
    zarrflow.integrations.copy_target.CopyError: cannot copy 'data/a.zarr' to ...
    """
    s, d = location(src), location(dst)
    if s == d:
        why = "it is the source"
    elif d.startswith(s.rstrip("/") + "/"):
        why = "it lies inside the source"
    elif s.startswith(d.rstrip("/") + "/"):
        why = "the source lies inside it"
    else:
        return
    raise CopyError(
        f"cannot copy {_name(src)!r} to {_name(dst)!r}: the destination ({d}) overlaps the "
        f"source ({s}): {why}; nothing was read or written"
    )


def _name(target: Any) -> str:
    return target.url if isinstance(target, Store) else os.fspath(target)


def _local_path(dst: Any) -> tuple[str, bool] | None:
    """``(real path, is a zip file)`` for a local destination given as a path or URL, else None."""
    if isinstance(dst, Store):
        return None
    url = os.fspath(dst)
    match = None if "::" in url else _SCHEME.match(url)
    scheme = match.group(1).lower() if match else None
    if "::" in url or scheme not in _LOCAL_SCHEMES:
        return None
    path = os.path.realpath(os.path.expanduser(url[match.end() :] if match else url))
    is_zip = scheme == "zip" or (path.lower().endswith(".zip") and not os.path.isdir(path))
    return path, is_zip


class Destination:
    """Where a copy writes, and how it is committed or undone.

    Parameters
    ----------
    dst
        The destination as the user gave it (path, URL or store).
    overwrite
        Whether an existing node at ``dst`` may be replaced.
    storage_options
        fsspec options for a remote ``dst``.

    Examples
    --------
    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> dest = Destination(os.path.join(root, "b.zarr"), overwrite=False)
    >>> with dest.writing() as target:
    ...     os.mkdir(target)  # the copy writes here
    ...     os.path.basename(target).startswith(".b.zarr.copy-")
    True
    >>> os.listdir(root) == ["b.zarr"]  # renamed into place once complete
    True
    """

    def __init__(
        self, dst: Any, overwrite: bool, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.dst = dst
        self.overwrite = overwrite
        self.storage_options = storage_options
        local = _local_path(dst)
        self.local = local is not None
        self.final: Any = local[0] if local else dst
        self.is_zip = bool(local and local[1])
        self.removed_keys = 0

    def check(self) -> None:
        """Refuse an existing destination we may not (or should not) replace; read only."""
        if not self.local or not os.path.lexists(self.final):
            return
        if os.path.isdir(self.final) and not os.listdir(self.final):
            return  # an empty directory is replaced silently
        kind = node_exists(store_from_url(self.final, read_only=True), "")
        if kind is not None and not self.overwrite:
            err = ContainsArrayError if kind == "array" else ContainsGroupError
            raise err(f"{self.final!r} holds a Zarr {kind} already (pass overwrite to replace it)")
        if kind is None:
            raise CopyError(
                f"{self.final!r} exists and holds no Zarr array or group: not writing there"
            )

    @contextlib.contextmanager
    def writing(self) -> Iterator[Any]:
        """Yield what to write to; commit on success, undo on failure (then re-raise)."""
        if self.local:
            yield from self._staged()
        else:
            yield from self._in_place()

    def _staged(self) -> Iterator[str]:
        head, tail = os.path.split(self.final)
        token = uuid.uuid4().hex[:12]
        suffix = ".zip" if self.is_zip else ".tmp"
        temp = os.path.join(head, f".{tail}.copy-{token}{suffix}")
        try:
            yield temp
            self._replace(temp, os.path.join(head, f".{tail}.old-{token}{suffix}"))
        except BaseException as e:
            _remove(temp)
            _remove_store_temps(temp)
            if _passes_through(e):
                raise
            raise _failed(self.final, e, "nothing was written there") from e

    def _replace(self, temp: str, aside: str) -> None:
        """Rename ``temp`` to the destination, moving an existing one aside first."""
        if not os.path.lexists(self.final):
            os.rename(temp, self.final)
            return
        os.rename(self.final, aside)
        try:
            os.rename(temp, self.final)
        except OSError:
            os.rename(aside, self.final)
            raise
        _remove(aside)

    def _in_place(self) -> Iterator[Any]:
        store = store_from_url(self.dst, storage_options=self.storage_options)
        before = set(store.list_prefix("")) if store.supports_listing else None
        try:
            yield self.dst
        except BaseException as e:
            if before is None or not store.supports_deletes or _passes_through(e):
                raise
            added = [k for k in store.list_prefix("") if k not in before]
            store.delete_many(added)
            self.removed_keys = len(added)
            raise _failed(
                _name(self.dst), e, f"the {len(added)} keys it had written were removed"
            ) from e


def _passes_through(e: BaseException) -> bool:
    """Errors raised as they are: Ctrl-C, and refusals made before anything was written."""
    return isinstance(e, (KeyboardInterrupt, SystemExit, ContainsArrayError, ContainsGroupError))


def _failed(where: str, e: BaseException, what: str) -> CopyError:
    return CopyError(f"copy to {where!r} failed ({what}): {type(e).__name__}: {e}")


def _remove_store_temps(path: str) -> None:
    """Remove the temp files a store left while writing ``path`` (an unclosed ZipStore's).

    Stores write beside their target as ``.<name>.<16 hex digits>.tmp``, renamed
    into place on close; a copy that failed never closed its store.
    """
    head, tail = os.path.split(path)
    prefix = f".{tail[:64]}."
    for name in os.listdir(head or "."):
        if name.startswith(prefix) and is_temp_name(name):
            _remove(os.path.join(head, name))


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(OSError):
            os.remove(path)
