"""verify_report: files against the manifest, the manifest against the evidence (a rebuild)."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta

import pytest

from tasks.bitbucket.exceptions import ConfigError
from tasks.canonical import sha256_hex
from tasks.evidence.store import EvidenceStore
from tasks.report import write_daily_report, write_period_report
from tasks.report.escaping import markdown_as_written_by, md_escape
from tasks.report.render import render_json
from tasks.report.verify_report import verify_report
from tasks.version import __version__
from tasks.vocabulary import RunStatus

START = date(2026, 9, 1)


def people(day: date, member) -> list:
    return [member("alice", True, "owner"), member("bob", day >= date(2026, 9, 3))]


@pytest.fixture(scope="module")
def built(tmp_path_factory, build):
    """Five daily runs of `acme`, 2026-09-01 to 09-05."""
    path = tmp_path_factory.mktemp("verify-report") / "evidence.duckdb"
    with EvidenceStore.open(path) as store:
        runs = [
            build.record(store, "acme", START + timedelta(days=n), people(START, build.member))
            for n in range(5)
        ]
    return path, runs


@pytest.fixture(scope="module")
def stored_by_0_2(tmp_path_factory, build):
    """Three daily runs of `acme` stored by bb2sv 0.2.0, as an evidence file from before
    0.3 holds them: (its path, the run ids)."""
    path = tmp_path_factory.mktemp("stored-by-0.2") / "evidence.duckdb"
    with EvidenceStore.open(path) as store:
        runs = [
            build.record(
                store,
                "acme",
                START + timedelta(days=n),
                people(START, build.member),
                tool_version="0.2.0",
            )  # fmt: skip
            for n in range(3)
        ]
    return path, runs


@pytest.fixture
def evidence(built, tmp_path):
    path, runs = built
    copy = tmp_path / "evidence.duckdb"
    shutil.copyfile(path, copy)  # one test adds a run
    return copy, runs


def rewrite_consistently(manifest, name: str, old: str, new: str) -> None:
    """Edit a report file and its manifest entry so that they agree again."""
    path = manifest.parent / name
    path.write_bytes(path.read_bytes().replace(old.encode(), new.encode()))
    document = json.loads(manifest.read_bytes())
    entry = next(item for item in document["files"] if item["name"] == name)
    entry["sha256"], entry["bytes"] = sha256_hex(path.read_bytes()), path.stat().st_size
    manifest.write_text(json.dumps(document))


def test_a_period_report_rebuilds_byte_for_byte(evidence, tmp_path):
    path, _ = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        bundle = write_period_report(store.conn, "acme", START, date(2026, 9, 4), tmp_path / "r")
        result = verify_report(bundle.manifest_path, store.conn)
    assert result.ok, result.report()
    assert result.files == len(bundle.files) and "gives the same files" in result.report()


def test_an_edited_period_report_is_caught_only_with_the_evidence(evidence, tmp_path):
    path, _ = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        bundle = write_period_report(store.conn, "acme", START, date(2026, 9, 4), tmp_path / "r")
    markdown = bundle.files["md"].name
    rewrite_consistently(bundle.manifest_path, markdown, "acme", "acne")
    assert verify_report(bundle.manifest_path).ok
    with EvidenceStore.open(path, read_only=True) as store:
        result = verify_report(bundle.manifest_path, store.conn)
    assert not result.ok
    assert f"{markdown} differs from the report the evidence gives" in result.report()


def test_a_window_that_gained_runs_is_built_as_it_was(evidence, tmp_path, build):
    """A period report whose window gained runs since it was written is built again as the
    evidence was before the first of them was stored, and verifies. An edited one that
    names an earlier run of its window (to escape the comparison) differs."""
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        bundle = write_period_report(store.conn, "acme", START, date(2026, 9, 30), tmp_path / "r")
        edited = write_period_report(store.conn, "acme", START, date(2026, 9, 30), tmp_path / "e")
        first = store.conn.execute(
            "SELECT run_id, run_hash FROM collection_runs WHERE run_id = ?", [runs[0]]
        ).fetchone()
    markdown = edited.files["md"].name
    rewrite_consistently(edited.manifest_path, markdown, "bob", "BOBX")
    document = json.loads(edited.manifest_path.read_bytes())
    document["run_id"], document["run_hash"] = first
    edited.manifest_path.write_bytes(render_json(document))
    with EvidenceStore.open(path) as store:
        added = build.record(store, "acme", date(2026, 9, 20), people(START, build.member))
        build.record(store, "other", date(2026, 9, 21), people(START, build.member))
    with EvidenceStore.open(path, read_only=True) as store:
        gained = verify_report(bundle.manifest_path, store.conn)
        earlier_run_named = verify_report(edited.manifest_path, store.conn)
        (runs_now,) = store.conn.execute("SELECT count(*) FROM collection_runs").fetchone()
    assert gained.ok, gained.report()
    assert f"evidence as it was before run {added} was stored" in gained.report()
    assert not earlier_run_named.ok
    assert f"{markdown} differs from the report the evidence gives" in earlier_run_named.report()
    assert f"the manifest says run_id = '{runs[0]}'" in earlier_run_named.report()
    assert runs_now == len(runs) + 2, "the views that hid the later runs are gone"


def test_runs_stored_before_the_report_stay_in_its_rebuild(evidence, tmp_path, build):
    """A period report counts its window's runs that did not complete, but its manifest
    lists only the complete ones: a report written after a failed run, whose window then
    gained another, is built again as the evidence was before the later one was stored
    (and the failed run is in it). Before, it was built from the evidence as it is, and
    failed as edited."""
    path, runs = evidence
    with EvidenceStore.open(path) as store:
        build.record(
            store, "acme", date(2026, 9, 5), people(START, build.member), hour=9,
            status=RunStatus.FAILED,
        )  # fmt: skip
        build.record(store, "other", date(2026, 9, 6), people(START, build.member))
    with EvidenceStore.open(path, read_only=True) as store:
        bundle = write_period_report(store.conn, "acme", START, date(2026, 9, 30), tmp_path / "r")
    assert json.loads(bundle.manifest_path.read_bytes())["run_ids"] == runs
    with EvidenceStore.open(path) as store:
        late = build.record(
            store, "acme", date(2026, 9, 6), people(START, build.member), status=RunStatus.FAILED
        )
    with EvidenceStore.open(path, read_only=True) as store:
        result = verify_report(bundle.manifest_path, store.conn)
    assert result.ok, result.report()
    assert f"as it was before run {late} was stored" in result.report()


def test_a_report_that_leaves_out_an_earlier_stored_run_is_edited(evidence, tmp_path):
    """Taking a run out of a report's run_ids is no way to be built as of an earlier state:
    the evidence is append-only, so every run stored before one the report lists was there
    when it was written."""
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        bundle = write_period_report(store.conn, "acme", START, date(2026, 9, 30), tmp_path / "r")
    document = json.loads(bundle.manifest_path.read_bytes())
    document["run_ids"].remove(runs[1])
    bundle.manifest_path.write_bytes(render_json(document))
    with EvidenceStore.open(path, read_only=True) as store:
        result = verify_report(bundle.manifest_path, store.conn)
    assert result.problems == [
        f"the report lists run {runs[-1]} of its window but not run {runs[1]}, which was "
        "stored before it: a run was taken out of the report."
    ]


def test_a_manifest_naming_another_run_hash_or_a_deleted_run(evidence, tmp_path, build):
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        bundle = write_daily_report(store.conn, runs[-1], tmp_path / "r")
    document = json.loads(bundle.manifest_path.read_bytes())
    document["run_hash"] = "0" * 64
    bundle.manifest_path.write_text(json.dumps(document))
    with EvidenceStore.open(path, read_only=True) as store:
        result = verify_report(bundle.manifest_path, store.conn)
    assert f"has run_hash {'0' * 64}, the evidence file" in result.report()
    document["run_id"] = "20260905T060000Z-acme-deadbeef"
    bundle.manifest_path.write_text(json.dumps(document))
    with EvidenceStore.open(path, read_only=True) as store:
        result = verify_report(bundle.manifest_path, store.conn)
    assert "run 20260905T060000Z-acme-deadbeef of the manifest is not in the evidence file" in (
        result.report()
    )


def test_names_that_leave_the_folder_are_refused(evidence, tmp_path):
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        bundle = write_daily_report(store.conn, runs[0], tmp_path / "r")
    document = json.loads(bundle.manifest_path.read_bytes())
    document["files"].append({"name": "../../../etc/passwd", "sha256": "0" * 64})
    bundle.manifest_path.write_text(json.dumps(document))
    result = verify_report(bundle.manifest_path)
    assert result.problems == [
        "the manifest lists '../../../etc/passwd', which is not a report file name"
    ]
    (tmp_path / "junk.json").write_text('{"schema": "something-else"}')
    with pytest.raises(ConfigError, match="is not a bb2sv report manifest"):
        verify_report(tmp_path / "junk.json")


def test_a_report_file_swapped_for_another_days_is_named(evidence, tmp_path):
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        day2, day5 = (write_daily_report(store.conn, runs[n], tmp_path / "r") for n in (1, 4))
    assert verify_report(day5.manifest_path).ok
    # A genuine report, written by bb2sv and listed in its own manifest, put in another's place.
    day5.files["json"].write_bytes(day2.files["json"].read_bytes())
    result = verify_report(day5.manifest_path)
    assert result.problems == [
        f"{day5.files['json'].name} has changed since it was written (its SHA-256 differs)"
    ]


@pytest.mark.parametrize(
    ("kind", "edit", "said"),
    [
        ("daily", {"run_id": 123}, "its run_id is not text"),
        ("daily", {"run_id": None}, "it names no run"),
        ("period", {"run_ids": 5}, "its run_ids are not a list of run ids"),
        ("daily", {"files": ["x.md"]}, "its files are not all a name with a SHA-256"),
        ("daily", {"kind": None}, "its kind is None, neither 'daily' nor 'period'"),
        ("period", {"start": None}, "its start and end are not dates"),
        ("period", {"end": "2026-02-30"}, "its start and end are not dates"),
    ],
)
def test_a_manifest_of_another_shape_is_refused_before_it_is_used(
    evidence, tmp_path, kind, edit, said
):
    """An edited manifest is input: each of these crashed the check (TypeError,
    AttributeError, a DuckDB conversion error) before it said anything."""
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        if kind == "daily":
            bundle = write_daily_report(store.conn, runs[0], tmp_path / "r")
        else:
            bundle = write_period_report(
                store.conn, "acme", START, date(2026, 9, 4), tmp_path / "r"
            )
        document = json.loads(bundle.manifest_path.read_bytes())
        bundle.manifest_path.write_text(json.dumps({**document, **edit}))
        with pytest.raises(ConfigError, match=f"{bundle.manifest_path.name}: {said}"):
            verify_report(bundle.manifest_path, store.conn)


def test_a_listed_file_that_cannot_be_read_is_named(evidence, tmp_path):
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        bundle = write_daily_report(store.conn, runs[0], tmp_path / "r")
    markdown = bundle.files["md"]
    markdown.unlink()
    # A regular file whose read fails even for root (EIO): chmod 000 would not stop root.
    markdown.symlink_to("/proc/self/mem")
    result = verify_report(bundle.manifest_path)
    assert f"{markdown.name} cannot be read (Input/output error)" in result.problems


def set_tool_version(manifest, version: str | None) -> None:
    """Name another bb2sv in the manifest, written as bb2sv writes manifests (None: none, as
    0.2.0 and earlier wrote them)."""
    document = json.loads(manifest.read_bytes())
    if version is None:
        del document["tool_version"]
    else:
        document["tool_version"] = version
    manifest.write_bytes(render_json(document))


def test_a_manifest_names_the_bb2sv_that_wrote_it(evidence, tmp_path):
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        bundle = write_daily_report(store.conn, runs[2], tmp_path / "r")
    assert json.loads(bundle.manifest_path.read_bytes())["tool_version"] == __version__


def test_a_report_bb2sv_0_2_wrote_alike_verifies_but_only_byte_for_byte(stored_by_0_2, tmp_path):
    path, runs = stored_by_0_2
    with EvidenceStore.open(path, read_only=True) as store:
        with markdown_as_written_by(None):  # as bb2sv 0.2 wrote it
            bundle = write_daily_report(store.conn, runs[2], tmp_path / "r")
        set_tool_version(bundle.manifest_path, None)
        older = verify_report(bundle.manifest_path, store.conn)
        # The same manifest reformatted, or with a "files" key before the real one (a JSON
        # reader that keeps the first would see other hashes): not what bb2sv writes.
        written = bundle.manifest_path.read_text()
        bundle.manifest_path.write_text(json.dumps(json.loads(written)))
        reformatted = verify_report(bundle.manifest_path, store.conn)
        fake = '{"files": [{"name": "x.md", "sha256": "' + "0" * 64 + '"}],' + written[1:]
        bundle.manifest_path.write_text(fake)
        doubled = verify_report(bundle.manifest_path, store.conn)
    assert older.ok, older.report()
    assert "gives the same files (written by bb2sv 0.2.0 or earlier" in older.report()
    for result in (reformatted, doubled):
        assert not result.ok and "written by bb2sv 0.2.0 or earlier" in result.report()
        assert "(the manifest differs)" in result.report()


def test_a_report_another_bb2sv_wrote_otherwise_fails_naming_what_differs(evidence, tmp_path):
    """Reports are a function of the evidence and of the bb2sv that renders them: a report
    whose files differ from what this bb2sv builds, written by another one, fails naming the
    files, without calling them edited (the versions may render them otherwise); with this
    bb2sv's version in its manifest, the same difference is an edit."""
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        bundle = write_daily_report(store.conn, runs[2], tmp_path / "r")
        csv_name, markdown = bundle.files["csv"].name, bundle.files["md"].name
        rewrite_consistently(bundle.manifest_path, csv_name, "alice", "alise")
        rewrite_consistently(bundle.manifest_path, markdown, "Two-step", "Two step")
        set_tool_version(bundle.manifest_path, "0.9.1")
        older = verify_report(bundle.manifest_path, store.conn)
        set_tool_version(bundle.manifest_path, "9" * 500)
        hostile = verify_report(bundle.manifest_path, store.conn)
        set_tool_version(bundle.manifest_path, __version__)
        same = verify_report(bundle.manifest_path, store.conn)
    assert not older.ok
    assert "written by bb2sv 0.9.1, and this bb2sv" in older.report()
    assert f"({csv_name}, {markdown} differ)" in older.report()
    assert "Check it with the bb2sv that wrote it" in older.report()
    assert "changed after they were written" not in older.report()
    assert not hostile.ok and "9" * 41 not in hostile.report()  # cut, one line
    assert not same.ok
    assert f"{markdown} differs from the report the evidence gives" in same.report()
    assert f"{csv_name} differs from the report the evidence gives" in same.report()


