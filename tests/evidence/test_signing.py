"""Signing keys and signed runs: keys stay secret, old hashes stay valid, edits show."""

from __future__ import annotations

import copy
import logging
import os
import pickle
import stat
from datetime import UTC, date, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tasks.bitbucket.exceptions import ConfigError
from tasks.evidence.connection import connect
from tasks.evidence.integrity import verify_chain
from tasks.evidence.keys import (
    RunSigner,
    generate_key_pair,
    key_id_of,
    load_public_keys,
    signer_from_env,
)
from tasks.evidence.run_record import RunRecord
from tasks.evidence.schema import migrate, migrations
from tasks.evidence.signing import signature_valid
from tasks.evidence.store import EvidenceStore
from tasks.evidence.verification import verify_evidence
from tasks.policy import DEFAULT_POLICY

# run_hash of RECORD as bb2sv 0.1.0 computed it, before runs could be signed.
HASH_BEFORE_SIGNING = "a2109ca2bb8fbca4a2c64df8e2ab1cea0d7e7abe241eff8f681bd7ae96cc4fc7"
RECORD = dict(
    run_id="20260301T020000Z-acme-0badc0de", seq=3, workspace="acme",
    source="https://api.bitbucket.org/2.0", started_at=datetime(2026, 3, 1, 2, 0, tzinfo=UTC),
    finished_at=datetime(2026, 3, 1, 2, 0, 30, tzinfo=UTC), status="complete", member_count=151,
    request_count=4, tool_version="0.1.0", prefect_flow_run_id=None, error=None, error_kind=None,
    emulated=False,
    policy_sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    policy={"grace_days": 7, "sla_days": 14, "severity_owner": "critical",
            "severity_member": "high", "severity_unknown": "medium", "exceptions": []},
    prev_run_hash="1" * 64, raw_sha256="2" * 64, observations_sha256="3" * 64,
)  # fmt: skip


# The schema version just before run_signatures (its number may change when branches merge).
BEFORE_SIGNATURES = next(m.version for m in migrations() if m.name == "run_signatures") - 1


@pytest.fixture
def pair(tmp_path):
    return generate_key_pair(tmp_path / "keys")


@pytest.fixture
def signer(pair) -> RunSigner:
    return signer_from_env({"BB2SV_SIGNING_KEY": str(pair.private)})


def record_days(store, synth, days, **options):
    return [
        store.record_run(
            synth.make_extract("acme", synth.synthetic_members(30), day=date(2026, 3, day)),
            policy=DEFAULT_POLICY,
            **options,
        )
        for day in days
    ]


def test_unsigned_run_hash_is_what_it_was_before_signing_existed():
    assert RunRecord.sealed(**RECORD).run_hash == HASH_BEFORE_SIGNING
    signed = RunRecord.sealed(**RECORD, signing_key_id="4" * 64)
    assert signed.run_hash != HASH_BEFORE_SIGNING
    assert signed.expected_hash() == signed.run_hash
    after_signed = RunRecord.sealed(**RECORD, prev_signature="c2lnbmF0dXJl")
    assert after_signed.run_hash not in (HASH_BEFORE_SIGNING, signed.run_hash)


