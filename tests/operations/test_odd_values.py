"""Odd values an operator may set are refused before anything is read, saying what they take."""

from __future__ import annotations

import re

import pytest

from tasks.bitbucket.exceptions import ConfigError
from tasks.evidence.spool import WRITER_WAIT_S, writer_wait
from tasks.preflight import check_reports_dir


@pytest.mark.parametrize("value", ["abc", "-1", "inf", "nan", "1e9"])
def test_a_writer_wait_out_of_range_is_refused(monkeypatch, value):
    """It used to be a warning (and 300 s) for text, 0 s for a negative number, and a wait
    without a ceiling for `inf`."""
    monkeypatch.setenv("BB2SV_WRITER_WAIT", value)
    with pytest.raises(ConfigError, match=re.escape(f"from 0 to 604800, got {value!r}")):
        writer_wait()


def test_a_writer_wait_in_range_or_unset(monkeypatch):
    monkeypatch.setenv("BB2SV_WRITER_WAIT", " 2.5 ")
    assert writer_wait() == 2.5
    monkeypatch.setenv("BB2SV_WRITER_WAIT", "")
    assert writer_wait() == WRITER_WAIT_S


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_reports_dir_is_refused(value):
    """`--reports-dir ''` wrote the reports and the anchor log into the current folder."""
    with pytest.raises(ConfigError, match="The reports directory is empty"):
        check_reports_dir(value)
