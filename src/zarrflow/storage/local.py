"""``LocalStore``: keys are files below a root directory.

The read path is the hot path of every local array: ``os.open`` + ``fstat`` +
one ``os.read``, with no fsspec and no buffered file object in between. Writes
are atomic: the value goes to a uniquely named temp file in the key's own
directory (``.<name>.<16 hex digits>.tmp``), which ``os.replace`` then renames
over the key, so a reader sees the old value or the new one, never a torn one.
Temp files (including those a crash left behind) are never listed.

Generations
    A file's generation is ``"<inode>-<size>-<mtime_ns>"`` (hex), taken by
    ``fstat`` on the same open descriptor the bytes are read from, so the
    bytes and the generation always belong together. A write renames a new
    file over the key, so every write gives a new inode while the old file
    still exists: a generation never repeats from one write to the next.
Conditional writes (``set_if``, ``delete_if``)
    Hold an exclusive ``flock`` on a lock file beside the key
    (``.<name>.zarrflow-lock``, in the key's directory resolved with
    ``os.path.realpath``, so a symlinked root, its real path and a store
    rooted at a parent or child directory share it), check the current
    generation, write the temp file, rename it over the key, release. The new
    file's mtime is set above the old one's, so even a recycled inode of the
    same size cannot repeat a generation. ``flock`` excludes threads and
    processes alike (each call opens its own descriptor); over NFS Linux maps
    it to a POSIX lock. Lock files are empty, kept (deleting one under a
    waiting locker is unsafe), never listed, and their names are reserved.
    A plain ``set`` takes no lock and stays as fast as before: it is last
    writer wins, and a plain ``set`` racing with a ``set_if`` of the same key
    may be overwritten by it.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Sequence

from zarrflow.errors import KeyPathError, StoreError
from zarrflow.storage.base import (
    NOT_MODIFIED,
    ByteRequest,
    Condition,
    IfGeneration,
    NotModified,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    Versioned,
    check_byte_request,
    check_condition,
    check_generation,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no conditional writes
    fcntl = None  # type: ignore[assignment]
from zarrflow.storage.files import (
    file_generation,
    open_new,
    read_all,
    read_at,
    read_request,
    read_rest,
    remove_quietly,
    write_new,
)
from zarrflow.storage.keys import is_valid_key, validate_key, validate_prefix

__all__ = ["LocalStore", "is_lock_name", "is_temp_name"]

_LOCK_SUFFIX = ".zarrflow-lock"

_TEMP_NAME = re.compile(r"\..*\.[0-9a-f]{16}\.tmp\Z", re.DOTALL)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def is_temp_name(name: str) -> bool:
    """True for the file name of a LocalStore temp file (``.<name>.<hex>.tmp``).

    Examples
    --------
    >>> is_temp_name(".0.3f2a9c1d0b4e5a67.tmp"), is_temp_name(".zarray")
    (True, False)
    """
    return name.endswith(".tmp") and _TEMP_NAME.match(name) is not None


def is_lock_name(name: str) -> bool:
    """True for the file name of a LocalStore lock file (``.<name>.zarrflow-lock``).

    Examples
    --------
    >>> is_lock_name(".0.zarrflow-lock"), is_lock_name("zarr.json")
    (True, False)
    """
    return name.endswith(_LOCK_SUFFIX) and name.startswith(".")


def _is_reserved(name: str) -> bool:
    return is_temp_name(name) or is_lock_name(name)


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
        if _is_reserved(key.rpartition("/")[2]):
            raise KeyPathError(
                f"invalid key {key!r} for {self.url}: names of the form '.<name>.<16 hex>.tmp' "
                f"are reserved for LocalStore temp files, '.<name>{_LOCK_SUFFIX}' for its "
                f"lock files"
            )
        return self._prefix + key

    def _error(self, action: str, key: str, exc: OSError) -> StoreError:
        return StoreError(f"could not {action} key {key!r} in {self.url}: {exc}")

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
                return read_all(fd)
            # no fstat: one read of size_hint bytes, and fewer than asked is the end
            # of the file (a regular file gives a short read only there); a full
            # read may have more behind it
            data = os.read(fd, size_hint)
            return data if len(data) < size_hint else read_rest(fd, data, 1 << 20)
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
            return read_at(fd, length, start) if length > 0 else b""
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
                elif is_file and not _is_reserved(name) and is_valid_key(key_prefix + name):
                    yield key_prefix + name

    # writes -----------------------------------------------------------------------
    def set(self, key: str, value: bytes) -> None:
        """Write ``value`` to file ``key`` atomically (temp file + ``os.replace``)."""
        self._check_writable(key)
        self._replace(key, self._path(key), value, None)

    def _replace(self, key: str, path: str, value: bytes, mtime_ns: int | None) -> str:
        """Write a temp file beside ``path`` and rename it over; the new file's generation."""
        cut = max(path.rfind("/"), path.rfind(os.sep)) + 1
        temp = f"{path[:cut]}.{path[cut : cut + 64]}.{os.urandom(8).hex()}.tmp"
        try:
            generation = write_new(temp, path[: cut - 1], value, mtime_ns)
        except OSError as exc:
            raise self._error("write", key, exc) from exc
        try:
            os.replace(temp, path)
        except OSError as exc:
            remove_quietly(temp)
            raise self._error("write", key, exc) from exc
        return generation

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

    # generations (see the module docstring) ------------------------------------------
    @property
    def supports_generations(self) -> bool:
        return fcntl is not None

    def get_versioned(self, key: str) -> Versioned | None:
        """The bytes of file ``key`` and their generation (one descriptor), or None.

        Examples
        --------
        >>> import tempfile
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.set("k", b"v1")
        >>> found = store.get_versioned("k")
        >>> found.data, found == store.get_versioned("k")
        (b'v1', True)
        """
        opened = self._open_versioned(key, None)
        if opened is None:
            return None
        fd, generation, size = opened
        try:
            data = os.read(fd, size) if size else b""
            if len(data) < size:  # not a regular short read: read on to the end
                data = read_rest(fd, data, size - len(data))
            return Versioned(data, generation)
        except OSError as exc:
            raise self._error("read", key, exc) from exc
        finally:
            os.close(fd)

    def get_if_changed(self, key: str, generation: str) -> Versioned | NotModified | None:
        """:data:`NOT_MODIFIED` if file ``key`` still has ``generation`` (one ``stat``), else
        :meth:`get_versioned`.

        Examples
        --------
        >>> import tempfile
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.set("k", b"v1")
        >>> store.get_if_changed("k", store.get_versioned("k").generation)
        NOT_MODIFIED
        """
        try:
            st = os.stat(self._path(key))
        except _MISSING:
            return None
        except OSError as exc:
            raise self._error("read", key, exc) from exc
        if stat.S_ISREG(st.st_mode) and file_generation(st) == generation:
            return NOT_MODIFIED
        return self.get_versioned(key)

    def get_range_versioned(
        self, key: str, request: ByteRequest, generation: str | None = None
    ) -> Versioned | None:
        """Part of one version of file ``key`` (see :meth:`Store.get_range_versioned`).

        Examples
        --------
        >>> import tempfile
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.set("k", b"abcdef")
        >>> store.get_range_versioned("k", RangeByteRequest(1, 3)).data
        b'bc'
        """
        check_byte_request(key, request)
        found = self._ranges(key, [request], generation)
        return None if found is None else Versioned(found[0][0], found[1])

    def get_ranges_versioned(
        self, key: str, requests: Sequence[ByteRequest], generation: str | None = None
    ) -> list[bytes] | None:
        """Ranges of file ``key`` read from one open descriptor: one version, never a mix.

        Examples
        --------
        >>> import tempfile
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.set("k", b"abcdef")
        >>> store.get_ranges_versioned("k", [RangeByteRequest(0, 2), OffsetByteRequest(4)])
        [b'ab', b'ef']
        """
        for request in requests:
            check_byte_request(key, request)
        found = self._ranges(key, requests, generation)
        return None if found is None else found[0]

    def _ranges(
        self, key: str, requests: Sequence[ByteRequest], generation: str | None
    ) -> tuple[list[bytes], str] | None:
        opened = self._open_versioned(key, generation)
        if opened is None:
            return None
        fd, found, size = opened
        try:
            return [read_request(fd, r, size) for r in requests], found
        except OSError as exc:
            raise self._error("read", key, exc) from exc
        finally:
            os.close(fd)

    def _open_versioned(self, key: str, expected: str | None) -> tuple[int, str, int] | None:
        """An open descriptor on file ``key``, its generation and size; None when missing.

        With ``expected``, another generation (or a missing file) raises
        :class:`~zarrflow.errors.GenerationConflictError`.
        """
        path = self._path(key)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except _MISSING:
            fd = -1
        except OSError as exc:
            raise self._error("read", key, exc) from exc
        generation = None
        size = 0
        if fd >= 0:
            try:
                st = os.fstat(fd)
            except OSError as exc:
                os.close(fd)
                raise self._error("read", key, exc) from exc
            if stat.S_ISREG(st.st_mode):
                generation, size = file_generation(st), st.st_size
            else:  # a directory is not a key
                os.close(fd)
                fd = -1
        if expected is not None and generation != expected:
            if fd >= 0:
                os.close(fd)
            check_generation(self.url, key, IfGeneration(expected), generation)
        return None if generation is None else (fd, generation, size)

    def set_if(self, key: str, value: bytes, condition: Condition) -> str:
        """Write file ``key`` only if ``condition`` holds, under its lock file; the new generation.

        Examples
        --------
        >>> import tempfile
        >>> from zarrflow.errors import GenerationConflictError
        >>> from zarrflow.storage import IfAbsent
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> g1 = store.set_if("k", b"v1", IfAbsent())
        >>> g2 = store.set_if("k", b"v2", IfGeneration(g1))
        >>> try:
        ...     store.set_if("k", b"stale", IfGeneration(g1))
        ... except GenerationConflictError:
        ...     print("conflict:", store.get("k"))
        conflict: b'v2'
        >>> sorted(store.list_prefix(""))  # the lock file is never listed
        ['k']
        """
        self._check_writable(key)
        path = self._path(key)
        check_condition(key, condition)
        self._require_locks(key)
        with self._locked(key, path):
            current = self._current(key, path)
            check_generation(self.url, key, condition, current and file_generation(current))
            floor = current.st_mtime_ns + 1 if current is not None else 0
            return self._replace(key, path, value, max(time.time_ns(), floor))

    def delete_if(self, key: str, condition: IfGeneration) -> None:
        """Remove file ``key`` only if it still has ``condition.generation``.

        Examples
        --------
        >>> import tempfile
        >>> from zarrflow.storage import IfAbsent
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.delete_if("k", IfGeneration(store.set_if("k", b"v", IfAbsent())))
        >>> store.get("k") is None
        True
        """
        self._check_writable(key)
        path = self._path(key)
        check_condition(key, condition, absent=False)
        self._require_locks(key)
        with self._locked(key, path):
            current = self._current(key, path)
            check_generation(self.url, key, condition, current and file_generation(current))
            try:
                os.remove(path)
            except OSError as exc:
                raise self._error("delete", key, exc) from exc

    def _require_locks(self, key: str) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise self._unsupported(f"a conditional write of key {key!r}")

    def _current(self, key: str, path: str) -> os.stat_result | None:
        """The ``stat`` of file ``key`` now, None when there is none."""
        try:
            st = os.stat(path)
        except _MISSING:
            return None
        except OSError as exc:
            raise self._error("check", key, exc) from exc
        return st if stat.S_ISREG(st.st_mode) else None

    @contextlib.contextmanager
    def _locked(self, key: str, path: str) -> Iterator[None]:
        """Hold the exclusive ``flock`` of ``key``'s lock file (created when missing)."""
        directory, _, name = path.rpartition(os.sep)
        directory = os.path.realpath(directory)  # one lock per file, however it is reached
        lock = f"{directory}{os.sep}.{name[:200]}{_LOCK_SUFFIX}"
        try:
            fd = open_new(lock, directory, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0))
        except OSError as exc:
            raise self._error("lock", key, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
