"""The writer waits for readers, and what it still cannot store is spooled, not lost."""

from __future__ import annotations

import base64
import errno
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime

import orjson

from emulator import WorkspaceSpec
from emulator.directory import DEFAULT_ORG, directory_users, offline_directory
from tasks.bitbucket import spill
from tasks.bitbucket.auth import BearerToken
from tasks.evidence import spool
from tasks.evidence.file_identity import identifier_of
from tasks.evidence.integrity import verify_chain
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY, parse_policy

READ_FOR = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1], read_only=True)
print("reading", flush=True)
time.sleep(float(sys.argv[2]))
"""

POLICY = "grace_days: 3\nsla_days: 9\n"
TOKEN = "t0ken-of-the-collection"
SEAL = spool.SpoolSeal.for_auth(BearerToken(TOKEN))


def reader(db, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", READ_FOR, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "reading"
    return process


def test_the_writer_waits_for_a_slow_reader(db_path, synth):
    EvidenceStore.open(db_path).close()
    extract = synth.make_extract("acme", synth.synthetic_members(30), day=date(2026, 3, 1))
    slow = reader(db_path, 1.0)  # like `bb2sv verify` over a long history
    result = spool.store_or_spool(db_path, extract, DEFAULT_POLICY, None, wait_s=30, seal=SEAL)
    slow.wait(10)
    assert result.record is not None and result.spooled is None
    assert not spool.spool_dir(db_path).exists()


def test_an_attempt_that_cannot_be_stored_waits_in_the_spool_intact(db_path, synth):
    EvidenceStore.open(db_path).close()
    members = synth.synthetic_members(30)
    first = synth.make_extract("acme", members, day=date(2026, 3, 1))
    second = synth.make_extract("acme", members, day=date(2026, 3, 2))
    policy = parse_policy(POLICY, "policy.yaml")
    users = directory_users(
        [WorkspaceSpec("acme", members=5, seed=1)], date(2026, 3, 2), DEFAULT_ORG
    )
    directory = offline_directory(users, at=datetime(2026, 3, 2, 6, tzinfo=UTC))
    held = reader(db_path, 30)
    try:
        results = [
            spool.store_or_spool(db_path, attempt, policy, "run-1", read, wait_s=0.3, seal=SEAL)
            for attempt, read in ((first, None), (second, directory))
        ]
    finally:
        held.kill()
        held.wait()
    assert all(result.record is None for result in results)
    assert f"(PID {held.pid})" in results[0].reason and "next collection" in results[0].reason
    assert [path.name for path in spool.spooled_runs(db_path)] == sorted(
        result.spooled.name for result in results
    )

    replayed = spool.replay(db_path, wait_s=5, seal=SEAL)
    assert [record.started_at.date() for record in replayed] == [date(2026, 3, 1), date(2026, 3, 2)]
    assert spool.spooled_runs(db_path) == []
    with EvidenceStore.open(db_path) as store:
        expected = store.record_run(
            second, policy=policy, directory=directory, prefect_flow_run_id="run-1"
        )
    # A spooled attempt is stored exactly as it would have been: same pages (the directory's
    # included), same policy, same observations.
    fields = ("raw_sha256", "policy_sha256", "observations_sha256", "identity_sha256",
              "member_count", "directory_status", "directory_source")  # fmt: skip
    assert [getattr(replayed[1], f) for f in fields] == [getattr(expected, f) for f in fields]
    assert replayed[1].directory_status == "complete" and replayed[0].directory_status is None
    assert replayed[1].prefect_flow_run_id == "run-1"
    assert verify_chain(db_path).ok


def two_spooled_days(db_path, synth) -> list:
    """A new evidence file, and two days of `acme` in its spool, sealed: their paths."""
    EvidenceStore.open(db_path).close()
    members = synth.synthetic_members(5)
    days = [synth.make_extract("acme", members, day=date(2026, 3, d)) for d in (1, 2)]
    return [
        spool.write_spool(db_path, spool.Spooled(day, DEFAULT_POLICY, None), seal=SEAL)
        for day in days
    ]


def sealed(body: dict, db_path) -> bytes:
    """A spool file of `body`, sealed as this collection seals its own for `db_path`."""
    raw = orjson.dumps(body)
    evidence = identifier_of(db_path)
    header = {"format": spool.SPOOL_FORMAT, "evidence": evidence, "seal": SEAL.of(raw, evidence)}
    return orjson.dumps(header) + b"\n" + raw


def unsealed(path) -> bytes:
    """The attempt in a spool file `path` as bb2sv before 0.4 wrote it: one JSON object,
    no seal."""
    _header, _, body = path.read_bytes().partition(b"\n")
    return orjson.dumps({"format": "bb2sv.spooled-run/1", **orjson.loads(body)})


def test_an_unreadable_spooled_attempt_is_set_aside_and_the_rest_are_stored(db_path, synth, caplog):
    """A damaged spool file (or a folder, or a FIFO, named like one) used to stop the replay
    at itself every time (or hang it), keeping every attempt after it out of the file."""
    EvidenceStore.open(db_path).close()
    attempt = synth.make_extract("acme", synth.synthetic_members(5), day=date(2026, 3, 1))
    policy = parse_policy(POLICY, "policy.yaml")
    good = spool.write_spool(db_path, spool.Spooled(attempt, policy, None), seal=SEAL)
    folder = spool.spool_dir(db_path)
    (folder / "0-damaged.json").write_bytes(good.read_bytes()[:-40])  # cut short
    (folder / "1-missing-key.json").write_bytes(sealed({"policy": {}}, db_path))
    (folder / "2-a-folder.json").mkdir()
    os.mkfifo(folder / "3-a-fifo.json")  # reading it would wait for a writer forever
    # A body edited in a file from before 0.4 (no seal), stored on the operator's word:
    # the store would refuse it on every replay, before the rest.
    altered = orjson.loads(unsealed(good))
    altered["extract"]["pages"][0]["body"] = base64.b64encode(b'{"values": []}').decode()
    (folder / "4-altered.json").write_bytes(orjson.dumps(altered))

    replayed = spool.replay(db_path, wait_s=5, seal=SEAL, trust=True)
    assert [record.started_at.date() for record in replayed] == [date(2026, 3, 1)]
    assert spool.spooled_runs(db_path) == [] and not good.exists()
    assert sorted(path.name for path in folder.iterdir()) == [
        "0-damaged.unreadable", "1-missing-key.unreadable", "2-a-folder.unreadable",
        "3-a-fifo.unreadable", "4-altered.unreadable",
    ]  # fmt: skip
    assert "spooled attempt 1-missing-key.json cannot be read (no 'extract' in it)" in caplog.text
    assert "4-altered.json cannot be read (the body of its members page" in caplog.text
    assert "2-a-folder.json cannot be read" in caplog.text and ".storing" not in caplog.text
    assert "3-a-fifo.json cannot be read (it is not a regular file)" in caplog.text
    assert [p.name for p in spool.set_aside(db_path)] == sorted(p.name for p in folder.iterdir())


def test_only_attempts_sealed_with_the_collections_credentials_are_stored(db_path, synth, caplog):
    """Whoever can write the spool folder but lacks the credentials cannot have a made-up
    attempt stored (signed, anchored) as evidence: an edited one, one sealed with other
    credentials, one from before 0.4 (no seal) are set aside, never deleted, and stored only
    on BB2SV_SPOOL_TRUST=1."""
    EvidenceStore.open(db_path).close()
    members = synth.synthetic_members(5)
    days = [synth.make_extract("acme", members, day=date(2026, 3, day)) for day in (1, 2, 3, 4)]
    honest = spool.write_spool(db_path, spool.Spooled(days[0], DEFAULT_POLICY, None), seal=SEAL)
    assert TOKEN.encode() not in honest.read_bytes() and TOKEN not in repr(SEAL)
    other = spool.SpoolSeal.for_auth(BearerToken("someone-elses-token"))
    spool.write_spool(db_path, spool.Spooled(days[1], DEFAULT_POLICY, None), seal=other)
    edited = spool.write_spool(db_path, spool.Spooled(days[2], DEFAULT_POLICY, None), seal=SEAL)
    header, _, body = edited.read_bytes().partition(b"\n")
    document = orjson.loads(body)
    document["policy"]["text"] = "grace_days: 3650\n"  # a lenient policy slipped in
    edited.write_bytes(header + b"\n" + orjson.dumps(document))
    legacy = spool.write_spool(db_path, spool.Spooled(days[3], DEFAULT_POLICY, None), seal=SEAL)
    legacy.write_bytes(unsealed(legacy))

    replayed = spool.replay(db_path, wait_s=5, seal=SEAL)
    assert [record.started_at.date() for record in replayed] == [date(2026, 3, 1)]
    folder = spool.spool_dir(db_path)
    assert sorted(path.suffix for path in folder.iterdir()) == [".unverified"] * 3
    assert "its seal does not match this collection's Bitbucket credentials" in caplog.text
    assert "spooled by a bb2sv before 0.4, which did not seal" in caplog.text

    for path in folder.iterdir():  # the operator vouches for them
        path.rename(path.with_suffix(".json"))
    trusted = spool.replay(db_path, wait_s=5, seal=SEAL, trust=True)
    assert [r.started_at.date() for r in trusted] == [date(2026, 3, d) for d in (2, 3, 4)]
    assert "BB2SV_SPOOL_TRUST=1" in caplog.text
    assert verify_chain(db_path).ok


def test_a_spooled_attempt_already_stored_is_set_aside(db_path, synth):
    """A copy of a stored attempt put back in the spool (or spooled twice) is not a second
    run: it is set aside as a duplicate."""
    EvidenceStore.open(db_path).close()
    attempt = synth.make_extract("acme", synth.synthetic_members(5), day=date(2026, 3, 1))
    path = spool.write_spool(db_path, spool.Spooled(attempt, DEFAULT_POLICY, None), seal=SEAL)
    copy = path.read_bytes()
    (stored,) = spool.replay(db_path, wait_s=5, seal=SEAL)
    path.write_bytes(copy)
    assert spool.replay(db_path, wait_s=5, seal=SEAL) == []
    assert path.with_suffix(".duplicate").exists() and not path.exists()
    with EvidenceStore.open(db_path, read_only=True) as store:
        assert store.conn.execute("SELECT count(*) FROM collection_runs").fetchone() == (1,)


def test_a_claim_that_cannot_be_made_does_not_stop_the_replay(db_path, synth, caplog):
    """A folder in the way of a file's claim (`<name>.storing`) made every collection fail
    before it read anything."""
    first, _second = two_spooled_days(db_path, synth)
    first.with_suffix(".storing").mkdir()
    replayed = spool.replay(db_path, wait_s=5, seal=SEAL)
    assert [record.started_at.date() for record in replayed] == [date(2026, 3, 2)]
    assert first.exists() and f"spooled attempt {first.name} cannot be claimed" in caplog.text


def test_a_spooled_attempt_is_stored_as_the_bb2sv_that_collected_it(db_path, synth):
    """An attempt spooled by 0.1 (its file names no version) and replayed by a later bb2sv
    is stored as 0.1's, by 0.1's rules; one that names its version keeps it."""
    EvidenceStore.open(db_path).close()
    members = synth.synthetic_members(5)
    days = [synth.make_extract("acme", members, day=date(2026, 3, day)) for day in (1, 2)]
    old = spool.write_spool(db_path, spool.Spooled(days[0], DEFAULT_POLICY, None), seal=SEAL)
    document = orjson.loads(unsealed(old))
    del document["tool_version"]  # as 0.1 wrote it
    old.write_bytes(orjson.dumps(document))
    spool.write_spool(
        db_path, spool.Spooled(days[1], DEFAULT_POLICY, None, tool_version="0.3.1"), seal=SEAL
    )

    replayed = spool.replay(db_path, wait_s=5, seal=SEAL, trust=True)  # 0.1 did not seal it
    assert [record.tool_version for record in replayed] == ["0.1.0", "0.3.1"]
    assert verify_chain(db_path).ok


def test_a_genuine_attempt_spooled_for_another_evidence_file_is_not_stored(
    db_path, synth, tmp_path
):
    """A collection of a staging file with the same token (and a lenient policy) seals
    genuine attempts too: copied into this file's spool, one would have replaced this
    file's run of that day. The seal covers the evidence file's identifier."""
    EvidenceStore.open(db_path).close()
    staging = tmp_path / "staging.duckdb"
    EvidenceStore.open(staging).close()
    attempt = synth.make_extract("acme", synth.synthetic_members(5), day=date(2026, 3, 1))
    lenient = parse_policy("grace_days: 3650\n", "policy.yaml")
    theirs = spool.write_spool(staging, spool.Spooled(attempt, lenient, None), seal=SEAL)
    copied = spool.spool_dir(db_path) / theirs.name
    copied.parent.mkdir()
    copied.write_bytes(theirs.read_bytes())
    assert spool.replay(db_path, wait_s=5, seal=SEAL) == []
    assert copied.with_suffix(".unverified").exists()
    assert spool.replay(staging, wait_s=5, seal=SEAL) != [], "its own file stores it"


def test_nothing_in_the_spool_folder_stops_the_replay_or_leaves_a_run_unanchored(
    db_path, synth, caplog
):
    """A folder where a set-aside file would go made the replay raise after it had stored
    a genuine attempt, which was then never anchored, and every collection fail."""
    first, second = two_spooled_days(db_path, synth)
    folder = spool.spool_dir(db_path)
    (folder / "20260301T120000000000Z-forged.json").write_bytes(b'{"format": "nope"}')
    (folder / "20260301T120000000000Z-forged.unreadable").mkdir()  # in the way
    anchored = []
    replayed = spool.replay(db_path, wait_s=5, seal=SEAL, on_stored=anchored.append)
    assert [r.started_at.date() for r in replayed] == [date(2026, 3, 1), date(2026, 3, 2)]
    assert anchored == replayed, "each stored run is handed on as soon as it is committed"
    assert (folder / "20260301T120000000000Z-forged.storing").exists()
    assert "could not be moved to 20260301T120000000000Z-forged.unreadable" in caplog.text
    assert not first.exists() and not second.exists()
    claim = "20260301T120000000000Z-forged.storing"
    assert claim not in {p.name for p in spool.set_aside(db_path)}, "a live claim is not news"
    later = time.time() + spool.STALE_AFTER_S + 1
    notes = {p.name: spool.aside_note(p) for p in spool.set_aside(db_path, now=later)}
    assert notes[claim].startswith("a replay claimed it and did not finish")


def test_what_is_listed_for_a_person_to_look_at(db_path):
    """Files set aside, and claims or spool writes left by a process that died; not a live
    claim of a collection running now, nor files that are not bb2sv's (.DS_Store)."""
    folder = spool.spool_dir(db_path)
    folder.mkdir()
    names = ["a.unverified", "b.duplicate", "c.unreadable", "d.storing", "e.partial",
             ".DS_Store", "f.json"]  # fmt: skip
    for name in names:
        (folder / name).write_bytes(b"x")
    assert [p.name for p in spool.set_aside(db_path)] == names[:3]
    later = time.time() + spool.STALE_AFTER_S + 1
    assert [p.name for p in spool.set_aside(db_path, now=later)] == names[:5]
    assert spool.aside_note(folder / "e.partial").startswith("a spool write did not finish")
    # A claim is a rename, which keeps the spooled file's mtime: its age counts from the claim.
    os.utime(folder / "f.json", (time.time() - 86400, time.time() - 86400))
    (folder / "f.json").rename(folder / "f.storing")
    assert "f.storing" not in {p.name for p in spool.set_aside(db_path)}


