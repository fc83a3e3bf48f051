"""Every report names the key that signed its runs (its fingerprint, the key id), or says
"unsigned", in each format with a header (Markdown, HTML, JSON) and in its manifest."""

from __future__ import annotations

import json
from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from tasks.evidence.keys import generate_key_pair, signer_from_env
from tasks.evidence.store import EvidenceStore
from tasks.report import write_daily_report, write_period_report
from tasks.report.verify_report import verify_report

START = date(2026, 9, 1)


@pytest.fixture(scope="module")
def reports(tmp_path_factory, build) -> SimpleNamespace:
    """Day 1 unsigned, days 2-3 signed; the daily reports of days 1 and 3 and the period's."""
    root = tmp_path_factory.mktemp("signed-reports")
    pair = generate_key_pair(root / "keys")
    signer = signer_from_env({"BB2SV_SIGNING_KEY": str(pair.private)})
    members = [build.member("alice", True, "owner"), build.member("bob", False)]
    with EvidenceStore.open(root / "evidence.duckdb") as store:
        runs = [
            build.record(
                store, "acme", START + timedelta(days=n), members, signer=signer if n else None
            )
            for n in range(3)
        ]
        unsigned = write_daily_report(store.conn, runs[0], root / "r")
        signed = write_daily_report(store.conn, runs[2], root / "r")
        period = write_period_report(store.conn, "acme", START, date(2026, 9, 3), root / "r")
    return SimpleNamespace(
        db=root / "evidence.duckdb", key_id=pair.key_id, runs=runs,
        unsigned=unsigned, signed=signed, period=period,
    )  # fmt: skip


def text_of(bundle, kind: str) -> str:
    return bundle.files[kind].read_text("utf-8")


def test_a_signed_runs_daily_report_shows_the_fingerprint_in_every_header(reports):
    key = reports.key_id
    assert f"Signing key fingerprint: {key}\n" in text_of(reports.signed, "md")
    assert f'Signing key fingerprint: <span class="mono">{key}</span>' in text_of(
        reports.signed, "html"
    )
    document = json.loads(text_of(reports.signed, "json"))
    assert document["signing_key_fingerprint"] == key
    assert document["run"]["signing_key_id"] == key


def test_an_unsigned_runs_daily_report_says_unsigned(reports):
    assert "Signing key fingerprint: unsigned\n" in text_of(reports.unsigned, "md")
    assert '<span class="mono">unsigned</span>' in text_of(reports.unsigned, "html")
    assert json.loads(text_of(reports.unsigned, "json"))["signing_key_fingerprint"] == "unsigned"
    assert reports.key_id not in text_of(reports.unsigned, "md")


def test_the_period_report_counts_runs_by_signing_key(reports):
    line = f"{reports.key_id} (2 runs), unsigned (1 runs)"
    assert f"Signing key fingerprint: {line}\n" in text_of(reports.period, "md")
    assert line in text_of(reports.period, "html")
    assert json.loads(text_of(reports.period, "json"))["signing_key_fingerprints"] == [
        {"fingerprint": reports.key_id, "runs": 2},
        {"fingerprint": "unsigned", "runs": 1},
    ]


def test_manifests_carry_the_signature_and_verify_report_checks_it(reports, tmp_path):
    manifest = json.loads(reports.signed.manifest_path.read_bytes())
    assert manifest["signing_key_fingerprint"] == reports.key_id and manifest["signature"]
    assert json.loads(reports.unsigned.manifest_path.read_bytes())["signature"] is None
    with EvidenceStore.open(reports.db, read_only=True) as store:
        assert verify_report(reports.signed.manifest_path, store.conn).ok
        edited = tmp_path / reports.signed.manifest_path.name
        for path in reports.signed.files.values():  # the report files, unchanged
            (tmp_path / path.name).write_bytes(path.read_bytes())
        manifest["signature"] = manifest["signature"][::-1]
        edited.write_text(json.dumps(manifest))
        result = verify_report(edited, store.conn)
    assert not result.ok
    assert "the manifest's signature of run" in result.report()
