"""``ZipStore``: keys are the members of one zip archive.

One :class:`zipfile.ZipFile` handle serves every thread, behind a lock: a
``ZipFile`` handle is not safe for concurrent use, and reopening the archive
per read parses its whole central directory each time (measured: ~55 ms per
read on a 10,000-member archive, against ~25-30 µs per locked read of a 4 KiB
member; one handle per thread was no faster under 8 threads).

A zip archive cannot change a member in place: writing a key that exists
already raises :class:`~zarrflow.errors.StoreError`, and so does deleting one
(``supports_deletes`` is False). Members are written uncompressed by default
(chunks arrive compressed by their codecs) with a fixed timestamp, so the
same writes give byte-identical archives. Member names that are not valid
keys (``../x``, ``/etc/x``, backslashes, directory entries) are never listed
and cannot be read.

Crash safety: an archive on disk is never modified in place. A store opened
for writing builds its archive in a temp file beside it
(``.<name>.<16 hex>.tmp``, the LocalStore temp-file pattern, so a LocalStore
never lists one) and renames it over ``path`` on :meth:`ZipStore.close`,
after an ``fsync``. In mode ``"a"`` the existing archive is copied to the
temp file at the first write (``shutil.copyfile``: a kernel-side copy, about
the cost of reading the archive once); until then reads are served from the
archive itself and closing leaves it untouched. A process killed before
``close`` therefore leaves the archive exactly as it was (earlier members all
readable) plus a stray temp file; one killed after leaves the new archive.
Two writers of one archive at once do not corrupt it either: the last to
close wins (the other's members are lost), so keep to one writer.
Generations are not supported (``supports_generations`` is False).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import weakref
import zipfile
import zlib
from collections.abc import Iterator
from typing import Literal

from zarrflow.errors import StoreError
from zarrflow.storage.base import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    check_byte_request,
)
from zarrflow.storage.keys import is_valid_key, validate_key, validate_prefix

__all__ = ["ZipStore"]

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip header can hold


class ZipStore(Store):
    """A store backed by a zip archive on the local filesystem.

    Parameters
    ----------
    path : str or os.PathLike
        The archive's file name.
    mode : {"r", "w", "a"}, default "r"
        ``"r"`` reads an existing archive (the store is read-only), ``"w"``
        creates a new archive (truncating any file there), ``"a"`` appends to
        an existing archive or creates one.
    compression : int, default zipfile.ZIP_STORED
        How new members are compressed (a ``zipfile`` constant).

    Notes
    -----
    Call :meth:`close` (or use ``with``) to finalise an archive opened for
    writing; a store that is garbage-collected unclosed is finalised then.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "data.zip")
    >>> with ZipStore(path, mode="w") as store:
    ...     store.set("a/zarr.json", b"{}")
    >>> ZipStore(path).get("a/zarr.json")
    b'{}'
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: Literal["r", "w", "a"] = "r",
        *,
        compression: int = zipfile.ZIP_STORED,
    ) -> None:
        if mode not in ("r", "w", "a"):
            raise StoreError(f"ZipStore mode must be 'r', 'w' or 'a', not {mode!r}")
        self.path = os.path.abspath(os.fspath(path))
        self.mode = mode
        self.compression = compression
        self.read_only = mode == "r"
        self.url = "zip://" + self.path.replace(os.sep, "/")
        self._lock = threading.Lock()
        existing = mode == "r" or (mode == "a" and os.path.isfile(self.path))
        self._writer = _Writer(self.path, compression)
        try:
            if existing:
                self._zip: zipfile.ZipFile | None = zipfile.ZipFile(self.path, "r")
            else:
                self._zip = self._writer.start(None)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:  # ValueError: a NUL in the path
            raise StoreError(
                f"could not open zip archive {self.path!r} (mode {mode!r}): {exc}"
            ) from exc
        self._finalizer = weakref.finalize(self, self._writer.finish, self._zip)
        self._members: dict[str, zipfile.ZipInfo] = {
            info.filename: info for info in self._zip.infolist() if is_valid_key(info.filename)
        }

    def __reduce__(self) -> tuple[type[ZipStore], tuple[str, str, int]]:
        if not self.read_only:
            raise StoreError(
                f"cannot pickle {self.url} opened for writing (mode {self.mode!r}): a zip "
                f"archive has one writer; close it and pickle ZipStore(path, mode='r')"
            )
        return (_unpickle, (self.path, self.mode, self.compression))

    @property
    def supports_deletes(self) -> bool:
        return False

    def _archive(self) -> zipfile.ZipFile:
        """The open archive (call with the lock held)."""
        if self._zip is None:
            raise StoreError(f"zip store {self.url} is closed")
        return self._zip

    def _writable_archive(self) -> zipfile.ZipFile:
        """The archive being written, copied into the temp file first (lock held)."""
        archive = self._archive()
        if self._writer.temp is None:  # an existing archive, first write: copy it
            copy = self._writer.start(self.path)
            self._finalizer.detach()
            archive.close()
            self._zip = archive = copy
            self._finalizer = weakref.finalize(self, self._writer.finish, copy)
            self._members = {i.filename: i for i in archive.infolist() if is_valid_key(i.filename)}
        return archive

    def _error(self, action: str, key: str, exc: Exception) -> StoreError:
        return StoreError(f"could not {action} key {key!r} in {self.url}: {exc}")

    # reads ------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The member ``key``, decompressed and CRC-checked, or None."""
        info = self._members.get(validate_key(key))
        if info is None:
            return None
        try:
            with self._lock:
                return self._archive().read(info)
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise self._error("read", key, exc) from exc

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        """Part of member ``key`` (a seek within it), or None."""
        check_byte_request(key, request)
        info = self._members.get(validate_key(key))
        if info is None:
            return None
        if type(request) is RangeByteRequest:
            start, stop = request.start, min(request.end, info.file_size)
        elif type(request) is OffsetByteRequest:
            start, stop = request.offset, info.file_size
        else:
            start, stop = max(info.file_size - request.suffix, 0), info.file_size
        if start >= stop:
            return b""
        try:
            with self._lock, self._archive().open(info) as member:
                member.seek(start)
                return member.read(stop - start)
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise self._error("read", key, exc) from exc

    def exists(self, key: str) -> bool:
        """True when the archive holds member ``key``."""
        return validate_key(key) in self._members

    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Member names starting with ``prefix`` (invalid names never appear)."""
        validate_prefix(prefix)
        with self._lock:
            names = list(self._members)
        return iter([name for name in names if name.startswith(prefix)])

    # writes -----------------------------------------------------------------------
    def set(self, key: str, value: bytes) -> None:
        """Append member ``key``; a key already in the archive raises StoreError."""
        self._check_writable(key)
        validate_key(key)
        info = zipfile.ZipInfo(key, date_time=_EPOCH)
        info.compress_type = self.compression
        info.external_attr = 0o644 << 16
        data = value if type(value) is bytes else memoryview(value).cast("B")
        with self._lock:
            if key in self._members:
                raise StoreError(
                    f"cannot overwrite key {key!r} in {self.url}: a zip archive cannot replace "
                    f"a member in place; write the data to a new archive instead"
                )
            try:
                self._writable_archive().writestr(info, data)
            except (OSError, ValueError, zipfile.LargeZipFile) as exc:
                raise self._error("write", key, exc) from exc
            self._members[key] = info

    def delete(self, key: str) -> None:
        """Ignore a missing key; raise StoreError for a member (zip cannot delete one)."""
        self._check_writable(key)
        if validate_key(key) in self._members:
            raise StoreError(
                f"cannot delete key {key!r} from {self.url}: a zip archive cannot remove a "
                f"member in place (supports_deletes is False)"
            )

    def close(self) -> None:
        """Finalise the archive (write its central directory, rename it into place)."""
        with self._lock:
            if self._zip is not None:
                self._zip = None
                try:
                    self._finalizer()
                except (OSError, ValueError) as exc:
                    raise StoreError(f"could not finalise zip archive {self.url}: {exc}") from exc


class _Writer:
    """The temp file an archive is written to, and its commit on close (see the module)."""

    def __init__(self, path: str, compression: int) -> None:
        self.path = path
        self.compression = compression
        self.temp: str | None = None

    def start(self, copy_of: str | None) -> zipfile.ZipFile:
        """Open the temp archive for writing: a copy of ``copy_of``, or a new one."""
        directory, name = os.path.split(self.path)
        temp = os.path.join(directory, f".{name[:64]}.{os.urandom(8).hex()}.tmp")
        try:
            if copy_of is not None:
                shutil.copyfile(copy_of, temp)
            archive = zipfile.ZipFile(
                temp, "a" if copy_of else "w", compression=self.compression, allowZip64=True
            )
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(temp)
            raise
        self.temp = temp
        return archive

    def finish(self, archive: zipfile.ZipFile) -> None:
        """Close ``archive``; if it is the temp one, fsync it and rename it over the path."""
        archive.close()
        temp, self.temp = self.temp, None
        if temp is None:
            return
        try:
            fd = os.open(temp, os.O_RDONLY)
        except FileNotFoundError:  # removed before close: the archive was discarded
            return
        try:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.remove(temp)
            raise


def _unpickle(path: str, mode: Literal["r", "w", "a"], compression: int) -> ZipStore:
    return ZipStore(path, mode, compression=compression)