def test_a_manifest_whose_tool_version_is_not_text_is_refused(evidence, tmp_path):
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        bundle = write_daily_report(store.conn, runs[2], tmp_path / "r")
    document = json.loads(bundle.manifest_path.read_bytes())
    document["tool_version"] = {"major": 0}
    bundle.manifest_path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="its tool_version is not text"):
        verify_report(bundle.manifest_path)


def test_a_report_bb2sv_0_2_wrote_is_built_again_as_0_2_escaped_it(stored_by_0_2, tmp_path):
    """bb2sv 0.3 escapes autolinks in Markdown; a report 0.2 wrote (its manifest names no
    version) is built again with 0.2's escaping, so it still verifies after the upgrade.
    The same files claimed by this version do not."""
    path, runs = stored_by_0_2
    with EvidenceStore.open(path, read_only=True) as store:
        with markdown_as_written_by(None):
            older = write_daily_report(store.conn, runs[2], tmp_path / "old")
        current = write_daily_report(store.conn, runs[2], tmp_path / "new")
        assert older.files["md"].read_bytes() != current.files["md"].read_bytes()
        set_tool_version(older.manifest_path, None)
        as_written = verify_report(older.manifest_path, store.conn)
        set_tool_version(older.manifest_path, __version__)
        claimed_by_this_one = verify_report(older.manifest_path, store.conn)
    assert as_written.ok, as_written.report()
    assert "written by bb2sv 0.2.0 or earlier" in as_written.report()
    assert not claimed_by_this_one.ok
    assert f"{older.files['md'].name} differs" in claimed_by_this_one.report()


