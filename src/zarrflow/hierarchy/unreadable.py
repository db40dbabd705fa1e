"""A group member zarrflow cannot open, listed with the error that opening it raises."""

from __future__ import annotations

from dataclasses import dataclass

from zarrflow.errors import CodecError, MetadataError, ZarrflowError

__all__ = ["MEMBER_ERRORS", "UnreadableMember"]

#: the errors that make one member unreadable without making its group so: what the
#: member's own metadata or codecs say (never a store failure, which is retried or raised)
MEMBER_ERRORS = (MetadataError, CodecError)


@dataclass(frozen=True)
class UnreadableMember:
    """A member of a group that cannot be opened (an unknown codec, data type or extension).

    :meth:`Group.members` lists it in the member's place so that listing,
    ``tree()``, ``info`` and ``copy`` of the group work; ``group[name]``
    raises :attr:`error`.

    Examples
    --------
    >>> from zarrflow.errors import UnknownCodecError
    >>> m = UnreadableMember("x", "g/x", UnknownCodecError("unknown codec 'foo'"))
    >>> print(m.describe())
    UnknownCodecError: unknown codec 'foo'
    """

    name: str
    path: str
    error: ZarrflowError
    kind: str = "unreadable"

    def describe(self) -> str:
        """The error's class and message, one line."""
        return f"{type(self.error).__name__}: {self.error}".splitlines()[0]

    def reraise(self) -> None:
        """Raise the error opening this member raises."""
        raise self.error
