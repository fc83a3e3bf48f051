"""`bb2sv verify-report`: a report's files against its manifest, and (with the evidence file)
the manifest against the evidence it was built from.

    result = verify_report(Path("reports/2026-11-27/acme/daily-….manifest.json"))
    result = verify_report(manifest_path, store.conn)    # a read-only EvidenceStore's connection
    result.ok, result.report()

Without the evidence file, only the files are checked against the manifest, and whoever
edits a report can rewrite its manifest too. With it: the manifest's runs must be in the
file with the same run_hash (and signature), and the report is built again from the
evidence (reports are a pure function of it and of the bb2sv that renders them) and must
give the very same manifest, byte for byte, so a changed figure shows even when the
manifest was rewritten to match. A report another bb2sv wrote (its manifest's
`tool_version`; none before 0.3.0) passes only when this one builds the same bytes but for
that name (Markdown escaped as that version did: `markdown_as_written_by`); otherwise it
fails naming the files that differ, which may be the versions' rendering or an edit. A
period report whose window gained runs since is built again as the evidence was before the
first of them was stored (`evidence_then`); one that leaves out a run stored before a run
it lists was edited. Run `bb2sv verify` for the evidence file itself.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import orjson

from tasks.bitbucket.exceptions import ConfigError
from tasks.canonical import sha256_hex, visible_controls
from tasks.report import write_daily_report, write_period_report
from tasks.report.daily import load_run
from tasks.report.escaping import markdown_as_written_by
from tasks.report.evidence_then import evidence_before, states_written_from
from tasks.report.manifest import MANIFEST_SCHEMA
from tasks.report.output import ReportError
from tasks.report.render import render_json
from tasks.version import __version__, release_of

__all__ = ["ReportVerification", "verify_report"]

_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # what report files are called


@dataclass(slots=True)
class ReportVerification:
    manifest: Path
    files: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        if self.ok:
            lines = [f"OK: {self.files} file(s) match {self.manifest.name}."]
        else:
            lines = [f"FAILED: {self.manifest}: {len(self.problems)} problem(s):"]
            lines += [f"  - {problem}" for problem in self.problems]
        lines += [f"Note: {note}" for note in self.notes]
        # Run ids and names come from the manifest: each stays on its line, escapes visible.
        return "\n".join(visible_controls(line) for line in lines)


def verify_report(
    manifest_path: Path, conn: duckdb.DuckDBPyConnection | None = None
) -> ReportVerification:
    """Check the files, then (with `conn`) the runs and a rebuild from the evidence."""
    given = _read(manifest_path)
    document = _parse(given, manifest_path)
    result = ReportVerification(manifest_path, files=len(document["files"]))
    result.problems += _file_problems(manifest_path.parent, document["files"])
    if conn is None:
        result.notes.append(
            "checked against the manifest only; pass --db to check the manifest against the "
            "evidence (whoever edits a report can rewrite its manifest too)."
        )
        return result
    run_problems = _run_problems(conn, document)
    result.problems += run_problems
    if not run_problems:
        _compare_rebuild(conn, document, given, manifest_path.name, result)
    return result


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the manifest {path} ({exc.strerror}). Pass the *.manifest.json "
            "written beside the report."
        ) from None


def _parse(given: bytes, path: Path) -> dict[str, Any]:
    try:
        document = orjson.loads(given)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict) or document.get("schema") != MANIFEST_SCHEMA:
        raise ConfigError(
            f"{path} is not a bb2sv report manifest ({MANIFEST_SCHEMA}). Pass the "
            "*.manifest.json written beside the report."
        )
    if not isinstance(document.get("files"), list):
        raise ConfigError(f"{path} lists no files; it is not a complete bb2sv report manifest.")
    wrong = _shape_problem(document)
    if wrong is not None:
        raise ConfigError(
            f"{path}: {wrong}, so it cannot be checked. It was edited, or it is not a bb2sv "
            "report manifest; pass the *.manifest.json written beside the report."
        )
    return document


def _shape_problem(document: dict[str, Any]) -> str | None:
    """What in a manifest is not what bb2sv writes (None: nothing), before anything is read
    by it: a manifest is input, and an edited one must not crash the check."""
    kind = document.get("kind")
    if kind not in ("daily", "period"):
        return f"its kind is {kind!r}, neither 'daily' nor 'period'"
    if not isinstance(document.get("workspace"), str):
        return "it names no workspace"
    for key in ("run_id", "run_hash", "tool_version"):
        if not isinstance(document.get(key), str | None):
            return f"its {key} is not text"
    if kind == "daily" and document.get("run_id") is None:
        return "it names no run"
    run_ids = document.get("run_ids")
    if run_ids is not None and not (
        isinstance(run_ids, list) and all(isinstance(run_id, str) for run_id in run_ids)
    ):
        return "its run_ids are not a list of run ids"
    if not all(
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("sha256"), str)
        for entry in document["files"]
    ):
        return "its files are not all a name with a SHA-256"
    if kind == "period":
        try:
            date.fromisoformat(document.get("start")), date.fromisoformat(document.get("end"))
        except (TypeError, ValueError):
            return "its start and end are not dates (YYYY-MM-DD)"
    return None


def _file_problems(folder: Path, entries: list[Any]) -> list[str]:
    problems = []
    for entry in entries:
        name = str(entry.get("name", "")) if isinstance(entry, dict) else ""
        if not _PLAIN_NAME.match(name):
            problems.append(f"the manifest lists {name!r}, which is not a report file name")
            continue
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(f"{name} cannot be read ({exc.strerror})")
            continue
        if sha256_hex(data) != entry.get("sha256"):
            problems.append(f"{name} has changed since it was written (its SHA-256 differs)")
    return problems


def _run_problems(conn: duckdb.DuckDBPyConnection, document: dict[str, Any]) -> list[str]:
    problems = []
    if document.get("run_id") is not None:
        try:
            run = load_run(conn, document["run_id"])[0]
        except ReportError:
            return [f"run {document['run_id']} of the manifest is not in the evidence file"]
        if run.run_hash != document.get("run_hash"):
            problems.append(
                f"the manifest's run {run.run_id} has run_hash {document.get('run_hash')}, "
                f"the evidence file {run.run_hash} (one of them was rewritten)"
            )
        # Manifests written before runs were signed carry no signature field.
        if "signature" in document and document["signature"] != run.signature:
            problems.append(
                f"the manifest's signature of run {run.run_id} is not the one stored in the "
                "evidence file (one of them was changed, or the run was re-signed)"
            )
    for run_id in document.get("run_ids") or []:
        try:
            load_run(conn, run_id)
        except ReportError:
            problems.append(f"run {run_id} covered by the report is not in the evidence file")
    return problems


def _compare_rebuild(
    conn: duckdb.DuckDBPyConnection,
    document: dict[str, Any],
    given: bytes,
    manifest_name: str,
    result: ReportVerification,
) -> None:
    impossible = _impossible_version(conn, document)
    if impossible is not None:
        result.problems.append(impossible)
        return
    states = states_written_from(conn, document)
    if isinstance(states, str):
        result.problems.append(states)
        return
    written_by = document.get("tool_version")
    first_again = None
    for before in states:
        built = _build_again(conn, document, result, before=before)
        if built is None:
            return
        rebuilt, name = built
        again = orjson.loads(rebuilt)
        first_again = first_again or again
        # As the version the manifest names would have written it: only its name may differ.
        expected = rebuilt if written_by == __version__ else _as_written_by(again, written_by)
        if expected == given and name == manifest_name:
            as_then = "" if before is None else f" as it was before run {before[0]} was stored"
            by = "" if written_by == __version__ else f" (written by {_version_text(written_by)})"
            result.notes.append(
                f"run {document['run_id']} is in the evidence file with the same run_hash, and "
                f"building the report again from the evidence{as_then} gives the same files{by}."
            )
            return
    again = first_again
    if written_by == __version__:
        result.problems += _differences(document, again)
        return
    differing = _differing_files(document, again)
    what = "the manifest differs"
    if differing:
        what = ", ".join(differing) + (" differ" if len(differing) > 1 else " differs")
    result.problems.append(
        f"it was written by {_version_text(written_by)}, and this bb2sv ({__version__}) "
        f"builds it otherwise from the same evidence ({what}): the versions' rendering or an "
        "edit. Check it with the bb2sv that wrote it."
    )


def _impossible_version(conn: duckdb.DuckDBPyConnection, document: dict[str, Any]) -> str | None:
    """Why the bb2sv a manifest names cannot have written it, if it cannot: manifests name
    their bb2sv since 0.3.0, and no report is older than the bb2sv that stored its run.
    (Otherwise a report could claim an old version to be rebuilt with its weaker escaping.)"""
    written_by = document.get("tool_version")
    claimed = release_of(written_by) if written_by is not None else (0, 2)
    if written_by is not None and claimed is not None and claimed < (0, 3):
        return (
            f"it names {_version_text(written_by)}, but manifests name their bb2sv only "
            "since 0.3.0: the manifest was edited."
        )
    row = conn.execute(
        "SELECT tool_version FROM collection_runs WHERE run_id = ?", [document["run_id"]]
    ).fetchone()
    stored_by = row[0] if row else None
    stored = release_of(stored_by)
    if claimed is not None and stored is not None and claimed < stored:
        return (
            f"it says it was written by {_version_text(written_by)}, but its run "
            f"{document['run_id']} was stored by {_version_text(stored_by)}: a report is "
            "never older than its run, so the manifest was edited."
        )
    return None


def _as_written_by(again: dict[str, Any], written_by: str | None) -> bytes:
    """The manifest this bb2sv made, as the version `written_by` names would have written
    it (none: before manifests named their bb2sv)."""
    document = dict(again)
    if written_by is None:
        del document["tool_version"]
    else:
        document["tool_version"] = written_by
    return render_json(document)


def _version_text(version: str | None) -> str:
    if version is None:
        return "bb2sv 0.2.0 or earlier"
    return "bb2sv " + (version if len(version) <= 40 else version[:40] + "…")


def _build_again(
    conn: duckdb.DuckDBPyConnection,
    document: dict[str, Any],
    result: ReportVerification,
    *,
    before: tuple[str, int] | None = None,
) -> tuple[bytes, str] | None:
    """(manifest bytes, manifest name) of the report built again from the evidence, its
    Markdown escaped as the bb2sv its manifest names did; None (a problem noted) if it
    cannot be built."""
    with tempfile.TemporaryDirectory(prefix="bb2sv-verify-report-") as folder:
        try:
            written_by = document.get("tool_version")
            with markdown_as_written_by(written_by), evidence_before(conn, before and before[1]):
                bundle = _rebuild(conn, document, Path(folder))
        except (ReportError, KeyError, ValueError) as exc:
            result.problems.append(f"the report cannot be built again from the evidence: {exc}")
            return None
        return bundle.manifest_path.read_bytes(), bundle.manifest_path.name


def _rebuild(conn: duckdb.DuckDBPyConnection, document: dict[str, Any], folder: Path):
    if document["kind"] == "daily":
        return write_daily_report(conn, document["run_id"], folder)
    start, end = date.fromisoformat(document["start"]), date.fromisoformat(document["end"])
    return write_period_report(conn, document["workspace"], start, end, folder)


def _differing_files(document: dict[str, Any], again: dict[str, Any]) -> list[str]:
    listed = {item.get("name"): item.get("sha256") for item in document["files"]}
    derived = {item["name"]: item["sha256"] for item in again["files"]}
    names = sorted(listed.keys() | derived.keys())
    return [name for name in names if listed.get(name) != derived.get(name)]


def _differences(document: dict[str, Any], again: dict[str, Any]) -> list[str]:
    problems = [
        f"{name} differs from the report the evidence gives (the report and its manifest "
        "were changed after they were written)"
        for name in _differing_files(document, again)
    ]
    problems += [
        f"the manifest says {key} = {document.get(key)!r}, the evidence gives {again.get(key)!r}"
        for key in sorted(again.keys() - {"files"})
        if document.get(key) != again.get(key)
    ]
    return problems or ["the manifest's bytes differ from the one the evidence gives"]
