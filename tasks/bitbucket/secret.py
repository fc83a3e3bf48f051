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
    """Replace any secret value that slipped into `text` (e.g. echoed by a server) with '***',
    and any part of one at least PART_SHOWN characters long: a server's words are cut short
    before they reach a message, and half a token is still too much of it.

    >>> scrub("bad token abc123", ["abc123"])
    'bad token ***'
    >>> scrub("echo: s3cr3t-t0ken-1 (cut)", ["s3cr3t-t0ken-12345"])
    'echo: *** (cut)'
    """
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, MASK)
    for value in secrets:
        if len(value) >= PART_SHOWN:
            text = _mask_parts(text, value)
    return text


PART_SHOWN = 8  # characters of a secret that may appear in text before they are masked


def _mask_parts(text: str, secret: str) -> str:
    """`text` with every run of PART_SHOWN or more characters that is part of `secret`
    masked."""
    grams = {secret[i : i + PART_SHOWN] for i in range(len(secret) - PART_SHOWN + 1)}
    kept, at, last = [], 0, len(text) - PART_SHOWN
    start = 0  # of the text not yet kept
    while at <= last:
        if text[at : at + PART_SHOWN] not in grams:
            at += 1
            continue
        end = at + PART_SHOWN
        while end < len(text) and text[at : end + 1] in secret:
            end += 1
        kept += [text[start:at], MASK]
        start = at = end
    return "".join([*kept, text[start:]])


def mask_secrets(body: bytes, secrets: list[str]) -> bytes:
    """`body` with every secret of PART_SHOWN characters or more that it contains, whole or
    in part (a run of PART_SHOWN or more of its characters starting with its first or ending
    with its last ones, as a server cutting what it echoes leaves it; or with '/' escaped
    as JSON allows), replaced by '***'; the very object when it contains none. A server
    that echoes a token must not get it into the evidence file. Two substring searches a
    secret when there is nothing to mask: fast on every page."""
    for value in secrets:
        if len(value) < PART_SHOWN:
            continue
        for form in {value, value.replace("/", "\\/")}:
            probes = (form[:PART_SHOWN].encode(), form[-PART_SHOWN:].encode())
            if any(probe in body for probe in probes):
                # latin-1 maps each byte to one character and back: the rest is unchanged
                body = _mask_parts(body.decode("latin-1"), form).encode("latin-1")
    return body
