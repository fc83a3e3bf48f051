"""record_run: one transaction per run, pages verbatim, observations, policy, statuses."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import duckdb
import pytest

from tasks.bitbucket.models import RawPage
from tasks.evidence.errors import EvidenceError
from tasks.evidence.hashing import GENESIS_HASH
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY, Policy, PolicyException
from tasks.vocabulary import ErrorKind


def counts(conn) -> dict[str, int]:
    tables = [
        "collection_runs",
        "raw_api_pages",
        "member_2sv_observations",
        "run_policies",
        "policy_exceptions",
    ]
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables}


def test_complete_run_stores_pages_verbatim_and_observations(db_path, synth):
    members = [
        synth.member(1, has_2fa_enabled=True, permission="owner"),
        synth.member(2, has_2fa_enabled=False),
        synth.member(3, has_2fa_enabled=None),
        synth.member(4, has_2fa_enabled=synth.ABSENT),
        synth.member(5, has_2fa_enabled=True, account_id=None),  # a bot: known only by uuid
    ] + synth.synthetic_members(200, start=10)
    extract = synth.make_extract(
        "acme", members, at=datetime(2026, 3, 1, 2, tzinfo=UTC), emulated=True
    )
    with EvidenceStore.open(db_path) as store:
        stored = store.record_run(extract, policy=DEFAULT_POLICY, prefect_flow_run_id="flow-1")
        conn = store.conn
        pages = conn.execute(
            "SELECT seq, listing, url, body, sha256 FROM raw_api_pages ORDER BY seq"
        ).fetchall()
        states = dict(
            conn.execute(
                "SELECT coalesce(account_id, uuid), two_step_state FROM member_2sv_observations"
            ).fetchall()
        )
        run = conn.execute(
            "SELECT seq, status, member_count, prev_run_hash, run_hash, emulated, "
            "prefect_flow_run_id, started_at FROM collection_runs"
        ).fetchall()[0]
        owner = conn.execute(
            "SELECT permission FROM member_2sv_observations WHERE nickname = 'user1'"
        ).fetchall()[0]
    assert stored.status == "complete" and stored.member_count == len(members)
    assert stored.emulated is True and stored.run_id.startswith("20260301T020000Z-acme-")
    assert [p[0] for p in pages] == list(range(1, len(extract.pages) + 1))
    for (_seq, listing, url, body, sha), page in zip(pages, extract.pages, strict=True):
        assert (listing, url, bytes(body)) == (page.listing, page.url, page.body)
        assert sha == hashlib.sha256(page.body).hexdigest()
    assert states[members[0]["account_id"]] == "enabled"
    assert states[members[1]["account_id"]] == "disabled"
    assert states[members[2]["account_id"]] == "unknown"
    assert states[members[3]["account_id"]] == "unknown"
    assert states[members[4]["uuid"]] == "enabled"
    assert owner == ("owner",)
    assert run[:3] == (1, "complete", len(members))
    assert run[3] == GENESIS_HASH and run[4] == stored.run_hash
    assert run[5:7] == (True, "flow-1")
    assert run[7] == stored.started_at


def test_runs_are_chained_in_seq_order(db_path, synth):
    members = synth.synthetic_members(30)
    with EvidenceStore.open(db_path) as store:
        first = store.record_run(
            synth.make_extract("acme", members, day=date(2026, 3, 1)), policy=DEFAULT_POLICY
        )
        second = store.record_run(
            synth.make_extract("beta", members, day=date(2026, 3, 1)), policy=DEFAULT_POLICY
        )
        rows = store.conn.execute(
            "SELECT seq, run_id, prev_run_hash, run_hash FROM collection_runs ORDER BY seq"
        ).fetchall()
    assert rows == [
        (1, first.run_id, GENESIS_HASH, first.run_hash),
        (2, second.run_id, first.run_hash, second.run_hash),
    ]


def test_incomplete_and_failed_runs_are_stored_but_never_claim_compliance(db_path, synth):
    members = synth.synthetic_members(250)
    complete = synth.make_extract("acme", members, day=date(2026, 3, 1))
    # Day 2: everyone "fixed", but only the first members page arrived.
    fixed = [dict(m, has_2fa_enabled=True) for m in members]
    partial_pages = synth.make_pages("acme", fixed, complete.started_at)[:1]
    incomplete = synth.make_extract(
        "acme",
        fixed,
        day=date(2026, 3, 2),
        status="incomplete",
        pages=partial_pages,
        error="size mismatch: 100 of 250",
        error_kind="anomaly",
    )
    failed = synth.failed_extract(
        "acme",
        day=date(2026, 3, 3),
        status_code=401,
        body=b'{"type": "error"}',
        error="Token is invalid",
        error_kind=ErrorKind.AUTH,
    )
    with EvidenceStore.open(db_path) as store:
        store.record_run(complete, policy=DEFAULT_POLICY)
        findings_before = store.conn.execute("SELECT count(*) FROM findings").fetchall()[0]
        part = store.record_run(incomplete, policy=DEFAULT_POLICY)
        fail = store.record_run(failed, policy=DEFAULT_POLICY)
        conn = store.conn
        latest_runs = conn.execute("SELECT DISTINCT run_id FROM latest_member_state").fetchall()
        days = conn.execute("SELECT day FROM daily_compliance").fetchall()
        findings_after = conn.execute("SELECT count(*) FROM findings").fetchall()[0]
        history = conn.execute(
            "SELECT count(*) FROM member_state_history WHERE valid_to IS NOT NULL"
        ).fetchall()[0]
        coverage = conn.execute(
            "SELECT day, runs, complete_runs, has_complete_evidence FROM evidence_coverage "
            "ORDER BY day"
        ).fetchall()
        stored = conn.execute(
            "SELECT status, member_count, error, error_kind FROM collection_runs ORDER BY seq"
        ).fetchall()
        part_obs = conn.execute(
            "SELECT count(*) FROM member_2sv_observations WHERE run_id = ?", [part.run_id]
        ).fetchall()[0]
    assert (part.status, part.member_count, fail.status, fail.member_count) == (
        "incomplete",
        100,
        "failed",
        0,
    )
    assert part_obs == (100,)
    assert stored[1:] == [
        ("incomplete", 100, "size mismatch: 100 of 250", "anomaly"),
        ("failed", 0, "Token is invalid", "auth"),
    ]
    assert len(latest_runs) == 1 and latest_runs[0][0] != part.run_id
    assert days == [(date(2026, 3, 1),)]
    assert findings_after == findings_before and history == (0,)
    assert coverage == [
        (date(2026, 3, 1), 1, 1, True),
        (date(2026, 3, 2), 1, 0, False),
        (date(2026, 3, 3), 1, 0, False),
    ]


def test_failed_load_leaves_nothing_behind(db_path, synth):
    good = synth.make_extract("acme", synth.synthetic_members(150), day=date(2026, 3, 1))
    bad_pages = list(good.pages)
    bad_pages[-1] = RawPage("groups", "https://x/2.0/groups", 200, good.started_at, b"{}")
    bad = synth.make_extract(
        "acme", synth.synthetic_members(150), day=date(2026, 3, 2), pages=bad_pages
    )
    with EvidenceStore.open(db_path) as store:
        with pytest.raises(EvidenceError, match="record the acme run"):
            store.record_run(bad, policy=DEFAULT_POLICY)
        assert set(counts(store.conn).values()) == {0}
        stored = store.record_run(good, policy=DEFAULT_POLICY)
        seq = store.conn.execute("SELECT seq FROM collection_runs").fetchall()
    assert seq == [(1,)] and stored.member_count == 150


def test_policy_and_exceptions_are_stored_with_the_run(db_path, synth):
    policy = Policy(
        grace_days=3,
        sla_days=5,
        exceptions=(
            PolicyException(
                "acme", "break-glass", "ciso", "SEC-1", date(2026, 6, 1), account_id="557058:x"
            ),
        ),
        source_text="grace_days: 3\nsla_days: 5\n",
    )
    with EvidenceStore.open(db_path) as store:
        run = store.record_run(
            synth.make_extract("acme", synth.synthetic_members(5), day=date(2026, 3, 1)),
            policy=policy,
        )
        stored = store.conn.execute(
            "SELECT policy_sha256, policy_text, grace_days, sla_days, severity_owner "
            "FROM run_policies WHERE run_id = ?",
            [run.run_id],
        ).fetchall()[0]
        exception = store.conn.execute(
            "SELECT workspace, account_id, nickname, ticket, expires_on FROM policy_exceptions"
        ).fetchall()
        run_sha = store.conn.execute("SELECT policy_sha256 FROM collection_runs").fetchall()[0]
    text_sha = hashlib.sha256(policy.source_text.encode()).hexdigest()
    assert stored == (text_sha, policy.source_text, 3, 5, "critical")
    assert run_sha == (text_sha,)
    assert exception == [("acme", "557058:x", None, "SEC-1", date(2026, 6, 1))]


def test_stored_runs_cannot_be_deleted_or_reordered_in_place(db_path, synth):
    # Cheap guard only (foreign keys): other edits are caught by the hash chain (verify).
    with EvidenceStore.open(db_path) as store:
        store.record_run(
            synth.make_extract("acme", synth.synthetic_members(5), day=date(2026, 3, 1)),
            policy=DEFAULT_POLICY,
        )
    conn = synth.plain_connect(db_path)
    with pytest.raises(duckdb.ConstraintException):
        conn.execute("UPDATE collection_runs SET seq = 7")
    with pytest.raises(duckdb.ConstraintException):
        conn.execute("DELETE FROM collection_runs")
    assert conn.execute("SELECT seq FROM collection_runs").fetchall() == [(1,)]
    conn.close()


def test_read_only_store_refuses_to_record(db_path, synth):
    EvidenceStore.open(db_path).close()
    extract = synth.make_extract("acme", synth.synthetic_members(5), day=date(2026, 3, 1))
    with (
        EvidenceStore.open(db_path, read_only=True) as store,
        pytest.raises(EvidenceError, match="read-only"),
    ):
        store.record_run(extract, policy=DEFAULT_POLICY)
