"""Views over complete runs: latest state, daily compliance, history, findings, coverage."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from emulator.offline import member
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY, Policy, PolicyException

DAYS = [1, 2, 3, 4, 5, 8, 12, 13, 20]  # complete runs; day 7 has only an incomplete run
EXPIRES = date(2026, 3, 4)


def at(day: int, hour: int = 2) -> datetime:
    return datetime(2026, 3, 1, hour, tzinfo=UTC) + timedelta(days=day - 1)


def policy_for(day: int) -> Policy:
    exception = PolicyException(
        "acme",
        "hardware key on order",
        "ciso",
        "SEC-7",
        EXPIRES,
        account_id=member(7)["account_id"],
        nickname="user7",
    )
    other = PolicyException(
        "other",
        "wrong workspace",
        "ciso",
        "SEC-8",
        date(2030, 1, 1),
        account_id=member(3)["account_id"],
        nickname="user3",
    )
    if day < 13:
        return Policy(grace_days=5, sla_days=3, exceptions=(exception, other), source_text="p1")
    return Policy(grace_days=5, sla_days=30, exceptions=(exception, other), source_text="p2")


def members_on(day: int, synth) -> list[dict]:
    m = synth.member
    out = [
        m(1, has_2fa_enabled=day > 3, permission="owner"),
        m(2, has_2fa_enabled=None if day == 1 else False),
        m(4, has_2fa_enabled=day < 13),
        m(5, has_2fa_enabled=day < 12),
        m(7, has_2fa_enabled=False),
        m(8, has_2fa_enabled=True),
        m(9, has_2fa_enabled=synth.ABSENT, account_id=None),
    ]
    if day == 1:
        out.append(m(3, has_2fa_enabled=False))
    if day >= 5:
        out.append(m(6, has_2fa_enabled=day >= 12))
    return out


@pytest.fixture(scope="module")
def views_file(tmp_path_factory, synth):
    db_path = tmp_path_factory.mktemp("views") / "evidence.duckdb"
    with EvidenceStore.open(db_path) as store:
        for day in DAYS:
            if day == 8:  # an incomplete run on day 7 in which everyone looks fixed
                fixed = [dict(x, has_2fa_enabled=True) for x in members_on(7, synth)]
                extract = synth.make_extract("acme", fixed, at=at(7), status="incomplete")
                store.record_run(extract, policy=policy_for(7))
            extract = synth.make_extract("acme", members_on(day, synth), at=at(day))
            store.record_run(extract, policy=policy_for(day))
    return db_path


@pytest.fixture
def store(db_path, synth, views_file):
    """The runs above, in a fresh copy of the file for each test."""
    with EvidenceStore.open(synth.copy_file(views_file, db_path)) as store:
        yield store


def findings_by_nickname(conn) -> dict[str, dict]:
    result = conn.execute("SELECT * FROM findings")
    names = [column[0] for column in result.description]
    return {
        row["nickname"]: row
        for row in (dict(zip(names, r, strict=True)) for r in result.fetchall())
    }


def test_daily_compliance_counts_and_exceptions(store):
    rows = store.conn.execute(
        "SELECT day, members, enabled, disabled, unknown, excepted, compliance_pct "
        "FROM daily_compliance WHERE workspace = 'acme' ORDER BY day"
    ).fetchall()
    by_day = {row[0]: row[1:] for row in rows}
    assert sorted(d.day for d in by_day) == DAYS  # day 7 (incomplete only) is absent
    # day 1: 8 members; enabled 4,5,8; disabled 1,3,7; unknown 2,9; user7 excepted
    assert by_day[date(2026, 3, 1)] == (8, 3, 3, 2, 1, pytest.approx(50.0))
    # day 3 is the last day before expires_on; on day 4 the exception no longer applies
    assert by_day[date(2026, 3, 3)][4] == 1
    assert by_day[date(2026, 3, 4)] == (7, 4, 2, 1, 0, pytest.approx(4 / 7 * 100))


def test_exceptions_match_workspace(store):
    excepted = store.conn.execute(
        "SELECT nickname FROM complete_run_members WHERE excepted"
    ).fetchall()
    assert set(excepted) == {("user7",)}  # user3 is excepted only in workspace 'other'


def test_last_complete_run_of_the_day_wins_and_empty_population_is_100(db_path, synth, store):
    two = [synth.member(1, has_2fa_enabled=False), synth.member(2)]
    fixed = [synth.member(1), synth.member(2)]
    for hour, members, status in [
        (2, two, "complete"),
        (10, fixed, "complete"),
        (12, two, "incomplete"),
    ]:
        extract = synth.make_extract("beta", members, at=at(1, hour), status=status)
        store.record_run(extract, policy=DEFAULT_POLICY)
    store.record_run(synth.make_extract("empty", [], at=at(1)), policy=DEFAULT_POLICY)
    rows = dict(
        store.conn.execute(
            "SELECT workspace, (members, compliance_pct) FROM daily_compliance "
            "WHERE workspace IN ('beta', 'empty')"
        ).fetchall()
    )
    assert rows == {"beta": (2, 100.0), "empty": (0, 100.0)}


def test_latest_member_state_comes_from_last_complete_run(store):
    rows = store.conn.execute(
        "SELECT member_key, nickname, two_step_state, permission, run_started_at "
        "FROM latest_member_state WHERE workspace = 'acme'"
    ).fetchall()
    states = {nick: state for _key, nick, state, _perm, _at in rows}
    assert {started for *_rest, started in rows} == {at(20)}
    assert states == {
        "user1": "enabled",
        "user2": "disabled",
        "user4": "disabled",
        "user5": "disabled",
        "user6": "enabled",
        "user7": "disabled",
        "user8": "enabled",
        "user9": "unknown",
    }
    bot = [key for key, nick, *_ in rows if nick == "user9"]
    assert bot == ["{00000009-1111-4222-8333-000000000009}"]  # keyed by uuid


def test_member_state_history_intervals(store):
    rows = store.conn.execute(
        "SELECT nickname, two_step_state, permission, valid_from, valid_to "
        "FROM member_state_history WHERE nickname IN ('user1', 'user3', 'user6') "
        "ORDER BY nickname, valid_from"
    ).fetchall()
    assert rows == [
        ("user1", "disabled", "owner", at(1), at(4)),
        ("user1", "enabled", "owner", at(4), None),
        ("user3", "disabled", "member", at(1), at(2)),  # left at day 2
        ("user6", "disabled", "member", at(5), at(12)),
        ("user6", "enabled", "member", at(12), None),
    ]


def test_findings_severity_resolution_due_and_sla(store):
    found = findings_by_nickname(store.conn)
    expected = {
        # nickname: severity, first_seen, resolved_at, resolution, due_at, sla_breached
        "user1": ("critical", at(1), at(4), "fixed", at(6), False),  # grace: max(d1+5, d1+3)
        "user2": ("high", at(1), None, None, at(6), True),  # worst of unknown then disabled
        "user3": ("high", at(1), at(2), "left", at(6), False),
        "user4": ("high", at(13), None, None, at(43), False),  # policy 2: sla 30
        "user5": ("high", at(12), None, None, at(15), True),  # sla 3 pinned at first sight
        "user6": ("high", at(5), at(12), "fixed", at(10), True),  # joined d5: grace to d10
        "user7": ("high", at(4), None, None, at(7), True),  # exception expired on d4
        "user9": ("medium", at(1), None, None, at(6), True),
    }
    assert set(found) == set(expected)
    for nickname, (severity, first, resolved, how, due, breached) in expected.items():
        row = found[nickname]
        assert (
            row["severity"],
            row["first_seen"],
            row["resolved_at"],
            row["resolution"],
            row["due_at"],
            row["sla_breached"],
        ) == (severity, first, resolved, how, due, breached), nickname


def test_incomplete_run_does_not_split_or_resolve_findings(store):
    (count,) = store.conn.execute(
        "SELECT count(*) FROM findings WHERE nickname = 'user2'"
    ).fetchall()[0]
    assert count == 1


def test_a_member_without_2sv_again_has_a_new_finding(tmp_path, synth):
    """A finding spans consecutive complete runs only: fixed, or absent from a run, and then
    without 2SV again, a member has a second finding, first seen on its own run."""
    m = synth.member
    off_on_off = [False, False, True, False, False]  # user1: fixed on day 3, off again on 4
    here = [True, True, False, True, True]  # user2 (no 2SV): not listed on day 3
    with EvidenceStore.open(tmp_path / "evidence.duckdb") as store:
        for day, (has_2fa, listed) in enumerate(zip(off_on_off, here, strict=True), start=1):
            people = [m(1, has_2fa_enabled=has_2fa, permission="owner")]
            people += [m(2, has_2fa_enabled=False)] if listed else []
            store.record_run(synth.make_extract("acme", people, at=at(day)), policy=DEFAULT_POLICY)
        rows = store.conn.execute(
            "SELECT nickname, first_seen, last_seen, resolved_at, resolution, runs "
            "FROM findings ORDER BY nickname, first_seen"
        ).fetchall()
    assert rows == [
        ("user1", at(1), at(2), at(3), "fixed", 2),
        ("user1", at(4), at(5), None, None, 2),
        ("user2", at(1), at(2), at(3), "left", 2),
        ("user2", at(4), at(5), None, None, 2),
    ]


def test_evidence_coverage_lists_gaps(store):
    rows = store.conn.execute(
        "SELECT day, has_complete_evidence, runs, complete_runs FROM evidence_coverage "
        "WHERE workspace = 'acme' ORDER BY day"
    ).fetchall()
    assert [r[0] for r in rows] == [date(2026, 3, d) for d in range(1, 21)]
    by_day = {r[0].day: r[1:] for r in rows}
    assert by_day[6] == (False, 0, 0)
    assert by_day[7] == (False, 1, 0)
    assert by_day[8] == (True, 1, 1)


def test_as_of_macros(store):
    state = dict(
        store.conn.execute(
            "SELECT nickname, two_step_state FROM member_state_as_of(DATE '2026-03-02')"
        ).fetchall()
    )
    assert state["user1"] == "disabled" and "user3" not in state  # user3 left on day 2
    first_day = dict(
        store.conn.execute(
            "SELECT nickname, two_step_state FROM member_state_as_of('2026-03-01')"
        ).fetchall()
    )
    assert first_day["user3"] == "disabled" and first_day["user2"] == "unknown"
    gone = store.conn.execute(
        "SELECT count(*) FROM member_state_as_of('2026-03-02') WHERE nickname = 'user6'"
    ).fetchall()
    assert gone == [(0,)]
    as_of = {
        row[0]: row[1:]
        for row in store.conn.execute(
            "SELECT nickname, open_as_of, overdue_as_of FROM findings_as_of(DATE '2026-03-05')"
        ).fetchall()
    }
    assert "user4" not in as_of and "user5" not in as_of  # first seen later
    assert as_of["user1"] == (False, False)  # fixed on day 4
    assert as_of["user6"] == (True, False)
    assert as_of["user2"] == (True, False)  # due day 6 02:00, not yet at end of day 5
    later = dict(
        store.conn.execute(
            "SELECT nickname, overdue_as_of FROM findings_as_of('2026-03-06')"
        ).fetchall()
    )
    assert later["user2"] is True
