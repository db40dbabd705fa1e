"""``LocalStore``: keys are files below a root directory.

The read path is the hot path of every local array: ``os.open`` + ``fstat`` +
one ``os.read``, with no fsspec and no buffered file object in between. Writes
are atomic: the value goes to a uniquely named temp file in the key's own
directory (``.<name>.<16 hex digits>.tmp``), which ``os.replace`` then renames
over the key, so a reader sees the old value or the new one, never a torn one.
Temp files (including those a crash left behind) are never listed.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Sequence

from zarrflow.errors import KeyPathError, ReadOnlyError, StoreError
from zarrflow.storage.base import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    check_byte_request,
)
from zarrflow.storage.keys import is_valid_key, validate_key, validate_prefix

__all__ = ["LocalStore"]

_TEMP_NAME = re.compile(r"\..*\.[0-9a-f]{16}\.tmp\Z", re.DOTALL)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)
_WRITE_ATTEMPTS = 4  # a concurrent delete may remove a directory between makedirs and open


def is_temp_name(name: str) -> bool:
    """True for the file name of a LocalStore temp file (``.<name>.<hex>.tmp``).

    Examples
    --------
    >>> is_temp_name(".0.3f2a9c1d0b4e5a67.tmp"), is_temp_name(".zarray")
    (True, False)
    """
    return name.endswith(".tmp") and _TEMP_NAME.match(name) is not None


def _read_all(fd: int) -> bytes:
    """Everything from ``fd``'s position to its end, in one read when the size is known."""
    size = os.fstat(fd).st_size
    data = os.read(fd, size) if size else b""
    if size and len(data) == size:
        return data
    return _read_rest(fd, data, max(size - len(data), 1 << 20))


def _read_rest(fd: int, data: bytes, step: int) -> bytes:
    """``data`` followed by the rest of ``fd`` (a short read, or a size not known)."""
    parts = [data]
    while part := os.read(fd, step):
        parts.append(part)
    return b"".join(parts)


