"""Store key validation: keys are relative, ``/``-separated, and never escape.

Every store validates every key before touching its backend, so a key such as
``"../etc/passwd"`` or ``"/tmp/x"`` can never read or write outside the store's
root. Validation is a handful of string tests (well under a microsecond for a
typical chunk key) because it runs on the per-chunk hot path.
"""

from __future__ import annotations

from zarrflow.errors import KeyPathError

__all__ = ["is_valid_key", "validate_key", "validate_prefix"]

_EXPECTED = (
    "expected a relative '/'-separated key such as 'a/b/zarr.json' "
    "(no '.' or '..' segments, no empty segments, no leading '/', "
    "no backslashes, no NUL, no drive letters)"
)


def _problem(key: str) -> str | None:
    """Why ``key`` is not a valid key, or None when it is."""
    if not key:
        return "it is empty"
    if key[0] == "/":
        return "it is absolute (starts with '/')"
    if key[-1] == "/":
        return "it ends with '/' (only prefixes may)"
    if "\\" in key:
        return "it contains a backslash"
    if "\x00" in key:
        return "it contains a NUL character"
    if "//" in key:
        return "it has an empty segment ('//')"
    if len(key) > 1 and key[1] == ":" and key[0].isascii() and key[0].isalpha():
        return "it starts with a drive letter"
    if "." in key:
        for segment in key.split("/"):
            if segment in (".", ".."):
                return f"it has a {segment!r} segment"
    return None


def is_valid_key(key: str) -> bool:
    """True when ``key`` would pass :func:`validate_key`.

    Examples
    --------
    >>> is_valid_key("a/c/0/1"), is_valid_key("../x")
    (True, False)
    """
    return isinstance(key, str) and _problem(key) is None


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid store key, else raise.

    Parameters
    ----------
    key : str
        A relative ``/``-separated path such as ``"a/c/0/1"``.

    Returns
    -------
    str
        ``key`` itself.

    Raises
    ------
    KeyPathError
        If ``key`` is not a string, is empty, absolute, has ``.``/``..`` or
        empty segments, a trailing ``/``, a backslash, a NUL or a drive letter.

    Examples
    --------
    >>> validate_key("group/array/c/0/0")
    'group/array/c/0/0'
    >>> validate_key("a/../../etc/passwd")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    KeyPathError: invalid store key 'a/../../etc/passwd': it has a '..' segment
    """
    if not isinstance(key, str):
        raise KeyPathError(f"invalid store key {key!r}: it is a {type(key).__name__}; {_EXPECTED}")
    problem = _problem(key)
    if problem is not None:
        raise KeyPathError(f"invalid store key {key!r}: {problem}; {_EXPECTED}")
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it is a valid listing prefix, else raise.

    A prefix is ``""`` (the root), a valid key, or a valid key followed by one
    ``/`` (a "directory").

    Parameters
    ----------
    prefix : str
        The prefix to check.

    Returns
    -------
    str
        ``prefix`` itself.

    Raises
    ------
    KeyPathError
        If ``prefix`` is neither ``""`` nor a valid key with an optional
        trailing ``/``.

    Examples
    --------
    >>> validate_prefix(""), validate_prefix("a/c/"), validate_prefix("a/c/0")
    ('', 'a/c/', 'a/c/0')
    >>> validate_prefix("/")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    KeyPathError: invalid store prefix '/': it is absolute
    """
    if prefix == "":
        return prefix
    if not isinstance(prefix, str):
        raise KeyPathError(
            f"invalid store prefix {prefix!r}: it is a {type(prefix).__name__}; "
            f"expected '' or a key with an optional trailing '/'"
        )
    body = prefix[:-1] if prefix.endswith("/") else prefix
    problem = "it is absolute (starts with '/')" if prefix[0] == "/" else _problem(body)
    if problem is not None:
        raise KeyPathError(
            f"invalid store prefix {prefix!r}: {problem}; expected '' or a key with an "
            f"optional trailing '/' ({_EXPECTED})"
        )
    return prefix