def test_a_file_from_before_signing_upgrades_and_keeps_verifying(db_path, synth, signer, pair):
    conn = connect(db_path, read_only=False)
    migrate(conn, target=BEFORE_SIGNATURES)
    # Today's writer looks up the head run's signature; on the old schema there is none.
    conn.execute("CREATE TEMP TABLE run_signatures (run_id VARCHAR, signature VARCHAR)")
    # ... and stores pages as responses and shared bodies, which the old schema keeps in
    # raw_api_pages, one body per page (copied there below, as an old writer stored them).
    conn.execute(
        "CREATE TEMP TABLE raw_api_responses AS SELECT * EXCLUDE (body) FROM raw_api_pages"
    )
    conn.execute(
        "CREATE TEMP TABLE raw_page_bodies (sha256 VARCHAR, run_id VARCHAR, base_sha256 VARCHAR,"
        ' body BLOB, patch STRUCT("offset" BIGINT, "length" BIGINT, "data" BLOB)[],'
        " body_zlib BLOB)"
    )
    # Observations, likewise: who once (member_identities), what per run (member_run_states).
    conn.execute(
        "CREATE TEMP TABLE member_identities (id BIGINT, workspace VARCHAR, account_id VARCHAR, "
        "uuid VARCHAR, nickname VARCHAR, display_name VARCHAR, account_type VARCHAR, "
        "kind VARCHAR)"
    )
    conn.execute(
        "CREATE TEMP TABLE member_run_states AS SELECT run_id, 0::BIGINT AS member_id, "
        "observed_at, permission, has_2fa_enabled, two_step_state, in_directory, "
        "directory_account_status, directory_claim_status, directory_mfa_enabled, "
        "directory_email_domain FROM member_2sv_observations LIMIT 0"
    )
    old = EvidenceStore(conn, db_path, read_only=False)
    legacy = [r.run_hash for r in record_days(old, synth, (1, 2))]
    conn.execute(
        "INSERT INTO main.member_2sv_observations BY NAME "
        "SELECT s.* EXCLUDE (member_id), i.* EXCLUDE (id) FROM temp.member_run_states AS s "
        "JOIN temp.member_identities AS i ON i.id = s.member_id"
    )
    conn.execute(
        "INSERT INTO main.raw_api_pages SELECT r.run_id, r.seq, r.listing, r.url, "
        "r.status_code, r.fetched_at, coalesce(b.body, expanded_page_body(b.body_zlib, b.sha256)), "
        "r.sha256 "
        "FROM temp.raw_api_responses AS r "
        "JOIN temp.raw_page_bodies AS b USING (sha256) ORDER BY r.fetched_at, r.seq"
    )
    old.close()
    with EvidenceStore.open(db_path) as store:  # migrates, then signs new runs
        signed = record_days(store, synth, (3, 4), signer=signer)
        query = "SELECT run_hash FROM collection_runs ORDER BY seq"
        stored = [h for (h,) in store.conn.execute(query).fetchall()]
    assert stored[:2] == legacy
    result = verify_evidence(db_path, public_keys=[str(pair.public)])
    assert result.ok, result.report()
    assert "2 of 4 runs signed by a trusted key; runs up to seq 4 are vouched" in result.report()
    assert signed[0].signing_key_id == signer.key_id == pair.key_id


def test_signature_rows_cover_the_run_hash(db_path, synth, signer, pair):
    with EvidenceStore.open(db_path) as store:
        (record,) = record_days(store, synth, (1,), signer=signer)
        ((key_id, signature),) = store.conn.execute(
            "SELECT key_id, signature FROM run_signatures"
        ).fetchall()
    (public,) = load_public_keys([pair.public]).values()
    assert key_id == pair.key_id == key_id_of(public)
    assert signature_valid(public, record.run_hash, signature)
    assert not signature_valid(public, "0" * 64, signature)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("DELETE FROM run_signatures WHERE run_id = '{run}'", "its signature row"),
        ("UPDATE run_signatures SET key_id = '{other}' WHERE run_id = '{run}'", "signature row"),
        (
            "UPDATE run_signatures SET signature = (SELECT signature FROM run_signatures "
            "WHERE run_id <> '{run}' LIMIT 1) WHERE run_id = '{run}'",
            "signature does not match the run_hash",
        ),
    ],
)
def test_edited_signatures_are_named(db_path, synth, signer, pair, edit, message):
    with EvidenceStore.open(db_path) as store:
        runs = record_days(store, synth, (1, 2, 3), signer=signer)
    conn = synth.plain_connect(db_path)
    conn.execute(edit.format(run=runs[1].run_id, other="f" * 64))
    conn.close()
    result = verify_evidence(db_path, public_keys=[str(pair.public)])
    assert result.first_bad_run_id == runs[1].run_id, result.report()
    assert message in result.report()


def test_the_next_run_covers_a_signature_so_an_edit_shows_without_the_public_key(
    db_path, synth, signer
):
    with EvidenceStore.open(db_path) as store:
        runs = record_days(store, synth, (1, 2, 3), signer=signer)
        stored = dict(store.conn.execute("SELECT run_id, signature FROM run_signatures").fetchall())
    assert runs[2].prev_signature == stored[runs[1].run_id]  # what run 3's hash covers
    assert runs[0].prev_signature is None
    conn = synth.plain_connect(db_path)
    conn.execute(  # another signature by the same key: well-formed, but not run 2's
        "UPDATE run_signatures SET signature = ? WHERE run_id = ?",
        [stored[runs[0].run_id], runs[1].run_id],
    )
    conn.close()
    result = verify_evidence(db_path)  # no --public-key
    assert result.first_bad_run_id == runs[1].run_id, result.report()
    named = {(p.run_id, p.what) for p in result.problems}
    assert (
        runs[2].run_id,
        "run_hash does not match the run record, digests and policy (a run field, its stored "
        "policy, its signature row or the previous run's signature was edited)",
    ) in named


