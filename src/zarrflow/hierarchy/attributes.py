"""User attributes of an array or group: a mutable mapping persisted on change."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from zarrflow.errors import MetadataError, ReadOnlyError

__all__ = ["Attributes"]


class Attributes(MutableMapping[str, Any]):
    """A dict-like view of a node's attributes that writes them back on every change.

    A change is a function of the attributes *stored* when it is written, not
    of this view's copy: setting ``"b"`` keeps an ``"a"`` another handle added
    meanwhile (the node applies it by compare-and-swap, see
    :func:`~zarrflow.hierarchy.metadata_update.update_metadata`).

    Parameters
    ----------
    initial
        The attributes as stored.
    persist
        Called with a change (stored attributes -> new attributes) after each
        change; returns the attributes then stored.
    read_only
        Changes raise :class:`ReadOnlyError` when True.
    owner
        The node's name, for error messages.

    Examples
    --------
    >>> saved = {"other": 1}
    >>> def persist(change):
    ...     saved.update(change(dict(saved)))
    ...     return dict(saved)
    >>> attrs = Attributes({}, persist, read_only=False, owner="a")
    >>> attrs["units"] = "m"
    >>> saved, dict(attrs)
    ({'other': 1, 'units': 'm'}, {'other': 1, 'units': 'm'})
    """

    def __init__(
        self,
        initial: Mapping[str, Any],
        persist: Callable[[Callable[[dict[str, Any]], dict[str, Any]]], dict[str, Any]],
        *,
        read_only: bool,
        owner: str,
    ) -> None:
        self._data = dict(initial)
        self._persist = persist
        self._read_only = read_only
        self._owner = owner

    def _commit(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        if self._read_only:
            raise ReadOnlyError(f"cannot change attributes of {self._owner}: opened read-only")

        def checked(stored: dict[str, Any]) -> dict[str, Any]:
            new = change(dict(stored))
            try:
                json.dumps(new, allow_nan=True)
            except (TypeError, ValueError) as e:
                raise MetadataError(
                    f"attributes of {self._owner} must be JSON-serialisable: {e}"
                ) from None
            return new

        checked(self._data)  # bad input is refused before anything is read or written
        self._data = dict(self._persist(checked))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._commit(lambda stored: {**stored, key: value})

    def __delitem__(self, key: str) -> None:
        if key not in self._data:
            raise KeyError(key)

        def drop(stored: dict[str, Any]) -> dict[str, Any]:
            stored.pop(key, None)  # already gone from the store: nothing left to delete
            return stored

        self._commit(drop)

    def update(self, *args: Any, **kwargs: Any) -> None:  # one write, not one per key
        """Change several attributes with one write."""
        changes = dict(*args, **kwargs)
        self._commit(lambda stored: {**stored, **changes})

    def put(self, attrs: Mapping[str, Any]) -> None:
        """Replace all attributes with one write."""
        new = dict(attrs)
        self._commit(lambda stored: dict(new))

    def asdict(self) -> dict[str, Any]:
        return dict(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Attributes({self._data!r})"
