"""User attributes of an array or group: a mutable mapping persisted on change."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from zarrflow.errors import MetadataError, ReadOnlyError

__all__ = ["Attributes"]


class Attributes(MutableMapping[str, Any]):
    """A dict-like view of a node's attributes that writes them back on every change.

    Parameters
    ----------
    initial
        The attributes as stored.
    persist
        Called with the complete new attribute dict after each change.
    read_only
        Changes raise :class:`ReadOnlyError` when True.
    owner
        The node's name, for error messages.

    Examples
    --------
    >>> saved = {}
    >>> attrs = Attributes({}, saved.update, read_only=False, owner="a")
    >>> attrs["units"] = "m"
    >>> saved
    {'units': 'm'}
    """

    def __init__(
        self,
        initial: Mapping[str, Any],
        persist: Callable[[dict[str, Any]], None],
        *,
        read_only: bool,
        owner: str,
    ) -> None:
        self._data = dict(initial)
        self._persist = persist
        self._read_only = read_only
        self._owner = owner

    def _commit(self, new: dict[str, Any]) -> None:
        if self._read_only:
            raise ReadOnlyError(f"cannot change attributes of {self._owner}: opened read-only")
        try:
            json.dumps(new, allow_nan=True)
        except (TypeError, ValueError) as e:
            raise MetadataError(
                f"attributes of {self._owner} must be JSON-serialisable: {e}"
            ) from None
        self._persist(new)
        self._data = new

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._commit({**self._data, key: value})

    def __delitem__(self, key: str) -> None:
        if key not in self._data:
            raise KeyError(key)
        new = dict(self._data)
        del new[key]
        self._commit(new)

    def update(self, *args: Any, **kwargs: Any) -> None:  # one write, not one per key
        """Change several attributes with one write."""
        self._commit({**self._data, **dict(*args, **kwargs)})

    def put(self, attrs: Mapping[str, Any]) -> None:
        """Replace all attributes with one write."""
        self._commit(dict(attrs))

    def asdict(self) -> dict[str, Any]:
        return dict(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Attributes({self._data!r})"
