"""`bb2sv verify`: everything that can be checked about an evidence file, in one result.

    result = verify_evidence(
        "evidence.duckdb",
        anchor_log="reports/anchors.jsonl",           # optional
        public_keys=["bb2sv-signing-key.pub.pem"],    # optional, repeatable
        expect_head="9f2c…",                          # optional: a run_hash recorded earlier
    )
    result.ok, result.first_bad_run_id, print(result.report())

What is checked: every hash and link of the chain and every raw page (`integrity`); the
file's views, macros and tables against the shipped ones (`catalog`); the signatures
(`signing`); the anchor log (`anchors`); that the expected head is still in the chain
(missing: a problem; followed by newer runs: a note saying how many).
From inside the file alone, deleting its newest runs, or recomputing the whole chain after
an edit, cannot be seen: the result's notes say which outside reference was not given.
Tampering with rows never raises (it is a problem in the result); a file whose tables were
dropped, renamed or retyped raises IntegrityError as it opens; a missing anchor log or an
unreadable key raises ConfigError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import duckdb

from tasks.bitbucket.exceptions import ConfigError
from tasks.canonical import utc_iso, visible_controls
from tasks.evidence.anchors import check_anchors, check_spooled, read_anchor_log
from tasks.evidence.catalog import catalog_problems
from tasks.evidence.connection import DEFAULT_LOCK_TIMEOUT_S, translate
from tasks.evidence.integrity import chain_problems
from tasks.evidence.keys import load_public_keys
from tasks.evidence.problems import RunProblem
from tasks.evidence.signing import ChainRun, check_signatures
from tasks.evidence.spool import still_spooled
from tasks.evidence.store import EvidenceStore

__all__ = ["HEAD_HASH", "EvidenceVerification", "verify_evidence"]

HEAD_HASH = re.compile(r"^[0-9a-f]{64}$")
_LISTED = 25  # problems printed in full; the rest are counted


@dataclass(slots=True)
class EvidenceVerification:
    runs_checked: int = 0
    problems: list[RunProblem] = field(default_factory=list)  # in chain order
    catalog: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.catalog

    @property
    def first_bad_run_id(self) -> str | None:
        return self.problems[0].run_id if self.problems else None

    def report(self) -> str:
        """The verdict first, then every problem (first bad run first), then the notes."""
        if self.ok:
            lines = [f"OK: {self.runs_checked} runs verified, chain intact."]
        else:
            lines = [self._verdict()]
            lines += [f"  - {_where(p)}: {p.what}" for p in self.problems[:_LISTED]]
            if len(self.problems) > _LISTED:
                lines.append(f"  … and {len(self.problems) - _LISTED} more problems.")
            lines += [f"  - catalog: {item}" for item in self.catalog]
        lines += [f"Note: {note}" for note in self.notes]
        # Run ids come from the file or the log, which an editor controls: a line break or
        # escape sequence in one must not start a line of its own or reach the terminal.
        return "\n".join(visible_controls(line) for line in lines)

    def _verdict(self) -> str:
        if not self.problems:
            return (
                f"FAILED: the file's views, macros or tables are not the shipped ones "
                f"({len(self.catalog)} difference(s)); its {self.runs_checked} runs verify."
            )
        total = len(self.problems) + len(self.catalog)
        return (
            f"FAILED: first bad run: {_where(self.problems[0])}. "
            f"{total} problem(s) over {self.runs_checked} runs:"
        )


def _where(problem: RunProblem) -> str:
    if problem.seq is not None:
        return f"seq {problem.seq} {problem.run_id}"
    return f"run {problem.run_id} (not stored)" if problem.run_id else "the file"


def verify_evidence(
    path: str | PathLike[str],
    *,
    anchor_log: str | PathLike[str] | None = None,
    public_keys: list[str] | None = None,
    expect_head: str | None = None,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    workers: int | None = None,
) -> EvidenceVerification:
    """Every check that the given references allow (see the module docstring)."""
    path = Path(path)
    # Bad references fail before the (possibly long) chain check.
    trusted = load_public_keys(public_keys) if public_keys else None
    log = read_anchor_log(Path(anchor_log)) if anchor_log is not None else None
    if expect_head is not None and not HEAD_HASH.match(expect_head):
        raise ConfigError(
            f"--expect-head must be a run_hash (64 hex digits), got {expect_head!r}. Take it "
            "from a report's manifest.json, the anchor log or the Prefect artifact."
        )
    with EvidenceStore.open(path, read_only=True, lock_timeout_s=lock_timeout_s) as store:
        try:
            chain = chain_problems(store.conn, path, workers)
            rows = store.conn.execute(
                "SELECT run_id, seq, run_hash, workspace, started_at FROM collection_runs "
                "ORDER BY seq"
            ).fetchall()
            runs = [ChainRun(run_id, seq, run_hash) for run_id, seq, run_hash, *_ in rows]
            signatures = check_signatures(store.conn, runs, trusted)
            catalog = catalog_problems(store.conn)
        except duckdb.Error as exc:
            raise translate(exc, path, action="verify") from None
    result = EvidenceVerification(runs_checked=chain.runs_checked, catalog=catalog)
    found = chain.problems + signatures.problems
    result.notes += signatures.notes
    if log is not None:
        anchors = check_anchors(runs, log, trusted)
        stored = {(workspace, utc_iso(started)) for *_, workspace, started in rows}
        found += anchors.problems + check_spooled(
            log, stored, lambda line: still_spooled(path, line.spool_file, line.sha256)
        )
        result.notes += anchors.notes
    if expect_head is not None:
        found += _head_problems(runs, expect_head, result.notes)
    # Stable sort: within a run, chain problems come before signature and anchor ones.
    result.problems = sorted(found, key=lambda p: (p.seq is None, p.seq or 0))
    if log is None and trusted is None and expect_head is None:
        result.notes.append(
            "only the file itself was checked: deleting its newest runs, or recomputing the "
            "whole chain after an edit, cannot be seen without --anchor-log, --public-key or "
            "--expect-head."
        )
    return result


def _head_problems(runs: list[ChainRun], expect_head: str, notes: list[str]) -> list[RunProblem]:
    match = [run for run in runs if run.run_hash == expect_head]
    if not match:
        head = f"its head is seq {runs[-1].seq} {runs[-1].run_id}" if runs else "it has no runs"
        return [
            RunProblem(
                "",
                None,
                f"the expected head {expect_head[:16]}… is the run_hash of no run in the file "
                f"({head}): the file was truncated or rewritten after that hash was recorded",
            )
        ]
    # Runs stored after the hash was recorded are no sign of tampering (collection goes on),
    # but nothing outside the file vouches for them: say how many, and pass.
    expected, newer = match[0], runs[-1].seq - match[0].seq
    notes.append(
        f"the expected head is run {expected.run_id} (seq {expected.seq})"
        + (
            f", but {newer} newer run(s) follow it, up to seq {runs[-1].seq}: check them "
            "against the anchor log or the public key."
            if newer
            else ", the newest run."
        )
    )
    return []