def _read_at(fd: int, length: int, offset: int) -> bytes:
    """Up to ``length`` bytes at ``offset`` (fewer only at the end of the file)."""
    if hasattr(os, "pread"):
        data = os.pread(fd, length, offset)
    else:  # pragma: no cover - Windows
        os.lseek(fd, offset, os.SEEK_SET)
        data = os.read(fd, length)
    while 0 < len(data) < length:  # a short read before EOF: keep going
        more = _read_at(fd, length - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data


class LocalStore(Store):
    """A store of files below the directory ``root``.

    Parameters
    ----------
    root : str or os.PathLike
        The directory holding the keys; created on the first write.
    read_only : bool, default False
        Refuse every write with :class:`~zarrflow.errors.ReadOnlyError`.

    Examples
    --------
    >>> import tempfile
    >>> store = LocalStore(tempfile.mkdtemp())
    >>> store.set("a/zarr.json", b"{}")
    >>> store.get("a/zarr.json"), store.get("missing")
    (b'{}', None)
    >>> sorted(store.list_prefix(""))
    ['a/zarr.json']
    """

    def __init__(self, root: str | os.PathLike[str], read_only: bool = False) -> None:
        root = os.fspath(root)
        if "\x00" in root:
            raise KeyPathError(
                f"invalid store root {root!r}: a path cannot contain a NUL character"
            )
        self.root = os.path.abspath(root)
        self.read_only = bool(read_only)
        self.url = "file://" + self.root.replace(os.sep, "/")
        self._prefix = self.root.rstrip(os.sep) + os.sep

    def __reduce__(self) -> tuple[type[LocalStore], tuple[str, bool]]:
        return (LocalStore, (self.root, self.read_only))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LocalStore)
            and other.root == self.root
            and other.read_only == self.read_only
        )

    def __hash__(self) -> int:
        return hash((LocalStore, self.root, self.read_only))

    def _path(self, key: str) -> str:
        validate_key(key)
        if key.endswith(".tmp") and is_temp_name(key.rpartition("/")[2]):
            raise KeyPathError(
                f"invalid key {key!r} for {self.url}: names of the form '.<name>.<16 hex>.tmp' "
                f"are reserved for LocalStore temp files"
            )
        return self._prefix + key

    def _error(self, action: str, key: str, exc: OSError) -> StoreError:
        return StoreError(f"could not {action} key {key!r} in {self.url}: {exc}")

    def _check_writable(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"cannot write key {key!r}: store {self.url} is read-only")

    # reads ------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The bytes of file ``key``, or None when it does not exist."""
        return self._read(self._path(key), key)

    def _read(self, path: str, key: str, size_hint: int | None = None) -> bytes | None:
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except _MISSING:
            return None
        except OSError as exc:
            raise self._error("read", key, exc) from exc
        try:
            if size_hint is None:
                return _read_all(fd)
            # no fstat: one read of size_hint bytes, and fewer than asked is the end
            # of the file (a regular file gives a short read only there); a full
            # read may have more behind it
            data = os.read(fd, size_hint)
            return data if len(data) < size_hint else _read_rest(fd, data, 1 << 20)
        except IsADirectoryError:
            return None
        except OSError as exc:
            raise self._error("read", key, exc) from exc
        finally:
            os.close(fd)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The bytes of many files, None for missing ones.

        When a key is missing because its directory does not exist (a row of
        chunks never written), the other keys of that directory are answered
        without a system call; keys that exist cost nothing extra.

        Examples
        --------
        >>> import tempfile
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.set("c/0/1", b"x")
        >>> store.get_many(["c/0/1", "c/0/2", "c/5/0", "c/5/1"])
        [b'x', None, None, None]
        """
        return self._read_many(keys, self._path, None)

    def get_many_trusted(
        self, keys: Sequence[str], size_hint: int | None = None
    ) -> list[bytes | None]:
        """:meth:`get_many` for keys the caller has already validated.

        The chunk layer's fast path: a chunk key is an array's validated prefix
        followed by digits and separators (never ``..``, never a temp-file
        name), so checking one such key vouches for all of them and this
        method does not check each again. ``size_hint`` (about the largest
        value expected) replaces the ``fstat`` of each file by one ``read`` of
        that many bytes, a short read being taken as the end of the file.
        Never pass keys that came from outside.

        Examples
        --------
        >>> import tempfile
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.set("a/c/0", b"xyz")
        >>> store.get_many_trusted(["a/c/0", "a/c/1"], size_hint=2)
        [b'xyz', None]
        """
        return self._read_many(keys, self._prefix.__add__, size_hint)

    def _read_many(
        self, keys: Sequence[str], to_path: Callable[[str], str], size_hint: int | None
    ) -> list[bytes | None]:
        read, dirname = self._read, os.path.dirname
        known: dict[str, bool] = {}  # directory -> exists, learnt from missing keys only
        gone = False  # some directory is known to be missing
        out: list[bytes | None] = []
        for key in keys:
            path = to_path(key)
            if gone and known.get(dirname(path)) is False:
                out.append(None)
                continue
            data = read(path, key, size_hint)
            if data is None and (parent := dirname(path)) not in known:
                known[parent] = exists = os.path.isdir(parent)
                gone = gone or not exists
            out.append(data)
        return out

    def get_range(self, key: str, request: ByteRequest) -> bytes | None:
        """Part of file ``key`` read with ``pread``, or None when it does not exist."""
        check_byte_request(key, request)
        path = self._path(key)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except _MISSING:
            return None
        except OSError as exc:
            raise self._error("read", key, exc) from exc
        try:
            if type(request) is RangeByteRequest:
                start, length = request.start, request.end - request.start
            else:
                size = os.fstat(fd).st_size
                if type(request) is OffsetByteRequest:
                    start = request.offset
                else:
                    start = max(size - request.suffix, 0)
                length = size - start
            return _read_at(fd, length, start) if length > 0 else b""
        except IsADirectoryError:
            return None
        except OSError as exc:
            raise self._error("read", key, exc) from exc
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        """True when file ``key`` exists (one ``stat``, no read)."""
        return os.path.isfile(self._path(key))

    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Keys starting with ``prefix``, walking only the directories that can match."""
        validate_prefix(prefix)
        directory, _, start = prefix.rpartition("/")
        base = self._prefix + directory if directory else self.root
        return self._walk(prefix, [(base, directory + "/" if directory else "", start)])

    def _walk(self, prefix: str, stack: list[tuple[str, str, str]]) -> Iterator[str]:
        """Depth-first walk of (directory, key prefix, name filter) entries.

        Symbolic links to directories are not followed (as in ``os.walk``).
        """
        while stack:
            path, key_prefix, name_start = stack.pop()
            try:
                with os.scandir(path) as entries:
                    found = [
                        (e.name, e.is_dir(follow_symlinks=False), e.is_file())
                        for e in entries
                        if e.name.startswith(name_start)
                    ]
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise self._error("list", prefix, exc) from exc
            for name, is_dir, is_file in found:
                if is_dir:
                    stack.append((path + os.sep + name, key_prefix + name + "/", ""))
                elif is_file and not is_temp_name(name) and is_valid_key(key_prefix + name):
                    yield key_prefix + name

    # writes -----------------------------------------------------------------------
    def set(self, key: str, value: bytes) -> None:
        """Write ``value`` to file ``key`` atomically (temp file + ``os.replace``)."""
        self._check_writable(key)
        path = self._path(key)
        cut = max(path.rfind("/"), path.rfind(os.sep)) + 1
        temp = f"{path[:cut]}.{path[cut : cut + 64]}.{os.urandom(8).hex()}.tmp"
        try:
            _write_new(temp, path[: cut - 1], value)
        except OSError as exc:
            raise self._error("write", key, exc) from exc
        try:
            os.replace(temp, path)
        except OSError as exc:
            _remove_quietly(temp)
            raise self._error("write", key, exc) from exc

    def delete(self, key: str) -> None:
        """Remove file ``key``; a missing key is ignored."""
        self._check_writable(key)
        path = self._path(key)
        try:
            os.remove(path)
        except _MISSING:
            pass
        except OSError as exc:
            raise self._error("delete", key, exc) from exc


def _write_new(temp: str, directory: str, value: bytes) -> None:
    """Create ``temp`` holding ``value``, creating ``directory`` only when missing."""
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            fd = os.open(temp, _CREATE_FLAGS, 0o666)
            break
        except FileNotFoundError:
            if attempt == _WRITE_ATTEMPTS - 1:
                raise
            os.makedirs(directory, exist_ok=True)
    try:
        view = memoryview(value).cast("B")
        while view.nbytes:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        _remove_quietly(temp)
        raise
    os.close(fd)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
