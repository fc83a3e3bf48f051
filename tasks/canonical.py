"""The canonical forms every layer shares: UTC instants, SHA-256 digests, and untrusted text
as a terminal or log may show it.

as_utc(datetime(2026, 11, 27, 2, 0))           # naive is taken as UTC
utc_iso(moment)                                 # '2026-11-27T02:00:00.000000Z'
sha256_hex(b"body"), sha256_hex("policy text")  # text is hashed as UTF-8
visible_controls("a\x1b]0;x\x07")               # 'a\\x1b]0;x\\x07'
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

__all__ = ["as_utc", "sha256_hex", "utc_iso", "visible_controls"]

# C0 controls, DEL and C1 controls. A terminal acts on them: ESC opens CSI and OSC sequences
# (colours, cursor moves, the window title), U+009B is CSI in one character, BEL ends an OSC.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def as_utc(moment: datetime) -> datetime:
    """The same instant as an aware UTC datetime; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_iso(moment: datetime) -> str:
    """Canonical text of a timestamp: UTC, microseconds, `Z`."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_hex(data: bytes | str) -> str:
    """Lower-case hex SHA-256 of bytes, or of text encoded as UTF-8."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def visible_controls(value: object, *, keep: str = "") -> str:
    """`value` as text in which every control character (C0, DEL, C1), except those in
    `keep`, is written as a visible escape (ESC as `\\x1b`), so a terminal shows it instead
    of acting on it."""
    return _CONTROL.sub(
        lambda found: found[0] if found[0] in keep else f"\\x{ord(found[0]):02x}", str(value)
    )
