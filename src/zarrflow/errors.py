"""The zarrflow exception hierarchy.

Every error zarrflow raises on purpose is a :class:`ZarrflowError`. Messages
name the array (its store URL and path), the chunk key where there is one, and
what was expected, so a user can tell from the message alone what went wrong.
"""

from __future__ import annotations

__all__ = [
    "AllocationError",
    "ArrayNotFoundError",
    "ChunkFailure",
    "ChunkTimeoutError",
    "CodecError",
    "ContainsArrayError",
    "ContainsGroupError",
    "CorruptChunkError",
    "GenerationConflictError",
    "GroupNotFoundError",
    "KeyPathError",
    "MetadataError",
    "NodeNotFoundError",
    "ParallelChunkError",
    "ReadOnlyError",
    "SelectionError",
    "StoreError",
    "TransientStoreError",
    "UnknownCodecError",
    "UnsupportedExtensionError",
    "UnsupportedOperationError",
    "ValueShapeError",
    "ZarrflowError",
]


class ZarrflowError(Exception):
    """Base class of every error zarrflow raises on purpose."""


class AllocationError(ZarrflowError, MemoryError):
    """The result of a selection is too large to allocate in memory."""


class MetadataError(ZarrflowError, ValueError):
    """Array or group metadata is missing a field, malformed, or inconsistent."""


class UnsupportedExtensionError(MetadataError):
    """A v3 extension marked ``must_understand`` that zarrflow does not implement."""


class CodecError(ZarrflowError, ValueError):
    """A codec could not be built from its configuration, or failed to encode."""


class UnknownCodecError(CodecError):
    """A codec name or id that neither zarrflow nor numcodecs knows."""


class CorruptChunkError(CodecError):
    """Stored chunk bytes are truncated, corrupt, or decode to the wrong size."""


class StoreError(ZarrflowError, OSError):
    """A storage operation failed permanently."""


class TransientStoreError(StoreError):
    """A storage operation failed in a way that may succeed if retried."""


class UnsupportedOperationError(StoreError):
    """The store cannot do this at all (a capability it lacks, e.g. generations on a zip)."""


class GenerationConflictError(ZarrflowError):
    """The stored object's generation is not the one a conditional read or write expected.

    Not an ``OSError`` on purpose: retry layers treat it as an answer, never as
    a transient fault. The caller re-reads and tries again (read-modify-write).
    ``key`` is the store key, ``expected`` the generation (or ``None`` for "absent")
    the caller assumed.

    Examples
    --------
    >>> err = GenerationConflictError("memory://x", "a/c/0", "3")
    >>> err.key, err.expected
    ('a/c/0', '3')
    """

    def __init__(self, url: str, key: str, expected: str | None, detail: str = "") -> None:
        self.url, self.key, self.expected, self.detail = url, key, expected, detail
        wanted = "no object there" if expected is None else f"generation {expected!r}"
        found = detail or "another version is stored"
        super().__init__(
            f"generation conflict on key {key!r} in {url}: expected {wanted}, but {found}; "
            f"re-read and try again"
        )

    def __reduce__(self):
        return (type(self), (self.url, self.key, self.expected, self.detail))


class KeyPathError(StoreError, ValueError):
    """A key or path that would escape the store root, or is otherwise invalid."""


class ReadOnlyError(ZarrflowError, PermissionError):
    """A write was attempted on an array, group or store opened read-only."""


class NodeNotFoundError(ZarrflowError, FileNotFoundError):
    """No array or group exists at the given path."""


class ArrayNotFoundError(NodeNotFoundError):
    """No array exists at the given path."""


class GroupNotFoundError(NodeNotFoundError):
    """No group exists at the given path."""


class ContainsArrayError(ZarrflowError, FileExistsError):
    """An array already exists where a new node was to be created."""


class ContainsGroupError(ZarrflowError, FileExistsError):
    """A group already exists where a new node was to be created."""


class SelectionError(ZarrflowError, IndexError):
    """A selection is out of bounds or not of a supported kind."""


class ValueShapeError(ZarrflowError, ValueError):
    """Data written to an array does not fit the selection's shape or dtype."""


class ChunkTimeoutError(ZarrflowError, TimeoutError):
    """Work on one chunk took longer than its timeout."""

    def __init__(self, chunk_index: tuple[int, ...], timeout: float, array: str = "") -> None:
        self.chunk_index = tuple(chunk_index)
        self.timeout = timeout
        where = f" of array {array}" if array else ""
        super().__init__(f"chunk {self.chunk_index}{where} did not finish within {timeout} s")

    def __reduce__(self):  # keep it picklable across worker processes
        return (type(self), (self.chunk_index, self.timeout))


class ParallelChunkError(ZarrflowError):
    """A parallel operation in which one or more chunks failed.

    ``failures`` lists every :class:`ChunkFailure`; chunks not listed succeeded
    and what they wrote stays written.
    """

    def __init__(self, message: str, failures: list[ChunkFailure]) -> None:
        self.failures = list(failures)
        indices = ", ".join(str(f.chunk_index) for f in self.failures[:20])
        more = f" (+{len(self.failures) - 20} more)" if len(self.failures) > 20 else ""
        first = self.failures[0].exception if self.failures else None
        cause = f"; first: {type(first).__name__}: {first}" if first is not None else ""
        self.message = message
        super().__init__(f"{message}: {len(self.failures)} chunk(s) failed: {indices}{more}{cause}")

    def __reduce__(self):
        return (type(self), (self.message, self.failures))


class ChunkFailure:
    """The outcome of a chunk whose work failed, in place of its result.

    Examples
    --------
    >>> f = ChunkFailure((0, 1), ValueError("bad"))
    >>> f.chunk_index, type(f.exception).__name__
    ((0, 1), 'ValueError')
    """

    __slots__ = ("chunk_index", "exception")

    def __init__(self, chunk_index: tuple[int, ...], exception: BaseException) -> None:
        self.chunk_index = tuple(chunk_index)
        self.exception = exception

    def __repr__(self) -> str:
        return f"ChunkFailure({self.chunk_index}, {self.exception!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ChunkFailure)
            and other.chunk_index == self.chunk_index
            and type(other.exception) is type(self.exception)
            and str(other.exception) == str(self.exception)
        )

    def __hash__(self) -> int:
        return hash((self.chunk_index, type(self.exception), str(self.exception)))

    def __reduce__(self):
        return (ChunkFailure, (self.chunk_index, self.exception))
