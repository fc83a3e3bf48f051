"""Identity in the evidence file: one basis per member per run, scope, findings, daily counts
by basis, a directory read halfway, and verify re-deriving the identity columns."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from tasks.evidence.integrity import rederive, verify_chain
from tasks.evidence.page_bodies import expand_in_plain_duckdb
from tasks.evidence.store import EvidenceStore


@pytest.fixture(scope="module")
def people(ident):
    """Members and their directory users: one of each case the rule distinguishes."""
    p, listed = ident.person, ident.listed
    rows = {
        "ana": p("ana", True),  # Bitbucket 2SV
        "ben": p("ben", False),  # Atlassian-account 2SV
        "cleo": p("cleo", None),  # SSO: active managed account in the attested domain
        "dan": p("dan", False, "owner"),  # unmanaged account in the SSO domain
        "eve": p("eve", False),  # managed account in the SSO domain, deactivated
        "fay": p("fay", False),  # a personal account outside the organization
        "gus": p("gus", False),  # managed, but in a domain nobody attested
        "bot": ident.app("bot", True),  # an app user whose has_2fa_enabled is true
    }
    users = [
        listed(rows["ana"], mfa=False),
        listed(rows["ben"], mfa=True),
        listed(rows["cleo"], mfa=False),
        listed(rows["dan"], managed=False),
        listed(rows["eve"], status="inactive", mfa=False),
        listed(rows["gus"], domain="other.org", mfa=False),
    ]
    return list(rows.values()), users


@pytest.fixture(scope="module")
def sso_file(tmp_path_factory, ident, people) -> Path:
    """One run of `people` under an SSO policy, its directory in two pages; shared read-only
    (tests that tamper take a copy)."""
    rows, users = people
    path = tmp_path_factory.mktemp("sso") / "evidence.duckdb"
    with EvidenceStore.open(path) as store:
        ident.record(store, rows, users, policy=ident.policy(ident.SSO_POLICY), limit=4)
    return path


@pytest.fixture
def judged(sso_file):
    with EvidenceStore.open(sso_file, read_only=True) as store:
        yield store


def members(store, run_id=None) -> dict[str, tuple]:
    where = "" if run_id is None else f"WHERE run_id = '{run_id}'"
    rows = store.conn.execute(
        "SELECT nickname, display_name, in_scope, mfa_basis, excluded_by, account_type, kind "
        f"FROM latest_member_state {where}"
    ).fetchall()
    return {(nick or name.lower()): tuple(rest) for nick, name, *rest in rows}


def test_each_member_passes_on_the_first_factor_that_holds(judged):
    store = judged
    state = members(store)
    assert {name: basis for name, (_in, basis, *_rest) in state.items()} == {
        "ana": "bitbucket_2sv",
        "ben": "atlassian_2sv",
        "cleo": "idp_sso",
        "dan": None,  # unmanaged in the SSO domain: does not pass
        "eve": None,  # inactive managed account: does not pass
        "fay": None,
        "gus": None,
        "bot": None,  # out of scope, not a violation
    }
    assert state["bot"] == (False, None, "scope.exclude_account_types: app_user", "app_user",
                            "forge")  # fmt: skip
    assert all(in_scope for name, (in_scope, *_rest) in state.items() if name != "bot")
    compliant = dict(
        store.conn.execute("SELECT nickname, compliant FROM latest_member_state").fetchall()
    )
    assert compliant["ana"] is True and compliant["dan"] is False
    assert compliant[None] is None  # the app user (no nickname): neither


def test_findings_only_for_members_in_scope_without_a_basis(judged):
    findings = dict(judged.conn.execute("SELECT nickname, severity FROM findings").fetchall())
    assert findings == {"dan": "critical", "eve": "high", "fay": "high", "gus": "high"}


def test_daily_compliance_counts_by_basis_and_leaves_out_of_scope_out(judged):
    (day,) = judged.conn.execute("SELECT * FROM daily_compliance").df().to_dict("records")
    assert {k: day[k] for k in ("members", "out_of_scope", "basis_bitbucket_2sv",
                                "basis_atlassian_2sv", "basis_idp_sso", "basis_exception",
                                "without_basis", "in_directory", "directory_status")} == {
        "members": 7, "out_of_scope": 1, "basis_bitbucket_2sv": 1, "basis_atlassian_2sv": 1,
        "basis_idp_sso": 1, "basis_exception": 0, "without_basis": 4, "in_directory": 6,
        "directory_status": "complete",
    }  # fmt: skip
    assert day["compliance_pct"] == pytest.approx(3 * 100 / 7)


def test_an_exception_is_the_basis_only_when_no_factor_holds(store, ident, people):
    rows, users = people
    policy = ident.policy(
        ident.SSO_POLICY + "exceptions:\n"
        + "".join(
            f"  - {{account_id: '557058:{who}', nickname: {who}, workspace: acme, reason: r, "
            f"approved_by: CISO, "
            f"ticket: SEC-{who}, expires_on: 2027-01-01}}\n"
            for who in ("ben", "fay")
        )
    )  # fmt: skip
    ident.record(store, rows, users, policy=policy)
    state = store.conn.execute(
        "SELECT nickname, mfa_basis, excepted, exception_ticket FROM latest_member_state "
        "WHERE nickname IN ('ben', 'fay') ORDER BY nickname"
    ).fetchall()
    assert state == [("ben", "atlassian_2sv", False, None), ("fay", "exception", True, "SEC-fay")]


def test_directory_read_halfway_lets_nobody_pass_on_it(store, ident, people):
    rows, users = people
    run_id = ident.record(
        store, rows, users, policy=ident.policy(ident.SSO_POLICY), limit=2, pages_read=1
    )
    status, directory, error = store.conn.execute(
        "SELECT status, directory_status, directory_error FROM collection_runs"
    ).fetchall()[0]
    assert (status, directory) == ("complete", "incomplete")  # the Bitbucket part still counts
    assert "HTTP 503" in error
    state = members(store, run_id)
    # ana and ben are on the page that was read, but the directory is not whole.
    assert {name: basis for name, (_in, basis, *_rest) in state.items() if basis} == {
        "ana": "bitbucket_2sv"
    }
    (stored,) = store.conn.execute(
        "SELECT in_directory FROM member_2sv_observations WHERE nickname = 'ben'"
    ).fetchall()[0]
    assert stored is True  # the facts are kept as read; the rule refuses to use them
    findings = {n for (n,) in store.conn.execute("SELECT nickname FROM findings").fetchall()}
    assert {"ben", "cleo"} <= findings
    assert store.conn.execute(
        "SELECT directory_status, without_basis FROM daily_compliance"
    ).fetchall() == [("incomplete", 6)]


def test_directory_pages_are_raw_pages_in_the_chain(tmp_path, sso_file):
    path = Path(shutil.copy(sso_file, tmp_path / "evidence.duckdb"))
    with EvidenceStore.open(path, read_only=True) as store:
        (run_id,) = store.conn.execute("SELECT run_id FROM collection_runs").fetchall()[0]
        listings = store.conn.execute(
            "SELECT listing, count(*) FROM raw_api_pages GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert listings == [("directory", 2), ("members", 1), ("permissions", 1)]
        assert rederive(store.conn, run_id).matches
    assert verify_chain(path, workers=0).ok
    with tamper(path) as conn:  # a directory page's body edited: mfaEnabled false → true
        conn.execute(
            "UPDATE raw_page_bodies SET body = encode(replace(decode(coalesce(body, "
            "expanded_page_body(body_zlib, sha256))), '\"mfaEnabled\":false', "
            "'\"mfaEnabled\":true')), body_zlib = NULL WHERE sha256 IN "
            "(SELECT sha256 FROM raw_api_responses WHERE listing = 'directory')"
        )
    result = verify_chain(path, workers=0)
    assert result.first_bad_run_id == run_id
    assert "body does not match its sha256" in result.summary()


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (  # hide an owner without a factor by calling it an app user
            "UPDATE member_identities SET account_type = 'app_user' WHERE nickname = 'dan'",
            "stored identity columns do not match identity_sha256",
        ),
        (  # make the directory say what it did not
            "UPDATE member_run_states SET directory_mfa_enabled = true "
            "WHERE member_id = (SELECT id FROM member_identities WHERE nickname = 'gus')",
            "stored identity columns do not match identity_sha256",
        ),
        (  # claim the directory was cut short (the rule would then ignore it)
            "UPDATE collection_runs SET directory_status = 'incomplete'",
            "run_hash does not match",
        ),
        (  # attest another domain
            "UPDATE run_policies SET sso_email_domains = ['other.org']",
            "run_hash does not match",
        ),
        (  # exclude people from scope after the fact
            "UPDATE run_policies SET exclude_account_types = ['app_user', 'user']",
            "run_hash does not match",
        ),
    ],
)
def test_verify_catches_edits_to_identity(tmp_path, sso_file, edit, said):
    path = Path(shutil.copy(sso_file, tmp_path / "evidence.duckdb"))
    with tamper(path) as conn:
        conn.execute(edit)
    result = verify_chain(path, workers=0)
    assert not result.ok
    assert said in result.summary()


def test_verify_rederives_identity_columns_from_the_pages(tmp_path, sso_file):
    """rederive compares the identity columns too, naming the row that differs."""
    path = Path(shutil.copy(sso_file, tmp_path / "evidence.duckdb"))
    with tamper(path) as conn:
        (run_id,) = conn.execute("SELECT run_id FROM collection_runs").fetchall()[0]
        conn.execute("UPDATE member_identities SET kind = NULL WHERE nickname IS NULL")
    with EvidenceStore.open(path, read_only=True) as store:
        diff = rederive(store.conn, run_id)
    assert not diff.matches
    assert diff.missing["kind"].tolist() == ["forge"]
    assert diff.unexpected["kind"].isna().all() and len(diff.unexpected) == 1


def tamper(path: Path):
    """A plain writable connection, as someone editing the file would use; it reads
    compressed page bodies, as such a person can (zlib)."""
    conn = duckdb.connect(str(path), config={"autoinstall_known_extensions": False})
    expand_in_plain_duckdb(conn)
    return conn