def test_a_spool_folder_that_cannot_be_read_is_for_a_person(db_path, monkeypatch):
    folder = spool.spool_dir(db_path)
    folder.mkdir()

    def refused(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(folder), "iterdir", refused)
    assert spool.set_aside(db_path) == [folder]
    assert spool.aside_note(folder).startswith("the spool folder cannot be read")
    assert spool.aside_note(folder / "b.duplicate").endswith("Its run is stored: delete it.")


def test_the_evidence_identifier_is_read_from_the_header_alone(tmp_path, monkeypatch):
    """It needs no temporary folder (a full disk is a reason to spool): one file gives the
    same identifier to every process, and two evidence files differ."""
    from tasks.evidence import file_identity

    first, second = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    EvidenceStore.open(first).close()
    EvidenceStore.open(second).close()
    monkeypatch.setattr(file_identity, "_layout_as_expected", lambda: False)
    ids = [file_identity.identifier_of(path) for path in (first, second)]
    assert len(ids[0]) == 32 and ids[0] != ids[1]
    assert ids[0] == first.read_bytes()[124:140].hex()
    assert file_identity.identifier_of(tmp_path / "none.duckdb") == ""


def test_what_the_spool_left_undone_makes_the_collection_not_whole(tmp_path):
    from flows.collection import spool_summary

    db = str(tmp_path / "e.duckdb")
    folder = spool.spool_dir(db)
    assert spool_summary(db, [], [], []) is None
    said = spool_summary(db, [folder / "a.json"], [folder / "b.unverified"], ["not anchored"])
    assert said == (
        f"1 spooled attempt(s) still wait in {folder}; 1 file(s) in {folder} were not stored; "
        "1 spooled run(s) were stored but not anchored (see the errors above): the evidence "
        "may be missing attempts."
    )


