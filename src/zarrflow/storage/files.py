"""Low-level file I/O on descriptors: whole and ranged reads, new files, generations.

The pieces :class:`~zarrflow.storage.local.LocalStore` is built from: one
``os.read``/``os.pread`` per value where possible, new files created with
``O_EXCL`` (their directory made only when missing), and a file's
generation taken from its ``stat``.
"""

from __future__ import annotations

import contextlib
import os

from zarrflow.storage.base import ByteRequest, OffsetByteRequest, RangeByteRequest

__all__ = [
    "CREATE_FLAGS",
    "file_generation",
    "open_new",
    "read_all",
    "read_at",
    "read_request",
    "read_rest",
    "remove_quietly",
    "write_new",
]

CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
WRITE_ATTEMPTS = 4  # a concurrent delete may remove a directory between makedirs and open


def file_generation(st: os.stat_result) -> str:
    """The generation of a file from its ``stat``: ``"<inode>-<size>-<mtime_ns>"`` in hex.

    Examples
    --------
    >>> import os, tempfile
    >>> fd, path = tempfile.mkstemp()
    >>> file_generation(os.fstat(fd)) == file_generation(os.stat(path))
    True
    >>> os.close(fd); os.remove(path)
    """
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


def read_all(fd: int) -> bytes:
    """Everything from ``fd``'s position to its end, in one read when the size is known.

    Examples
    --------
    >>> import os, tempfile
    >>> fd, path = tempfile.mkstemp(); _ = os.write(fd, b"abc"); _ = os.lseek(fd, 0, 0)
    >>> read_all(fd)
    b'abc'
    >>> os.close(fd); os.remove(path)
    """
    size = os.fstat(fd).st_size
    data = os.read(fd, size) if size else b""
    if size and len(data) == size:
        return data
    return read_rest(fd, data, max(size - len(data), 1 << 20))


def read_rest(fd: int, data: bytes, step: int) -> bytes:
    """``data`` followed by the rest of ``fd`` (a short read, or a size not known).

    Examples
    --------
    >>> import os, tempfile
    >>> fd, path = tempfile.mkstemp(); _ = os.write(fd, b"abc"); _ = os.lseek(fd, 1, 0)
    >>> read_rest(fd, b"a", 1)
    b'abc'
    >>> os.close(fd); os.remove(path)
    """
    parts = [data]
    while part := os.read(fd, step):
        parts.append(part)
    return b"".join(parts)


def read_at(fd: int, length: int, offset: int) -> bytes:
    """Up to ``length`` bytes at ``offset`` (fewer only at the end of the file).

    Examples
    --------
    >>> import os, tempfile
    >>> fd, path = tempfile.mkstemp(); _ = os.write(fd, b"abcdef")
    >>> read_at(fd, 2, 1), read_at(fd, 10, 4)
    (b'bc', b'ef')
    >>> os.close(fd); os.remove(path)
    """
    if hasattr(os, "pread"):
        data = os.pread(fd, length, offset)
    else:  # pragma: no cover - Windows
        os.lseek(fd, offset, os.SEEK_SET)
        data = os.read(fd, length)
    while 0 < len(data) < length:  # a short read before EOF: keep going
        more = read_at(fd, length - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data


def read_request(fd: int, request: ByteRequest, size: int) -> bytes:
    """The bytes ``request`` names of a file of ``size`` bytes open as ``fd``.

    Examples
    --------
    >>> import os, tempfile
    >>> from zarrflow.storage import SuffixByteRequest
    >>> fd, path = tempfile.mkstemp(); _ = os.write(fd, b"abcdef")
    >>> read_request(fd, SuffixByteRequest(2), 6), read_request(fd, RangeByteRequest(4, 9), 6)
    (b'ef', b'ef')
    >>> os.close(fd); os.remove(path)
    """
    if type(request) is RangeByteRequest:
        start, stop = request.start, min(request.end, size)
    elif type(request) is OffsetByteRequest:
        start, stop = request.offset, size
    else:
        start, stop = max(size - request.suffix, 0), size
    return read_at(fd, stop - start, start) if stop > start else b""


def open_new(path: str, directory: str, flags: int) -> int:
    """``os.open(path, flags)``, creating ``directory`` only when missing.

    Examples
    --------
    >>> import os, tempfile
    >>> directory = os.path.join(tempfile.mkdtemp(), "new")
    >>> os.close(open_new(os.path.join(directory, "f"), directory, CREATE_FLAGS))
    >>> os.listdir(directory)
    ['f']
    """
    for attempt in range(WRITE_ATTEMPTS):
        try:
            return os.open(path, flags, 0o666)
        except FileNotFoundError:
            if attempt == WRITE_ATTEMPTS - 1:
                raise
            os.makedirs(directory, exist_ok=True)
    raise AssertionError("unreachable")  # pragma: no cover


def write_new(temp: str, directory: str, value: bytes, mtime_ns: int | None = None) -> str:
    """Create ``temp`` holding ``value``; its generation (with mtime ``mtime_ns`` if given).

    Examples
    --------
    >>> import os, tempfile
    >>> directory = tempfile.mkdtemp()
    >>> generation = write_new(os.path.join(directory, "f"), directory, b"xy", mtime_ns=10**18)
    >>> generation.endswith("-2-" + format(10**18, "x"))
    True
    """
    fd = open_new(temp, directory, CREATE_FLAGS)
    try:
        view = memoryview(value).cast("B")
        while view.nbytes:
            view = view[os.write(fd, view) :]
        if mtime_ns is None:
            return ""
        os.utime(fd, ns=(mtime_ns, mtime_ns))
        return file_generation(os.fstat(fd))
    except BaseException:
        os.close(fd)
        fd = -1
        remove_quietly(temp)
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def remove_quietly(path: str) -> None:
    """Remove file ``path`` if it can be removed; never raise.

    Examples
    --------
    >>> remove_quietly("/nonexistent/zarrflow-file")
    """
    with contextlib.suppress(OSError):
        os.remove(path)
