"""verify_chain and rederive: every kind of tampering names the first bad run."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import orjson
import pytest

from tasks.bitbucket.models import RawPage
from tasks.evidence.errors import IntegrityError
from tasks.evidence.integrity import rederive, verify_chain
from tasks.evidence.store import EvidenceStore
from tasks.normalise import joins_roles_by_uuid
from tasks.policy import DEFAULT_POLICY, Policy, PolicyException

TABLES = [
    "collection_runs",
    "raw_api_responses",
    "raw_page_bodies",
    "member_run_states",
    "member_identities",
    "run_policies",
    "policy_exceptions",
]


@pytest.fixture(scope="module")
def chain_file(tmp_path_factory, synth) -> tuple[Path, list[str]]:
    """Five runs: complete days 1-3 (with an exception policy), incomplete, failed."""
    db_path = tmp_path_factory.mktemp("chain") / "evidence.duckdb"
    policy = Policy(
        exceptions=(
            PolicyException(
                "acme", "contractor", "ciso", "SEC-9", date(2026, 4, 1), nickname="user10"
            ),
        ),
        source_text="exceptions: [...]\n",
    )
    members = synth.synthetic_members(150) + [synth.member(900, account_id=None)]
    ids = []
    with EvidenceStore.open(db_path) as store:
        for day in (1, 2, 3):
            extract = synth.make_extract("acme", members, day=date(2026, 3, day))
            ids.append(store.record_run(extract, policy=policy).run_id)
        partial = synth.make_extract("acme", members, day=date(2026, 3, 4), status="incomplete")
        partial.pages = partial.pages[:1]
        ids.append(store.record_run(partial, policy=DEFAULT_POLICY).run_id)
        failed = synth.failed_extract(
            "acme",
            day=date(2026, 3, 5),
            status_code=503,
            body=b"<html>503</html>",
            error="budget exhausted",
        )
        ids.append(store.record_run(failed, policy=DEFAULT_POLICY).run_id)
    return db_path, ids


@pytest.fixture
def chain(db_path, synth, chain_file) -> list[str]:
    """The five-run file at `db_path`, a fresh copy for each test (most tamper with it)."""
    synth.copy_file(chain_file[0], db_path)
    return chain_file[1]


# Rewrites one stored page body (member 2SV false → true) without touching its sha256.
# Bodies are stored once: the first three runs read the same first page, so all three (and
# the incomplete fourth, which read only that page) hold the edited body.
FLIP_2SV_IN_BODY = (
    # Expanded (zlib: plain_connect can), edited and stored back as it arrives.
    "UPDATE raw_page_bodies SET body = encode(replace(decode(coalesce(body, "
    "expanded_page_body(body_zlib, sha256))), '\"has_2fa_enabled\":false', "
    "'\"has_2fa_enabled\":true')), body_zlib = NULL "
    "WHERE sha256 = (SELECT sha256 FROM raw_api_responses WHERE run_id = '{run}' AND seq = 1)"
)


def tamper(db_path, synth, *statements: str) -> None:
    conn = synth.plain_connect(db_path)
    for statement in statements:
        conn.execute(statement)
    conn.close()


def drop_constraints(db_path, synth) -> None:
    """What a determined editor does: rebuild the tables without keys, then edit freely."""
    conn = synth.plain_connect(db_path)
    for table in TABLES:
        conn.execute(f"CREATE TABLE copy_{table} AS SELECT * FROM {table}")
    for table in reversed(TABLES):
        conn.execute(f"DROP TABLE {table}")
    for table in TABLES:
        conn.execute(f"ALTER TABLE copy_{table} RENAME TO {table}")
    conn.close()


def assert_first_bad(db_path, run_id: str, fragment: str) -> None:
    result = verify_chain(db_path)
    assert not result.ok
    assert result.first_bad_run_id == run_id, result.summary()
    assert fragment in result.summary()
    with pytest.raises(IntegrityError, match=run_id):
        result.raise_for_problems()


def test_untouched_chain_verifies(db_path, chain):
    result = verify_chain(db_path)
    assert result.ok, result.summary()
    assert result.runs_checked == 5 and "OK: 5 runs" in result.summary()


def test_rederive_matches_untouched_runs_and_shows_edits(db_path, synth, chain):
    with EvidenceStore.open(db_path, read_only=True) as store:
        assert all(rederive(store.conn, run_id).matches for run_id in chain)
    tamper(
        db_path,
        synth,
        "UPDATE member_identities SET display_name = 'Someone Else' WHERE nickname = 'user7'",
    )
    with EvidenceStore.open(db_path, read_only=True) as store:
        diff = rederive(store.conn, chain[0])
    assert not diff.matches
    assert list(diff.unexpected["display_name"]) == ["Someone Else"]
    assert list(diff.missing["display_name"]) == ["User Number 7"]


def test_edited_observation(db_path, synth, chain):
    tamper(
        db_path,
        synth,
        "UPDATE member_run_states SET has_2fa_enabled = true, two_step_state = 'enabled' "
        f"WHERE run_id = '{chain[1]}' AND member_id = "
        "(SELECT id FROM member_identities WHERE nickname = 'user20')",
    )
    assert_first_bad(db_path, chain[1], "stored observations do not match")


def test_deleted_raw_page(db_path, synth, chain):
    tamper(db_path, synth, f"DELETE FROM raw_api_responses WHERE run_id = '{chain[2]}' AND seq = 2")
    assert_first_bad(db_path, chain[2], "raw_sha256 does not match")


def test_edited_raw_page_body(db_path, synth, chain):
    tamper(
        db_path,
        synth,
        FLIP_2SV_IN_BODY.format(run=chain[1]),
    )
    result = verify_chain(db_path)
    assert result.first_bad_run_id == chain[0]  # the first run that holds that body
    assert "raw page 1: body does not match its sha256" in result.summary()
    assert "re-derived from the raw pages differ" in result.summary()
    assert {p.run_id for p in result.problems} == set(chain[:4])


def test_deleted_run_in_the_middle(db_path, synth, chain):
    victim = chain[1]
    tamper(
        db_path,
        synth,
        *[
            f"DELETE FROM {t} WHERE run_id = '{victim}'"
            for t in reversed(TABLES)
            if t != "member_identities"  # shared by runs: no run_id
        ],
    )
    assert_first_bad(db_path, chain[2], "chain broken")


@pytest.mark.parametrize(
    "swap, victim",
    [
        # chain[2] now sits at seq 2
        ("UPDATE collection_runs SET seq = CASE seq WHEN 2 THEN 3 ELSE 2 END "
         "WHERE seq IN (2, 3)", "chain broken"),
        ("UPDATE raw_api_responses SET seq = CASE seq WHEN 1 THEN 2 ELSE 1 END "
         "WHERE run_id = '{run}' AND seq IN (1, 2)", "raw_sha256 does not match"),
    ],
    ids=["runs", "raw-pages"],
)  # fmt: skip
def test_reordered(db_path, synth, chain, swap, victim):
    drop_constraints(db_path, synth)
    tamper(db_path, synth, swap.format(run=chain[2]))
    assert_first_bad(db_path, chain[2], victim)


def test_edited_run_status(db_path, synth, chain):
    sql = f"UPDATE collection_runs SET status = 'complete' WHERE run_id = '{chain[3]}'"
    tamper(db_path, synth, sql)
    assert_first_bad(db_path, chain[3], "run_hash does not match")


def test_edited_policy(db_path, synth, chain):
    tamper(
        db_path,
        synth,
        f"UPDATE policy_exceptions SET expires_on = DATE '2030-01-01' WHERE run_id = '{chain[0]}'",
    )
    assert_first_bad(db_path, chain[0], "run_hash does not match")


def test_rows_left_behind_by_a_deleted_run_are_reported(db_path, synth, chain):
    drop_constraints(db_path, synth)
    tamper(db_path, synth, f"DELETE FROM collection_runs WHERE run_id = '{chain[4]}'")
    result = verify_chain(db_path)
    assert not result.ok
    assert any(
        p.run_id == chain[4] and p.seq is None and "raw pages" in p.what for p in result.problems
    )


def test_worker_processes_find_the_same_problems(db_path, synth, chain):
    tamper(
        db_path,
        synth,
        FLIP_2SV_IN_BODY.format(run=chain[1]),
        f"DELETE FROM member_run_states WHERE run_id = '{chain[2]}' AND member_id = "
        "(SELECT id FROM member_identities WHERE nickname = 'user3')",
    )
    in_process = verify_chain(db_path, workers=0)
    in_workers = verify_chain(db_path, workers=2)
    assert in_workers.problems == in_process.problems
    assert in_workers.first_bad_run_id == chain[0]  # the edited body is shared
    assert {p.run_id for p in in_workers.problems} == set(chain[:4])


def test_a_page_stored_out_of_place_still_counts_for_its_run(db_path, synth, chain):
    # Re-inserting an identical page moves it to the end of the table (a new rowid):
    # its run's pages are no longer together, and must still all be read.
    drop_constraints(db_path, synth)
    page = f"run_id = '{chain[0]}' AND seq = 2"
    tamper(
        db_path,
        synth,
        f"CREATE TABLE moved AS SELECT * FROM raw_api_responses WHERE {page}",
        f"DELETE FROM raw_api_responses WHERE {page}",
        "INSERT INTO raw_api_responses SELECT * FROM moved",
        "DROP TABLE moved",
    )
    for workers in (0, 2):
        result = verify_chain(db_path, workers=workers)
        assert result.ok, result.summary()
    with EvidenceStore.open(db_path, read_only=True) as store:
        assert rederive(store.conn, chain[0]).matches


def _permissions_by_uuid_alone(extract):
    """The extract with its /permissions users known by uuid alone, as in Atlassian's own
    example of that listing."""
    pages = []
    for page in extract.pages:
        if page.listing == "permissions" and page.status_code == 200:
            document = orjson.loads(page.body)
            for value in document["values"]:
                value["user"].pop("account_id", None)
            page = RawPage(page.listing, page.url, 200, page.fetched_at, orjson.dumps(document))
        pages.append(page)
    return dataclasses.replace(extract, pages=pages, derived=None)


def test_each_run_is_derived_and_verified_by_the_rules_of_the_bb2sv_that_stored_it(db_path, synth):
    """Before 0.2, a /permissions entry without an account_id joined no member; since, it
    joins by uuid. A run stored by either still verifies: it is re-derived by its own
    version's rule (the version is in the run's hash, so it cannot be changed unseen)."""
    members = synth.synthetic_members(30)
    with EvidenceStore.open(db_path) as store:
        for day, version in ((1, "0.1.0"), (2, "0.2.0")):
            extract = synth.make_extract("acme", members, day=date(2026, 3, day))
            store.record_run(
                _permissions_by_uuid_alone(extract), policy=DEFAULT_POLICY, tool_version=version
            )
        roles = store.conn.execute(
            "SELECT r.tool_version, count(o.permission) FROM collection_runs AS r "
            "JOIN member_2sv_observations AS o USING (run_id) GROUP BY ALL ORDER BY 1"
        ).fetchall()
    assert roles == [("0.1.0", 0), ("0.2.0", 30)]
    assert verify_chain(db_path).ok


@pytest.mark.parametrize(
    ("tool_version", "by_uuid"),
    [
        ("0.1.0", False), ("0.1", False), ("0.2.0", True), ("0.10.0", True), ("1.0", True),
        ("0+unknown", True), ("", True), (None, True),
        ("0." + "9" * 5000, True),  # too long for int(): read as no version, not a crash
        ("\u0660.\u0661", True),  # Arabic-Indic digits are not a version
    ],
)  # fmt: skip
def test_the_version_of_a_run_is_read_safely(tool_version, by_uuid):
    assert joins_roles_by_uuid(tool_version) is by_uuid