def test_pages_no_longer_as_they_arrived_are_on_record_as_a_failed_read(db_path, synth, tmp_path):
    members = synth.synthetic_members(250)
    EvidenceStore.open(db_path).close()
    day1 = synth.make_extract("acme", members, day=date(2026, 3, 1))
    assert spool.store_or_spool(db_path, day1, DEFAULT_POLICY, None, seal=SEAL).record
    # The next day's read brings the same bodies: the file holds them already, so the store
    # would not read them to store them, but it derives the observations from them.
    day2 = synth.make_extract("acme", members, day=date(2026, 3, 2))
    pages, fd = synth.on_disk(day2.pages, tmp_path)
    body = pages[0].body
    flipped = body.replace(b'"has_2fa_enabled":false', b'"has_2fa_enabled":true ')
    assert flipped != body and len(flipped) == len(body)
    os.pwrite(fd, flipped, pages[0]._held.offset)
    attempt = replace(day2, pages=pages, derived=None)
    result = spool.store_or_spool(db_path, attempt, DEFAULT_POLICY, None, seal=SEAL)
    assert result.record is not None and result.record.status == "failed"
    assert result.record.member_count == 0
    assert "workspace 'acme': the pages read could not be kept" in result.reason
    assert "not the body that arrived" in result.reason  # the collection says so: not whole
    assert result.kept.extract.pages == [] and result.kept.extract.error_kind == "crash"
    with EvidenceStore.open(db_path, read_only=True) as store:
        (error, pages_kept) = store.conn.execute(
            "SELECT error, (SELECT count(*) FROM raw_api_responses AS r WHERE r.run_id = c.run_id)"
            " FROM collection_runs AS c WHERE seq = 2"
        ).fetchone()
    assert "the pages read could not be kept" in error and pages_kept == 0
    assert verify_chain(db_path, workers=0).ok


