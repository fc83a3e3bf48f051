"""The column formatters agree with the one-value formatters, element by element: UTC
whatever the column's zone, naive taken as UTC, missing kept missing."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from tasks.report.formatting import (
    display_utc,
    display_utc_series,
    iso_day,
    iso_utc,
    iso_utc_series,
    utc_day_series,
)

INSTANTS = pd.Series(
    pd.to_datetime(
        [
            "2026-11-20T06:00:00Z",  # whole seconds: no fraction written
            "2026-11-20T23:59:59.000001Z",
            "1999-12-31T23:59:59.5Z",
            None,
            "2026-03-29T01:30:00.250000Z",  # within Berlin's clock change
        ],
        utc=True,
        format="ISO8601",
    ),
    index=[10, 11, 12, 13, 14],
)
COLUMNS = {
    "utc": INSTANTS,
    "berlin": INSTANTS.dt.tz_convert("Europe/Berlin"),
    "naive": INSTANTS.dt.tz_convert(None),
}


@pytest.mark.parametrize("zone", sorted(COLUMNS))
def test_each_value_as_the_one_value_formatters_write_it(zone):
    column = COLUMNS[zone]
    iso = iso_utc_series(column)
    assert list(iso.index) == list(column.index)
    assert [None if pd.isna(text) else text for text in iso] == [iso_utc(v) for v in INSTANTS]
    assert list(display_utc_series(column)) == [display_utc(v) for v in INSTANTS]
    assert list(utc_day_series(column)) == [iso_day(v) or "" for v in INSTANTS]
    assert iso.iloc[0] == "2026-11-20T06:00:00Z" and iso.iloc[2] == "1999-12-31T23:59:59.500000Z"


def test_dates_missing_values_and_no_values():
    days = pd.Series([date(2026, 1, 2), None])
    assert list(utc_day_series(days)) == ["2026-01-02", ""]
    nothing = pd.Series([pd.NaT, None])
    assert list(display_utc_series(nothing)) == ["", ""]
    assert iso_utc_series(nothing).isna().all()
    empty = pd.Series([], dtype="datetime64[us, UTC]")
    assert iso_utc_series(empty).empty and utc_day_series(empty).empty
