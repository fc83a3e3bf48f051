"""The two canonical forms every layer shares: UTC instants and SHA-256 digests.

as_utc(datetime(2026, 11, 27, 2, 0))           # naive is taken as UTC
utc_iso(moment)                                 # '2026-11-27T02:00:00.000000Z'
sha256_hex(b"body"), sha256_hex("policy text")  # text is hashed as UTF-8
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

__all__ = ["as_utc", "sha256_hex", "utc_iso"]


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
