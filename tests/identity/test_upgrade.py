"""An evidence file written before bb2sv knew identity (fixtures/pre_identity.duckdb.gz, made
by commit 61fac46) upgrades by migration, keeps every run_hash, still verifies, reads its old
runs as Bitbucket-2SV-only with everybody in scope, and takes new runs on the same chain."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest

from tasks.evidence.integrity import rederive, verify_chain
from tasks.evidence.schema import LATEST_VERSION, migrations
from tasks.evidence.store import EvidenceStore

FIXTURES = Path(__file__).with_name("fixtures")
SAID = json.loads((FIXTURES / "pre_identity.json").read_text("utf-8"))


@pytest.fixture
def old_file(tmp_path) -> Path:
    path = tmp_path / "evidence.duckdb"
    path.write_bytes(gzip.decompress((FIXTURES / "pre_identity.duckdb.gz").read_bytes()))
    return path


def test_the_fixture_predates_the_identity_migration(old_file):
    (identity,) = [m.version for m in migrations() if m.name == "identity"]
    with duckdb.connect(str(old_file), read_only=True) as conn:
        (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchall()[0]
    assert version < identity <= LATEST_VERSION


def test_upgrade_keeps_hashes_and_what_the_views_said(old_file):
    with EvidenceStore.open(old_file) as store:  # the writable open migrates
        conn = store.conn
        assert (
            dict(conn.execute("SELECT run_id, run_hash FROM collection_runs").fetchall())
            == (SAID["run_hashes"])
        )
        daily = [
            [str(day), ws, members, excepted, float(pct)]
            for day, ws, members, excepted, pct in conn.execute(
                "SELECT day, workspace, members, excepted, compliance_pct "
                "FROM daily_compliance ORDER BY ALL"
            ).fetchall()
        ]
        assert daily == SAID["daily_compliance"]
        latest = conn.execute(
            "SELECT workspace, member_key, two_step_state, excepted, compliant "
            "FROM latest_member_state ORDER BY ALL"
        ).fetchall()
        assert [list(row) for row in latest] == SAID["latest_member_state"]
        findings = conn.execute(
            "SELECT workspace, member_key, severity, runs FROM findings ORDER BY ALL"
        ).fetchall()
        assert [list(row) for row in findings] == SAID["findings"]
        # The app user of the old runs stays in scope and passes on Bitbucket 2SV, as then.
        assert conn.execute(
            "SELECT in_scope, mfa_basis, account_type FROM latest_member_state "
            "WHERE member_key = '557058:appbot'"
        ).fetchall() == [(True, "bitbucket_2sv", None)]
        assert all(rederive(conn, run_id).matches for run_id in SAID["run_hashes"])
    result = verify_chain(old_file, workers=0)
    assert result.ok, result.summary()


def test_new_runs_continue_the_old_chain(old_file, ident):
    with EvidenceStore.open(old_file) as store:
        rows = [ident.person("ana", True), ident.app("appbot", True)]
        users = [ident.listed(rows[0], mfa=True)]
        run_id = ident.record(store, rows, users)
        (prev, seq) = store.conn.execute(
            "SELECT prev_run_hash, seq FROM collection_runs WHERE run_id = ?", [run_id]
        ).fetchall()[0]
        assert seq == len(SAID["run_hashes"]) + 1
        assert prev in SAID["run_hashes"].values()
        assert store.conn.execute(
            "SELECT in_scope, excluded_by FROM latest_member_state "
            "WHERE workspace = 'acme' AND member_key = '557058:appbot'"
        ).fetchall() == [(False, "scope.exclude_account_types: app_user")]
    assert verify_chain(old_file, workers=0).ok


def test_identity_values_slipped_into_an_old_run_are_caught(old_file):
    EvidenceStore.open(old_file).close()
    with duckdb.connect(str(old_file), config={"autoinstall_known_extensions": False}) as conn:
        (run_id,) = conn.execute("SELECT min(run_id) FROM collection_runs").fetchall()[0]
        conn.execute(  # hide the owner without 2SV by calling it an app user
            # (who a member is is stored once, for every run that saw them: the first of
            # those is named)
            "UPDATE member_identities SET account_type = 'app_user' "
            "WHERE account_id = '557058:carol'",
        )
    result = verify_chain(old_file, workers=0)
    assert result.first_bad_run_id == run_id
    assert "identity columns set on observations of a run recorded without them" in (
        result.summary()
    )