def test_a_directory_read_cut_on_disk_fails_alone_and_a_spooled_attempt_keeps_no_lost_page(
    db_path, synth, tmp_path
):
    EvidenceStore.open(db_path).close()
    attempt = synth.make_extract("acme", synth.synthetic_members(30), day=date(2026, 3, 2))
    users = directory_users(
        [WorkspaceSpec("acme", members=5, seed=1)], date(2026, 3, 2), DEFAULT_ORG
    )
    directory = offline_directory(users, at=datetime(2026, 3, 2, 6, tzinfo=UTC))
    pages, fd = synth.on_disk(directory.pages, tmp_path)
    os.ftruncate(fd, 10)
    directory = replace(directory, pages=pages)
    held = reader(db_path, 30)  # the file cannot take it: spooled, without the lost pages
    try:
        result = spool.store_or_spool(
            db_path, attempt, DEFAULT_POLICY, None, directory, wait_s=0.3, seal=SEAL
        )
    finally:
        held.kill()
        held.wait()
    assert result.record is None and result.spooled is not None
    assert "as a failed read (the directory of organization" in result.reason
    assert "was cut" in result.reason and result.kept.directory.status == "failed"
    assert result.kept.extract.status == "complete"  # the workspace's own read is kept
    (stored,) = spool.replay(db_path, wait_s=5, seal=SEAL)
    assert stored.status == "complete" and stored.member_count == 30  # the workspace's read
    assert stored.directory_status == "failed" and "was cut" in stored.directory_error