@pytest.mark.parametrize("claim", [None, "0.2.0", "0.2", "00.2", "0.2.9", "0.2.0\n", "0.1.0"])
def test_a_report_of_a_newer_run_cannot_claim_the_old_escaping(evidence, tmp_path, claim):
    """Manifests name their bb2sv since 0.3.0, and no report is older than the bb2sv that
    stored its run: a report of a run stored by this bb2sv that names an older one (or
    none), say to be rebuilt with 0.2's escaping (which lets GitHub link a display name's
    URLs), was edited, even when its files are exactly what 0.2 would have written."""
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        with markdown_as_written_by(None):
            downgraded = write_daily_report(store.conn, runs[2], tmp_path / "r")
        set_tool_version(downgraded.manifest_path, claim)
        result = verify_report(downgraded.manifest_path, store.conn)
    assert not result.ok
    if claim is None:
        assert f"was stored by bb2sv {__version__}: a report is never older" in result.report()
    else:
        assert "manifests name their bb2sv only since 0.3.0" in result.report()


def test_the_escaping_of_a_block_ends_with_it_even_on_an_error():
    with pytest.raises(RuntimeError), markdown_as_written_by(None):
        assert md_escape("a@b") == "a@b"
        raise RuntimeError("inside")
    assert md_escape("a@b") == "a\u2060\\@b"


def test_runs_stored_late_before_a_report_do_not_fail_it(evidence, tmp_path, build):
    """A run that started before a report's run (or window) but was stored after the report
    was written (spooled, stored late) changes what the evidence gives: a daily report's
    previous complete run, a period's findings first seen before the window. The report is
    built again as the evidence was before that run was stored."""
    path, runs = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        daily = write_daily_report(store.conn, runs[-1], tmp_path / "d")
        period = write_period_report(store.conn, "acme", START, date(2026, 9, 30), tmp_path / "p")
    with EvidenceStore.open(path) as store:
        before_window = build.record(
            store, "acme", date(2026, 8, 31), people(START, build.member), hour=23
        )
        before_run = build.record(
            store, "acme", date(2026, 9, 4), people(START, build.member), hour=12
        )
    with EvidenceStore.open(path, read_only=True) as store:
        checked = [verify_report(b.manifest_path, store.conn) for b in (daily, period)]
    assert all(result.ok for result in checked), [r.report() for r in checked]
    # Both late runs change the daily report (bob's finding is first seen on 08-31 now).
    assert before_run and all(
        f"as it was before run {before_window} was stored" in result.report() for result in checked
    )
