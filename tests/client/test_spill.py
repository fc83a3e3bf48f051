"""Page bodies wait on disk, not in memory, between their arrival and the store (spill.py)."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile

import orjson
import pytest

from tasks import page_encoding
from tasks.bitbucket import spill
from tasks.bitbucket.models import RawPage
from tasks.canonical import sha256_hex


def test_bodies_are_kept_in_a_temporary_file_without_a_name(make_settings, collect, emu):
    extract = collect(make_settings(), "acme")
    assert extract.status == "complete", extract.error
    assert extract.pages and all(page.body_on_disk for page in extract.pages)
    for page in extract.pages:  # read back as they arrived, each under the hash taken then
        assert sha256_hex(page.body) == page.sha256
        assert isinstance(orjson.loads(page.body)["values"], list)
    files = {page._held.spill for page in extract.pages}
    assert len(files) == 2  # one file per listing's client
    for held in files:
        where = os.readlink(f"/proc/self/fd/{held._file.fileno()}")
        assert where.endswith("(deleted)"), where  # nothing to leave behind, nothing to open
    assert len(extract.derived) == len(extract.pages)  # normalised as they came, in memory


def test_bodies_wait_compressed_as_the_store_keeps_them(make_settings, collect):
    extract = collect(make_settings(), "acme")
    spilled = sum(page._held.length for page in extract.pages)
    assert spilled * 4 < sum(len(page.body) for page in extract.pages)  # JSON: ~9 times less
    for page in extract.pages:
        stored = page.compressed_body()
        assert page_encoding.decompress(stored) == page.body
        in_memory = RawPage(page.listing, page.url, 200, page.fetched_at, page.body)
        assert in_memory.compressed_body() == stored  # the same bytes, wherever it waited
    held = extract.pages[0]._held
    os.pwrite(held.spill._file.fileno(), b"\0", held.offset + held.length - 1)
    with pytest.raises(spill.SpillLost, match="not the body that arrived"):
        extract.pages[0].compressed_body()  # checked against the hash of what was written


def test_a_body_far_more_compressible_than_a_page_comes_back_whole(tmp_path):
    body = b"[" + b" " * 2_000_000 + b"]"  # within the client's bound, ~2,000 times smaller
    held = spill.BodySpill(str(tmp_path)).keep(body, sha256_hex(body))
    assert isinstance(held, spill.SpilledBody) and held.length * 100 < len(body)
    assert held.read() == body


def test_a_tmpdir_that_cannot_take_the_file_is_not_replaced_and_bodies_stay_in_memory(
    make_settings, collect, monkeypatch, tmp_path, caplog
):
    # tempfile itself would quietly fall back to /tmp, another disk than the one chosen.
    monkeypatch.setenv("TMPDIR", str(tmp_path / "not-there"))
    monkeypatch.setattr(tempfile, "tempdir", None)  # as a process started with that TMPDIR
    with caplog.at_level(logging.WARNING, logger="bb2sv.client"):
        extract = collect(make_settings(), "acme")
    assert extract.status == "complete", extract.error
    assert extract.pages and not any(page.body_on_disk for page in extract.pages)
    assert all(sha256_hex(page.body) == page.sha256 for page in extract.pages)
    warnings = [r.getMessage() for r in caplog.records if "kept in memory" in r.getMessage()]
    assert len(warnings) == 1  # once, not once per listing or page
    assert "not-there" in warnings[0] and "does not exist" in warnings[0]
    assert "Set TMPDIR" in warnings[0]


def test_a_page_pickles_with_its_bytes_and_is_checked_again(make_settings, collect):
    page = collect(make_settings(), "acme").pages[0]
    again = pickle.loads(pickle.dumps(page))  # noqa: S301 - its own bytes
    assert again == page and again.body == page.body
    assert not again.body_on_disk
    assert not again.sha256_of_body  # its hash came with it: the store checks it


def test_a_page_cannot_be_changed_or_emptied(make_settings, collect):
    page = collect(make_settings(), "acme").pages[0]
    for name in ("sha256", "_held", "status_code"):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(page, name, None)
        with pytest.raises(AttributeError, match="immutable"):
            delattr(page, name)
    assert sha256_hex(page.body) == page.sha256


class _CountingReads:
    """`os` for the temporary file, counting the reads back."""

    def __init__(self) -> None:
        self.reads = 0

    def __getattr__(self, name: str):
        return getattr(os, name)

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        self.reads += 1
        return os.pread(fd, length, offset)


def test_extraction_checks_and_normalises_the_bytes_in_hand(make_settings, collect, monkeypatch):
    counting = _CountingReads()
    monkeypatch.setattr(spill, "os", counting)
    extract = collect(make_settings(), "acme")
    assert extract.status == "complete" and len(extract.derived) == len(extract.pages)
    assert counting.reads == 0  # nothing read back while reading: the store reads them
    assert all(sha256_hex(page.body) == page.sha256 for page in extract.pages)
    assert counting.reads == len(extract.pages)
