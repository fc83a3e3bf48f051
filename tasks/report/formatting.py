"""Deterministic text for dates, times and numbers (same value → same bytes, every rebuild).

iso_utc(datetime(2026, 11, 27, 6, tzinfo=UTC))   # '2026-11-27T06:00:00Z'
display_utc(...)                                 # '2026-11-27 06:00:00'
pct(97.25)                                       # '97.2%'
"""

from __future__ import annotations

import math
from datetime import date, datetime

import pandas as pd

from tasks.canonical import as_utc

NOT_APPLICABLE = "n/a"
UNSIGNED = "unsigned"


def iso_utc(moment: datetime | pd.Timestamp | None) -> str | None:
    if moment is None or pd.isna(moment):
        return None
    return pd.Timestamp(as_utc(moment)).isoformat().replace("+00:00", "Z")


def display_utc(moment: datetime | pd.Timestamp | None) -> str:
    if moment is None or pd.isna(moment):
        return ""
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S")


def iso_day(day: date | pd.Timestamp | None) -> str | None:
    if day is None or pd.isna(day):
        return None
    return pd.Timestamp(day).date().isoformat()


def pct(value: float | None) -> str:
    """A percentage rounded DOWN to 0.1, so 99.96% never shows as 100.0%."""
    if value is None or pd.isna(value):
        return NOT_APPLICABLE
    return f"{math.floor(float(value) * 10 + 1e-9) / 10:.1f}%"


def text(value: object) -> str:
    """Display text for a possibly-missing value."""
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


def fingerprint(key_id: str | None) -> str:
    """How reports name the key that signed a run: its key id, the SHA-256 (hex) of the raw
    Ed25519 public key, as `bb2sv keygen` prints it; "unsigned" when no key signed it."""
    return key_id or UNSIGNED


def fingerprints_text(keys: list[dict]) -> str:
    """One line for the signing keys of several runs (`[{"fingerprint", "runs"}]`)."""
    if len(keys) <= 1:
        return keys[0]["fingerprint"] if keys else UNSIGNED
    return ", ".join(f"{key['fingerprint']} ({key['runs']} runs)" for key in keys)


def utc_day_series(series: pd.Series) -> pd.Series:
    """'YYYY-MM-DD' for each timestamp or date of a column ('' where missing)."""
    stamps = pd.to_datetime(series, utc=True)
    return stamps.dt.strftime("%Y-%m-%d").fillna("")


def display_utc_series(series: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(series, utc=True)
    return stamps.dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")


def iso_utc_series(series: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(series, utc=True)
    return stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").str.replace(".000000Z", "Z", regex=False)
