"""Whole page bodies are stored compressed (tasks/page_encoding.py), and come back whole."""

from __future__ import annotations

import zlib

import pytest

from tasks import page_encoding
from tasks.bitbucket import client

BODY = (
    b'{"values":[' + b",".join(b'{"n":%d,"has_2fa_enabled":true}' % n for n in range(500)) + b"]}"
)


def test_a_body_comes_back_byte_for_byte_and_smaller():
    stored = page_encoding.compress(BODY)
    assert len(stored) * 4 < len(BODY)
    assert page_encoding.decompress(stored) == BODY
    assert page_encoding.decompress(page_encoding.compress(b"")) == b""


@pytest.mark.parametrize(
    ("stored", "said"),
    [
        (b"not zlib at all", "not zlib data"),
        (page_encoding.compress(BODY)[:-4], "cut short"),
        (page_encoding.compress(BODY) + b"more", "followed by other bytes"),
        (b"", "cut short"),
    ],
    ids=["not zlib", "cut short", "trailing bytes", "empty"],
)
def test_what_is_not_one_whole_stream_is_refused(stored, said):
    with pytest.raises(ValueError, match=said):
        page_encoding.decompress(stored)


def test_a_blob_far_more_compressible_than_a_page_is_not_expanded_unless_asked():
    spaces = b" " * 300_000  # what a hostile API may send: ~1,000 times smaller compressed
    stored = page_encoding.compress(spaces)
    assert not page_encoding.expands_back(stored, len(spaces))  # the store keeps it as is
    with pytest.raises(ValueError, match="expands beyond"):
        page_encoding.decompress(stored)
    assert page_encoding.decompress(stored, limit=len(spaces)) == spaces  # the spill's read
    assert page_encoding.expands_back(page_encoding.compress(BODY), len(BODY))
    large = bytes(range(256)) * (page_encoding.MAX_EXPANDED_BYTES // 256 + 1)
    assert not page_encoding.expands_back(page_encoding.compress(large), len(large))


def test_the_bound_is_the_largest_body_the_client_keeps():
    assert page_encoding.MAX_EXPANDED_BYTES == client.MAX_BODY_BYTES


def test_a_small_blob_that_would_expand_without_end_stops_at_the_bound():
    bomb = zlib.compress(b"\0" * (page_encoding.MAX_EXPANDED_BYTES + 1), 9)
    assert len(bomb) < 100_000
    with pytest.raises(ValueError, match="expands beyond"):
        page_encoding.decompress(bomb)
    exact = zlib.compress(b"\0" * 1000)
    assert page_encoding.decompress(exact, limit=1000) == b"\0" * 1000
    with pytest.raises(ValueError, match="expands beyond 999"):
        page_encoding.decompress(exact, limit=999)
