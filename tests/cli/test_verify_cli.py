"""keygen, signed and anchored collection, verify with outside references, verify-report:
real Prefect runs against the emulator over loopback, in-process through bb2sv.cli.app."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from uuid import UUID

import duckdb
import pytest
from typer.testing import CliRunner

from bb2sv.cli import app
from emulator import WorkspaceSpec

TOKEN = "emu-verify-admin-token-QRS321"
EMULATED = [WorkspaceSpec("acme", members=120, seed=8)]

pytestmark = pytest.mark.usefixtures("prefect_harness")


def cli(*args: str, env: dict[str, str] | None = None):
    cleared = {name: None for name in os.environ if name.startswith(("BITBUCKET_", "BB2SV_"))}
    return CliRunner().invoke(app, list(args), env={**cleared, **(env or {})})


@pytest.fixture(scope="module")
def signed(tmp_path_factory, emu) -> SimpleNamespace:
    """A key pair, then two signed, anchored collections of `acme`: the first with the key
    file (BB2SV_SIGNING_KEY), the second with the same key from a Prefect Secret block."""
    from prefect.blocks.system import Secret

    root = tmp_path_factory.mktemp("signed")
    made = cli("keygen", "--out", str(root / "keys"))
    assert made.exit_code == 0, made.output
    private = root / "keys" / "bb2sv-signing-key.pem"
    Secret(value=private.read_text()).save("bb2sv-test-signing-key", overwrite=True)
    log = root / "worm" / "anchors.jsonl"  # outside the reports folder
    api = {"BITBUCKET_API_URL": emu.base_url, "BITBUCKET_TOKEN": TOKEN}
    outputs = [
        cli(
            "collect",
            "--workspace",
            "acme",
            "--db",
            str(root / "e.duckdb"),
            "--reports-dir",
            str(root / "r"),
            "--anchor-log",
            str(log),
            "--retry-delay",
            "0",
            env={**api, **key},
        )  # fmt: skip
        for key in (
            {"BB2SV_SIGNING_KEY": str(private)},
            {"BB2SV_SIGNING_KEY_BLOCK": "bb2sv-test-signing-key"},
        )
    ]
    assert all(result.exit_code == 0 for result in outputs), outputs[-1].output
    return SimpleNamespace(
        root=root, db=str(root / "e.duckdb"), log=str(log), private=private,
        public=str(root / "keys" / "bb2sv-signing-key.pub.pem"), keygen=made, outputs=outputs,
        manifests=sorted((root / "r").rglob("*.manifest.json")),
    )  # fmt: skip


def copy_of(signed, tmp_path) -> SimpleNamespace:
    """The evidence file, log and reports copied, for a test that tampers with them."""
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(signed.root, target)
    return SimpleNamespace(
        db=str(target / "e.duckdb"),
        log=str(target / "worm" / "anchors.jsonl"),
        manifests=sorted((target / "r").rglob("*.manifest.json")),
    )


def delete_run(db: str, run_id: str) -> None:
    """Delete a run from every table, as someone truncating the file would."""
    with duckdb.connect(db) as conn:
        for table in ("run_signatures", "policy_exceptions", "run_policies",
                      "member_run_states", "raw_page_bodies", "raw_api_responses",
                      "collection_runs"):  # fmt: skip
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])


def head_of(db: str) -> str:
    with duckdb.connect(db, read_only=True) as conn:
        return conn.execute(
            "SELECT run_hash FROM collection_runs ORDER BY seq DESC LIMIT 1"
        ).fetchall()[0][0]


def test_keygen_prints_where_the_keys_are_and_never_the_key(signed):
    text = signed.keygen.stdout
    assert str(signed.private) in text and "bb2sv verify --public-key" in text
    assert signed.private.read_text().splitlines()[1] not in text
    again = cli("keygen", "--out", str(signed.private.parent))
    assert again.exit_code == 3 and "never overwrites a key" in again.stderr


def test_signed_collection_verifies_against_every_reference(signed):
    manifest = json.loads(signed.manifests[-1].read_text())
    result = cli(
        "verify", "--db", signed.db, "--anchor-log", signed.log, "--public-key", signed.public,
        "--expect-head", manifest["run_hash"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 runs verified, chain intact" in result.stdout
    assert "2 of 2 runs signed by a trusted key" in result.stdout
    assert "2 of 2 runs anchored" in result.stdout


def test_the_private_key_stays_out_of_output_reports_file_and_prefect(signed):
    pem = signed.private.read_text()
    body = "".join(pem.splitlines()[1:-1])
    for result in [signed.keygen, *signed.outputs]:
        assert body not in result.output
    for path in (signed.root / "r").rglob("*"):
        if path.is_file():
            assert body not in path.read_text(errors="replace"), path
    with duckdb.connect(signed.db, read_only=True) as conn:
        text = " ".join(
            str(row) for row in conn.execute("SELECT * FROM collection_runs").fetchall()
        )
        flow_run_id = conn.execute("SELECT prefect_flow_run_id FROM collection_runs").fetchall()[
            -1
        ][0]
    assert body not in text
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(flow_run_id))
        artifacts = client.read_artifacts()
    assert body not in json.dumps(flow_run.parameters) and "PRIVATE" not in json.dumps(
        flow_run.parameters
    )
    assert all(body not in json.dumps(a.data, default=str) for a in artifacts)


def test_deleting_the_newest_run_is_caught_by_the_log_only(signed, tmp_path):
    copy = copy_of(signed, tmp_path)
    with duckdb.connect(copy.db, read_only=True) as conn:
        ((newest,),) = conn.execute("SELECT run_id FROM collection_runs WHERE seq = 2").fetchall()
    delete_run(copy.db, newest)
    alone = cli("verify", "--db", copy.db)
    assert alone.exit_code == 0 and "cannot be seen without --anchor-log" in alone.stdout
    caught = cli("verify", "--db", copy.db, "--anchor-log", copy.log)
    assert caught.exit_code == 6, caught.output
    assert f"first bad run: seq 2 {newest}" in caught.stderr
    assert "missing from the evidence file" in caught.stderr


def test_expect_head_fails_when_its_run_is_gone_and_counts_newer_runs(signed, tmp_path):
    copy = copy_of(signed, tmp_path)
    with duckdb.connect(copy.db, read_only=True) as conn:
        (first, first_hash), (newest, newest_hash) = conn.execute(
            "SELECT run_id, run_hash FROM collection_runs ORDER BY seq"
        ).fetchall()
    older = cli("verify", "--db", copy.db, "--expect-head", first_hash)
    assert older.exit_code == 0, older.output
    assert f"the expected head is run {first} (seq 1), but 1 newer run(s) follow it" in (
        older.stdout
    )
    delete_run(copy.db, newest)
    truncated = cli("verify", "--db", copy.db, "--expect-head", newest_hash)
    assert truncated.exit_code == 6, truncated.output
    assert f"is the run_hash of no run in the file (its head is seq 1 {first})" in (
        truncated.stderr
    )


def test_a_wrong_public_key_fails_naming_the_first_run(signed, tmp_path):
    made = cli("keygen", "--out", str(tmp_path / "other"))
    assert made.exit_code == 0, made.output
    result = cli(
        "verify", "--db", signed.db, "--public-key",
        str(tmp_path / "other" / "bb2sv-signing-key.pub.pem"),
    )  # fmt: skip
    assert result.exit_code == 6, result.output
    assert result.stderr.startswith("INTEGRITY FAILURE: first bad run: seq 1 "), result.stderr
    assert "which is none of the --public-key keys" in result.stderr


def test_a_replaced_view_fails_verify(signed, tmp_path):
    copy = copy_of(signed, tmp_path)
    with duckdb.connect(copy.db) as conn:
        conn.execute("CREATE OR REPLACE VIEW findings AS SELECT 1 AS nothing WHERE false")
    result = cli("verify", "--db", copy.db)
    assert result.exit_code == 6
    assert "catalog: view findings differs from the definition shipped" in result.stderr


def test_bad_references_are_clear_errors(signed, tmp_path):
    bad_head = cli("verify", "--db", signed.db, "--expect-head", "abc123")
    assert bad_head.exit_code == 2 and "64 hex digits" in bad_head.output
    no_log = cli("verify", "--db", signed.db, "--anchor-log", str(tmp_path / "none.jsonl"))
    assert no_log.exit_code == 3 and "No anchor log at" in no_log.stderr
    private = cli("verify", "--db", signed.db, "--public-key", str(signed.private))
    assert private.exit_code == 3 and "is a private key" in private.stderr
    assert signed.private.read_text().splitlines()[1] not in private.output
    upper = cli("verify", "--db", signed.db, "--expect-head", head_of(signed.db).upper())
    assert upper.exit_code == 0, upper.output


def test_a_bad_signing_key_stops_collect_before_anything_is_written(tmp_path, emu):
    (tmp_path / "key.pem").write_text("not a key\n")
    result = cli(
        "collect", "--workspace", "acme", "--db", str(tmp_path / "e.duckdb"),
        "--reports-dir", str(tmp_path / "r"),
        env={"BITBUCKET_API_URL": emu.base_url, "BITBUCKET_TOKEN": TOKEN,
             "BB2SV_SIGNING_KEY": str(tmp_path / "key.pem")},
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "is not an unencrypted Ed25519 private key" in result.stderr
    assert not (tmp_path / "e.duckdb").exists()


def test_the_key_file_and_the_secret_block_sign_alike_into_the_given_log(signed):
    lines = [json.loads(line) for line in Path(signed.log).read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2]
    assert lines[0]["key_id"] == lines[1]["key_id"] and lines[1]["signature"]
    assert not (signed.root / "r" / "anchors.jsonl").exists()


def test_verify_report_checks_files_then_the_evidence(signed, tmp_path):
    copy = copy_of(signed, tmp_path)
    manifest = copy.manifests[-1]
    assert cli("verify-report", str(manifest)).exit_code == 0
    ok = cli("verify-report", str(manifest), "--db", copy.db)
    assert ok.exit_code == 0, ok.output
    assert "building the report again from the evidence gives the same files" in ok.stdout

    document = json.loads(manifest.read_bytes())
    csv_entry = next(item for item in document["files"] if item["name"].endswith(".csv"))
    csv_path = manifest.parent / csv_entry["name"]
    csv_path.write_text(csv_path.read_text().replace("disabled", "enabled"))
    changed = cli("verify-report", str(manifest))
    assert changed.exit_code == 6 and f"{csv_entry['name']} has changed" in changed.stderr

    # The editor rewrites the manifest to match: only the evidence can tell.
    from tasks.canonical import sha256_hex

    csv_entry["sha256"] = sha256_hex(csv_path.read_bytes())
    csv_entry["bytes"] = csv_path.stat().st_size
    manifest.write_text(json.dumps(document))
    assert cli("verify-report", str(manifest)).exit_code == 0
    caught = cli("verify-report", str(manifest), "--db", copy.db)
    assert caught.exit_code == 6, caught.output
    assert f"{csv_entry['name']} differs from the report the evidence gives" in caught.stderr


def test_verify_report_refuses_what_is_not_a_manifest(signed, tmp_path):
    html = next(Path(signed.manifests[-1].parent).glob("*.html"))
    result = cli("verify-report", str(html))
    assert result.exit_code == 3 and "is not a bb2sv report manifest" in result.stderr
    missing = cli("verify-report", str(tmp_path / "nope.manifest.json"))
    assert missing.exit_code == 3 and "Cannot read the manifest" in missing.stderr


def test_query_is_sandboxed_from_the_command_line(signed):
    result = cli("query", "SELECT content FROM read_text('/etc/passwd')", "--db", signed.db)
    assert result.exit_code == 2 and "sandboxed" in result.stderr
    assert "root:" not in result.output
    copy = cli("query", "COPY collection_runs TO '/tmp/bb2sv-exfil.csv'", "--db", signed.db)
    assert copy.exit_code == 2 and not Path("/tmp/bb2sv-exfil.csv").exists()


def test_daily_report_writes_a_stored_runs_report_again(signed, tmp_path):
    """A collection stopped after storing a run, before its report, said to run the
    collection again: `daily-report` writes that run's report from the evidence alone, the
    very files the collection would have written."""
    copy = copy_of(signed, tmp_path)
    (run_id,) = (
        duckdb.connect(copy.db, read_only=True)
        .execute("SELECT run_id FROM collection_runs ORDER BY seq LIMIT 1")
        .fetchone()
    )
    written = cli("daily-report", run_id, "--db", copy.db, "--reports-dir", str(tmp_path / "n"))
    assert written.exit_code == 0, written.output
    (manifest,) = (tmp_path / "n").rglob("*.manifest.json")
    (original,) = [m for m in copy.manifests if m.name == manifest.name]
    assert manifest.read_bytes() == original.read_bytes()
    again = cli("daily-report", run_id, "--db", copy.db, "--reports-dir", str(tmp_path / "n"))
    assert again.exit_code == 0, "the same files again: left alone"
    unknown = cli("daily-report", "no-such-run", "--db", copy.db, "--reports-dir", str(tmp_path))
    assert unknown.exit_code == 3 and "no-such-run" in unknown.output


def test_a_stopped_collection_says_what_it_stored_and_what_is_missing():
    import dataclasses

    from bb2sv.cli import stop_summary
    from flows.outcomes import Collection, WorkspaceOutcome
    from tasks.vocabulary import ErrorKind, RunStatus

    def outcome(workspace, status, run_id, report_dir):
        kind = None if status == RunStatus.COMPLETE else ErrorKind.STOPPED
        return WorkspaceOutcome(workspace, status, run_id, "h", 3, None, kind, None, report_dir)

    forbidden = outcome("epsilon", RunStatus.FAILED, "r-eps", "reports/z")
    spooled = outcome("zeta", RunStatus.COMPLETE, "", None)
    result = Collection(
        [
            outcome("alpha", RunStatus.COMPLETE, "r-alpha", "reports/x"),
            outcome("beta", RunStatus.COMPLETE, "r-beta", None),
            outcome("gamma", RunStatus.FAILED, "r-gamma", "reports/y"),
            dataclasses.replace(forbidden, error_kind=ErrorKind.PERMISSION),
            dataclasses.replace(spooled, spooled="e.duckdb.spool/x.json"),
        ],
        stopped_by="SIGTERM",
        not_started=("delta",),
    )
    assert stop_summary(result) == (
        "stored whole: alpha, beta; stopped and stored as failed runs: gamma; stored, not "
        "whole for another reason (see above): epsilon; kept in the spool, stored by the next "
        "collection: zeta; not started: delta; daily report not written (write it with `bb2sv "
        "daily-report RUN_ID`): r-beta. Run the collection again."
    )