def test_a_read_that_failed_for_its_own_reason_keeps_it_when_its_pages_are_lost(
    db_path, synth, tmp_path
):
    EvidenceStore.open(db_path).close()
    refused = replace(
        synth.make_extract("acme", synth.synthetic_members(30), day=date(2026, 3, 2)),
        status="failed",
        error="HTTP 401 on page 1 of members",
        error_kind="auth",
    )
    pages, fd = synth.on_disk(refused.pages, tmp_path)
    os.ftruncate(fd, 0)
    result = spool.store_or_spool(
        db_path, replace(refused, pages=pages, derived=None), DEFAULT_POLICY, None, seal=SEAL
    )
    assert (result.record.status, result.record.error_kind) == ("failed", "auth")
    assert result.record.error.startswith("HTTP 401 on page 1 of members; the pages read")


class _OneReadFails:
    """`os` for the page bodies' temporary file whose first read fails, as a disk may once."""

    def __init__(self) -> None:
        self.failed = False

    def __getattr__(self, name: str):
        return getattr(os, name)

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        if not self.failed:
            self.failed = True
            raise OSError(errno.EIO, "Input/output error")
        return os.pread(fd, length, offset)


def test_a_read_that_fails_once_loses_no_page_and_the_attempt_waits_whole(
    db_path, synth, tmp_path, monkeypatch
):
    EvidenceStore.open(db_path).close()
    attempt = synth.make_extract("acme", synth.synthetic_members(250), day=date(2026, 3, 2))
    pages, _fd = synth.on_disk(attempt.pages, tmp_path)
    monkeypatch.setattr(spill, "os", _OneReadFails())
    result = spool.store_or_spool(
        db_path, replace(attempt, pages=pages, derived=None), DEFAULT_POLICY, None, seal=SEAL
    )
    # Read back again, every page is as it arrived: nothing was lost, nothing is dropped.
    assert result.record is None and result.kept is None
    assert "could not be read" in result.reason and "as a failed read" not in result.reason
    (stored,) = spool.replay(db_path, wait_s=5, seal=SEAL)
    assert (stored.status, stored.member_count) == ("complete", 250)
