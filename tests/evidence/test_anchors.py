"""Outside references: the anchor log, the operator's public key and an expected head catch
what the file alone cannot (deleting the newest runs, recomputing the chain after an edit)."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from tasks.bitbucket.exceptions import ConfigError
from tasks.evidence import hashing
from tasks.evidence.anchors import append_anchor, check_anchor_log_writable
from tasks.evidence.integrity import _policies, verify_chain
from tasks.evidence.keys import generate_key_pair, signer_from_env
from tasks.evidence.query import run_query
from tasks.evidence.run_record import RunRecord
from tasks.evidence.signing import sign_run_hash, store_signature
from tasks.evidence.store import EvidenceStore
from tasks.evidence.verification import verify_evidence
from tasks.policy import DEFAULT_POLICY

TABLES = ["run_signatures", "policy_exceptions", "run_policies", "member_run_states",
          "raw_page_bodies", "raw_api_responses", "collection_runs"]  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory, synth) -> SimpleNamespace:
    """Runs 1-2 stored before signing and anchoring existed; runs 3-5 signed and anchored."""
    root = tmp_path_factory.mktemp("anchors")
    operator = generate_key_pair(root / "operator-keys")
    signer = signer_from_env({"BB2SV_SIGNING_KEY": str(operator.private)})
    db, log = root / "evidence.duckdb", root / "reports" / "anchors.jsonl"
    runs = []
    with EvidenceStore.open(db) as store:
        for day in range(1, 6):
            members = synth.synthetic_members(40)
            extract = synth.make_extract("acme", members, day=date(2026, 3, day))
            modern = day >= 3
            record = store.record_run(
                extract, policy=DEFAULT_POLICY, signer=signer if modern else None
            )
            if modern:
                append_anchor(log, record, evidence=db, signer=signer)
            runs.append(record)
    return SimpleNamespace(db=db, log=log, runs=runs, signer=signer, public=str(operator.public))


@pytest.fixture
def world(built, tmp_path, synth) -> SimpleNamespace:
    """`built`, with the evidence file and anchor log copied for a test that changes them."""
    log = tmp_path / "reports" / "anchors.jsonl"
    log.parent.mkdir()
    shutil.copyfile(built.log, log)
    db = synth.copy_file(built.db, tmp_path / "evidence.duckdb")
    return SimpleNamespace(**{**vars(built), "db": db, "log": log, "tmp": tmp_path})


def full_check(world, **options):
    return verify_evidence(
        world.db,
        anchor_log=world.log,
        public_keys=[world.public],
        expect_head=world.runs[-1].run_hash,
        **options,
    )


def forge(world, synth, *edits: str, signer=None) -> None:
    """Edit, then recompute every digest and run_hash from the first run on, with bb2sv's own
    published definitions; re-sign with `signer` (someone else's key) or drop signatures."""
    conn = synth.plain_connect(world.db)
    for edit in edits:
        conn.execute(edit)
    raw = hashing.digests(conn, "raw", "raw_api_responses")
    observations = hashing.digests(conn, "observations", "member_2sv_observations")
    policies = _policies(conn)
    conn.execute("DELETE FROM run_signatures")
    prev, prev_signature = hashing.GENESIS_HASH, None
    rows = conn.execute("SELECT * FROM collection_runs ORDER BY seq").df().to_dict("records")
    for row in rows:
        row = {key: (None if value != value else value) for key, value in row.items()}  # NaN
        record = dataclasses.replace(
            RunRecord.from_row(row, policies[row["run_id"]]["record"]),
            prev_run_hash=prev,
            raw_sha256=raw.get(row["run_id"], hashing.EMPTY_SHA256),
            observations_sha256=observations.get(row["run_id"], hashing.EMPTY_SHA256),
            signing_key_id=None if signer is None else signer.key_id,
            prev_signature=prev_signature,
        )
        record = dataclasses.replace(record, run_hash=record.expected_hash())
        conn.execute(
            "UPDATE collection_runs SET prev_run_hash = ?, raw_sha256 = ?, "
            "observations_sha256 = ?, run_hash = ? WHERE run_id = ?",
            [prev, record.raw_sha256, record.observations_sha256, record.run_hash, record.run_id],
        )
        if signer is not None:
            store_signature(conn, record, signer)
            prev_signature = sign_run_hash(signer, record.run_hash)
        prev = record.run_hash
    conn.close()


def delete_run(world, synth, run_id: str) -> None:
    conn = synth.plain_connect(world.db)
    for table in TABLES:
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
    conn.close()


def test_untouched_evidence_passes_every_check(world):
    result = full_check(world)
    assert result.ok, result.report()
    report = result.report()
    assert "3 of 5 runs signed by a trusted key; runs up to seq 5 are vouched for" in report
    assert "3 of 5 runs anchored; runs up to seq 5 match it" in report
    assert "the newest run" in report


def test_anchor_lines_carry_the_run_and_its_signature(world, built):
    lines = [orjson.loads(line) for line in world.log.read_bytes().splitlines()]
    assert [line["seq"] for line in lines] == [3, 4, 5]
    assert lines[-1]["run_hash"] == world.runs[-1].run_hash
    assert lines[-1]["key_id"] == world.signer.key_id and lines[-1]["signature"]
    assert lines[-1]["evidence_file"] == str(built.db.resolve())


def test_a_consistently_recomputed_chain_passes_alone_but_not_against_references(world, synth):
    target = world.runs[1].run_id  # a legacy run, before anchoring began
    forge(
        world,
        synth,
        "UPDATE member_run_states SET has_2fa_enabled = true, two_step_state = 'enabled' "
        f"WHERE run_id = '{target}' AND two_step_state = 'disabled'",
        # Page bodies are stored once and shared: the forger stores edited copies and
        # points the run's pages at them.
        "CREATE TEMP TABLE forged AS SELECT seq, encode(replace(decode(body), "
        "'\"has_2fa_enabled\":false', '\"has_2fa_enabled\":true')) AS body "
        f"FROM raw_api_pages WHERE run_id = '{target}'",
        f"INSERT INTO raw_page_bodies SELECT DISTINCT sha256(body), '{target}', NULL, body, NULL, "
        "NULL "
        "FROM forged WHERE sha256(body) NOT IN (SELECT sha256 FROM raw_page_bodies)",
        "UPDATE raw_api_responses SET sha256 = (SELECT sha256(f.body) FROM forged AS f "
        f"WHERE f.seq = raw_api_responses.seq) WHERE run_id = '{target}'",
    )
    forged = f"SELECT disabled FROM daily_compliance WHERE run_id = '{target}'"
    assert run_query(world.db, forged)["disabled"].tolist() == [0]  # was 4
    alone = verify_evidence(world.db)
    assert alone.ok, alone.report()  # why outside references exist
    assert "cannot be seen without --anchor-log" in alone.report()
    with_log = verify_evidence(world.db, anchor_log=world.log)
    assert with_log.first_bad_run_id == world.runs[2].run_id
    assert "run_hash differs from the one anchored at anchor log line 1" in with_log.report()
    with_key = verify_evidence(world.db, public_keys=[world.public])
    assert "no run in the file is signed by a --public-key key" in with_key.report()
    with_head = verify_evidence(world.db, expect_head=world.runs[-1].run_hash)
    assert "is the run_hash of no run in the file" in with_head.report()


def test_re_signing_with_another_key_is_named(world, synth):
    intruder = signer_from_env(
        {"BB2SV_SIGNING_KEY": str(generate_key_pair(world.tmp / "intruder").private)}
    )
    edit = f"UPDATE collection_runs SET error = 'x' WHERE run_id = '{world.runs[3].run_id}'"
    forge(world, synth, edit, signer=intruder)
    assert verify_evidence(world.db).ok  # self-consistent against the keys stored in the file
    result = verify_evidence(world.db, public_keys=[world.public])
    assert result.first_bad_run_id == world.runs[0].run_id
    assert "which is none of the --public-key keys" in result.report()


def test_deleting_the_newest_run(world, synth):
    delete_run(world, synth, world.runs[-1].run_id)
    assert verify_chain(world.db).ok  # invisible from inside the file
    result = full_check(world)
    assert result.first_bad_run_id == world.runs[-1].run_id
    report = result.report()
    assert "anchored at seq 5 (anchor log line 3" in report
    assert "missing from the evidence file" in report
    assert "the expected head" in report and "is the run_hash of no run" in report


def test_deleting_a_middle_run_names_it(world, synth):
    delete_run(world, synth, world.runs[3].run_id)
    result = full_check(world)
    assert result.first_bad_run_id == world.runs[3].run_id  # the deleted run itself
    assert "chain broken" in result.report()


def test_runs_appended_without_the_key_or_the_log(world, synth):
    with EvidenceStore.open(world.db) as store:  # someone with the file, not the key
        extract = synth.make_extract("acme", synth.synthetic_members(40), day=date(2026, 3, 9))
        forged = store.record_run(extract, policy=DEFAULT_POLICY)
    assert verify_chain(world.db).ok
    result = verify_evidence(world.db, anchor_log=world.log, public_keys=[world.public])
    assert result.first_bad_run_id == forged.run_id
    report = result.report()
    assert "not signed by a trusted key, though runs from seq 3 on are" in report
    assert "not in the anchor log, though runs from seq 3 on are" in report
    later = verify_evidence(world.db, expect_head=world.runs[-1].run_hash)
    assert later.ok and "but 1 newer run(s) follow it, up to seq 6" in later.report()


def test_an_edited_anchor_line_fails_its_signature(world, synth):
    lines = world.log.read_bytes().splitlines()
    edited = orjson.loads(lines[0])
    edited["run_hash"] = "ab" * 32
    world.log.write_bytes(b"\n".join([orjson.dumps(edited), *lines[1:]]) + b"\n")
    result = verify_evidence(world.db, anchor_log=world.log, public_keys=[world.public])
    assert result.first_bad_run_id == world.runs[2].run_id
    assert "run_hash differs from the one anchored at anchor log line 1" in result.report()


def test_torn_and_foreign_lines(world, synth):
    with world.log.open("ab") as handle:
        handle.write(b'{"schema": "bb2sv.anchor/1", "run_id": "half')  # a crash mid-line
    with EvidenceStore.open(world.db) as store:
        extract = synth.make_extract("acme", synth.synthetic_members(40), day=date(2026, 3, 6))
        record = store.record_run(extract, policy=DEFAULT_POLICY, signer=world.signer)
    append_anchor(world.log, record, evidence=world.db, signer=world.signer)
    result = verify_evidence(world.db, anchor_log=world.log)
    assert result.report().count("anchor log line 4 is not a bb2sv anchor") == 1
    assert [p.what for p in result.problems if p.run_id] == []  # the new run is anchored
    other = world.tmp / "other.jsonl"
    other.write_bytes(world.log.read_bytes().replace(b"acme-", b"zeta-"))
    assert "is it this file's log" in verify_evidence(world.db, anchor_log=other).report()


def test_bad_references_are_configuration_errors(world, tmp_path):
    with pytest.raises(ConfigError, match="No anchor log at"):
        verify_evidence(world.db, anchor_log=tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="--expect-head must be a run_hash"):
        verify_evidence(world.db, expect_head="abc")
    with pytest.raises(ConfigError, match="not a regular file"):
        check_anchor_log_writable(Path(tmp_path))
