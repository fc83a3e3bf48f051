"""A tiny wrapper that keeps credentials out of reprs, logs and exception text.

Usage::

    token = Secret("abc123")
    repr(token), str(token), f"{token}"   # all '***'
    token.reveal()                        # 'abc123': only where the value goes on the wire
"""

from __future__ import annotations

import hmac

__all__ = ["Secret", "scrub"]

MASK = "***"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time, so comparing secrets leaks nothing through timing.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def scrub(text: str, secrets: list[str]) -> str:
    """Replace any secret value that slipped into `text` (e.g. echoed by a server) with '***'.

    >>> scrub("bad token abc123", ["abc123"])
    'bad token ***'
    """
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, MASK)
    return text