def test_an_unsigned_run_between_signed_ones_is_reported_with_the_public_key(
    db_path, synth, signer, pair
):
    with EvidenceStore.open(db_path) as store:
        first = record_days(store, synth, (1,), signer=signer)
        (gap,) = record_days(store, synth, (2,))  # a collection that ran without the key
        record_days(store, synth, (3,), signer=signer)
    alone = verify_evidence(db_path)
    assert alone.ok and "2 of 3 runs signed" in alone.report()
    result = verify_evidence(db_path, public_keys=[str(pair.public)])
    assert [(p.run_id, p.seq) for p in result.problems] == [(gap.run_id, 2)], result.report()
    assert "not signed by a trusted key, though runs from seq 1 on are" in result.report()
    assert first[0].signing_key_id == pair.key_id


def test_the_signer_never_shows_its_key(signer, pair):
    secret = pair.private.read_text()
    body = "".join(secret.splitlines()[1:-1])
    assert repr(signer) == f"RunSigner(key_id={pair.key_id!r})" and body not in repr(signer)
    for serialise in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="never serialised"):
            serialise(signer)


def test_keygen_modes_and_no_overwrite(tmp_path, pair):
    assert stat.S_IMODE(os.stat(pair.private).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(pair.public).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(pair.private.parent).st_mode) == 0o700
    before = pair.private.read_bytes()
    with pytest.raises(ConfigError, match="never overwrites a key"):
        generate_key_pair(pair.private.parent)
    assert pair.private.read_bytes() == before


def test_bad_signing_keys_are_configuration_errors_that_quote_nothing(tmp_path, pair):
    fake = "-----BEGIN PRIVATE KEY-----\nU0VDUkVULUtFWS1NQVRFUklBTA==\n-----END PRIVATE KEY-----\n"
    (tmp_path / "fake.pem").write_text(fake)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa.pem").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cases = {
        "fake.pem": "is not an unencrypted Ed25519 private key",
        "rsa.pem": "holds a RSA key; bb2sv signs with Ed25519 only",
        "missing.pem": "Cannot read BB2SV_SIGNING_KEY",
    }
    for name, message in cases.items():
        with pytest.raises(ConfigError, match=message) as caught:
            signer_from_env({"BB2SV_SIGNING_KEY": str(tmp_path / name)})
        assert "U0VDUkVU" not in str(caught.value)
    with pytest.raises(ConfigError, match="set one"):
        signer_from_env({"BB2SV_SIGNING_KEY": str(pair.private), "BB2SV_SIGNING_KEY_BLOCK": "b"})
    assert signer_from_env({}) is None


def test_a_key_readable_by_others_is_warned_about(pair, caplog):
    os.chmod(pair.private, 0o644)
    with caplog.at_level(logging.WARNING, logger="tasks.evidence.keys"):
        signer_from_env({"BB2SV_SIGNING_KEY": str(pair.private)})
    assert "can be read by other users (mode 644); chmod 600 it" in caplog.text
    assert pair.private.read_text().splitlines()[1] not in caplog.text


def test_verify_refuses_a_private_key_as_public_key(pair):
    with pytest.raises(ConfigError, match="is a private key. Pass the public one") as caught:
        load_public_keys([pair.private])
    assert pair.private.read_text().splitlines()[1] not in str(caught.value)


def test_private_key_never_reaches_the_evidence_file(db_path, synth, signer, pair):
    with EvidenceStore.open(db_path) as store:
        record_days(store, synth, (1, 2), signer=signer)
        store.conn.execute("CHECKPOINT")
    raw_private = serialization.load_pem_private_key(
        pair.private.read_bytes(), password=None
    ).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    body = "".join(pair.private.read_text().splitlines()[1:-1]).encode()
    stored = db_path.read_bytes()
    for secret in (raw_private, raw_private.hex().encode(), body):
        assert secret not in stored
    assert verify_chain(db_path).ok
