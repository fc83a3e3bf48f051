"""The evidence store: one DuckDB file, one writer, one transaction per collection run.

Usage::

    with EvidenceStore.open("evidence.duckdb") as store:            # the one writer
        record = store.record_run(extract, policy=policy)       # a RunRecord
        record.run_id, record.run_hash, record.status, record.member_count
        # with the collection's read of the organization directory (its pages are stored
        # after the workspace's, and the run records how the directory was read):
        record = store.record_run(extract, policy=policy, directory=directory)
        record.directory_status
    with EvidenceStore.open("evidence.duckdb", read_only=True) as store:
        store.conn.sql("SELECT * FROM daily_compliance").df()
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Self

import duckdb
import pyarrow as pa

from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.exceptions import ConfigError
from tasks.bitbucket.models import WorkspaceExtract
from tasks.canonical import as_utc
from tasks.evidence import frames, hashing, page_bodies
from tasks.evidence.catalog import (
    EVIDENCE,
    catalog_problems,
    foreign_macros,
    read_catalog,
    rebuilt_tables,
    require_shipped_tables,
)
from tasks.evidence.connection import (
    DEFAULT_LOCK_TIMEOUT_S,
    has_duckdb_header,
    translate,
)
from tasks.evidence.creation import commit_by_checkpoint, create, remove_stale_copies
from tasks.evidence.errors import (
    EvidenceCorrupt,
    EvidenceError,
    IntegrityError,
    NotAnEvidenceFile,
    SchemaTooNew,
)
from tasks.evidence.keys import RunSigner
from tasks.evidence.run_record import COLUMNS, RunRecord
from tasks.evidence.sandbox import attach, sandbox
from tasks.evidence.schema import LATEST_VERSION, migrate, schema_version
from tasks.evidence.signing import store_signature
from tasks.normalise import joins_roles_by_uuid, observations_table
from tasks.policy import Policy
from tasks.version import __version__
from tasks.vocabulary import ErrorKind, RunStatus

log = logging.getLogger("bb2sv.evidence")  # under `bb2sv`: deployments show it in the UI


class EvidenceStore:
    """An open evidence file. Use `EvidenceStore.open`, not the constructor."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool):
        self.conn = conn
        self.path = path
        self.read_only = read_only
        if not read_only:  # readers have it from the sandbox; the writer reads the file's views
            page_bodies.expand_in_plain_duckdb(conn)

    @classmethod
    def open(
        cls,
        path: str | PathLike[str],
        *,
        read_only: bool = False,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    ) -> EvidenceStore:
        """Open (or create, when writable) an evidence file, migrating an older schema.

        A file that is not DuckDB, not bb2sv's, damaged, or newer than this bb2sv raises
        before anything is written, so the file stays byte-identical.
        """
        path = Path(path)
        if path.is_dir():
            raise ConfigError(
                f"{path} is a directory, not an evidence file. Pass the file's path with --db "
                f"(e.g. {path / 'evidence.duckdb'})."
            )
        if not path.exists():
            if read_only:
                raise EvidenceError(
                    f"No evidence file at {path}. Pass --db with the right path, or run "
                    "`bb2sv collect` first (it creates the file; `bb2sv demo` writes its own "
                    "under bb2sv-demo/)."
                )
            conn = create(path, lock_timeout_s)
            if conn is not None:
                return cls(conn, path, read_only=False)
            # another process created it meanwhile: open it as any existing file
        conn, as_shipped = _attach_inspected(path, read_only, lock_timeout_s)
        if read_only:
            return cls(conn, path, read_only=True)
        remove_stale_copies(path.parent)  # a creation killed after linking its copy
        try:
            commit_by_checkpoint(conn)
            migrate(conn, views=not as_shipped)
        except duckdb.Error as exc:
            conn.close()
            raise translate(exc, path, action="upgrade the schema of") from None
        return cls(conn, path, read_only=False)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def record_run(
        self,
        extract: WorkspaceExtract,
        *,
        policy: Policy,
        directory: DirectoryExtract | None = None,
        prefect_flow_run_id: str | None = None,
        tool_version: str = __version__,
        signer: RunSigner | None = None,
    ) -> RunRecord:
        """Store one collection run (any status) with its pages and observations, atomically;
        with a `signer`, its run_hash is signed in the same transaction.

        `directory`: the collection's read of the organization directory (None when it is
        not configured); its pages are stored after the workspace's.
        """
        if self.read_only:
            raise EvidenceError(f"Evidence file {self.path} is open read-only; cannot record.")
        started = time.perf_counter()
        if directory is not None:
            extract = dataclasses.replace(
                extract,
                pages=[*extract.pages, *directory.pages],
                emulated=extract.emulated or directory.emulated,
            )
        run_id = new_run_id(extract)
        derived = observations_table(
            extract.workspace,
            extract.pages,
            memo=extract.derived,
            roles_by_uuid=joins_roles_by_uuid(tool_version),
        )
        observed = frames.observations_table(run_id, derived)
        member_count = observed.num_rows
        responses = frames.pages_table(run_id, extract.pages)
        policy_row, exceptions = frames.policy_tables(run_id, policy)
        views = {
            "_bb2sv_obs": observed,
            "_bb2sv_responses": responses,
            "_bb2sv_policy": policy_row,
            "_bb2sv_exceptions": exceptions,
        }
        # The views hold the only references: they are let go once inserted, before the
        # commit, whose checkpoint is the load's peak of memory.
        del policy_row, exceptions
        # Digested in a private database: a macro planted in the file (say, one named
        # sha256) must not decide what the new run's hashes are. On a thread of its own,
        # while this one stores the bodies: both are mostly DuckDB's work, outside the GIL.
        digesting = ThreadPoolExecutor(1, thread_name_prefix="bb2sv-digests")
        pending = digesting.submit(_digests_apart, extract.workspace, run_id, responses, observed)
        del observed, responses
        try:
            for name, table in views.items():
                self.conn.register(name, table)
            self.conn.execute("BEGIN TRANSACTION")
            try:
                # Only bodies the file does not hold yet, most as patches of yesterday's
                # (page_bodies.py): a daily run repeats nearly all of its pages. First, as
                # no other table refers to them and the digests wait for the run's record.
                page_bodies.store_bodies(self.conn, run_id, extract.workspace, extract.pages)
                # Then the responses and observations, which no key ties to the run row,
                # while the digests are still being made (the run row waits for them).
                self._insert_observed()
                digests = pending.result()
                record = self._seal(
                    extract,
                    run_id,
                    member_count,
                    policy,
                    tool_version,
                    prefect_flow_run_id,
                    digests,
                    directory,
                    signing_key_id=None if signer is None else signer.key_id,
                )
                self._insert(record)
                _unregister(self.conn, views)
                if signer is not None:  # the hash covers the key; the signature, the hash
                    store_signature(self.conn, record, signer)
                self.conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT has already rolled back; keep the original error.
                with contextlib.suppress(duckdb.TransactionException):
                    self.conn.execute("ROLLBACK")
                raise
        except duckdb.Error as exc:
            action = f"record the {extract.workspace} run in"
            raise translate(exc, self.path, action=action) from None
        finally:
            _unregister(self.conn, views)
            # At most the digests' own time (a store that failed first): never left behind.
            digesting.shutdown(wait=True, cancel_futures=True)
        log.info(
            "stored run %s (%s, %d members, %d pages) in %.3f s",
            run_id,
            record.status,
            record.member_count,
            len(extract.pages),
            time.perf_counter() - started,
        )
        return record

    def _seal(
        self,
        extract: WorkspaceExtract,
        run_id: str,
        member_count: int,
        policy: Policy,
        tool_version: str,
        prefect_flow_run_id: str | None,
        digests: hashing.RunDigests,
        directory: DirectoryExtract | None,
        *,
        signing_key_id: str | None,
    ) -> RunRecord:
        """The run's record, chained to the current head (inside the transaction)."""
        # fetchall, not fetchone: an unfinished result blocks the connection in duckdb 2.0
        head = self.conn.execute(
            "SELECT r.seq, r.run_hash, s.signature FROM collection_runs AS r "
            "LEFT JOIN run_signatures AS s USING (run_id) ORDER BY r.seq DESC LIMIT 1"
        ).fetchall()
        seq, prev, prev_signature = (
            (head[0][0] + 1, head[0][1], head[0][2]) if head else (1, hashing.GENESIS_HASH, None)
        )
        return RunRecord.sealed(
            run_id=run_id,
            seq=seq,
            workspace=extract.workspace,
            source=extract.source,
            started_at=as_utc(extract.started_at),
            finished_at=as_utc(extract.finished_at),
            status=RunStatus(extract.status),
            member_count=member_count,
            request_count=extract.request_count,
            tool_version=tool_version,
            prefect_flow_run_id=prefect_flow_run_id,
            error=extract.error,
            error_kind=None if extract.error_kind is None else ErrorKind(extract.error_kind),
            emulated=bool(extract.emulated),
            policy_sha256=policy.sha256,
            policy=frames.policy_record_of(policy),
            prev_run_hash=prev,
            raw_sha256=digests.raw_sha256,
            observations_sha256=digests.observations_sha256,
            directory_status=None if directory is None else RunStatus(directory.status),
            directory_error=None if directory is None else directory.error,
            directory_source=None if directory is None else directory.source,
            identity_sha256=digests.identity_sha256,
            signing_key_id=signing_key_id,
            prev_signature=prev_signature,  # the next run's hash covers this run's signature
        )

    def _insert(self, record: RunRecord) -> None:
        self.conn.execute(
            f"INSERT INTO collection_runs ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in COLUMNS)})",
            record.row(),
        )
        self.conn.execute("INSERT INTO run_policies BY NAME SELECT * FROM _bb2sv_policy")
        self.conn.execute("INSERT INTO policy_exceptions BY NAME SELECT * FROM _bb2sv_exceptions")

    def _insert_observed(self) -> None:
        self.conn.execute("INSERT INTO raw_api_responses BY NAME SELECT * FROM _bb2sv_responses")
        # Who once, what each run saw per run (migration 0007).
        self.conn.execute(_store_observations_sql())


def _digests_apart(
    workspace: str, run_id: str, pages: pa.Table, observations: pa.Table
) -> hashing.RunDigests:
    """`hashing.run_digests_apart`, its DuckDB errors said to be its own: the private
    in-memory database is not the evidence file, whose errors the store translates."""
    try:
        return hashing.run_digests_apart(run_id, pages, observations)
    except duckdb.Error as exc:
        raise EvidenceError(
            f"Could not compute the digests of the {workspace} run (in memory, before "
            f"anything is written): {exc}. Nothing was stored."
        ) from None


def _unregister(conn: duckdb.DuckDBPyConnection, views: dict) -> None:
    for name in views:
        conn.unregister(name)
    views.clear()


@cache
def _store_observations_sql() -> str:
    return (Path(__file__).parent / "sql" / "store_observations.sql").read_text("utf-8")


def new_run_id(extract: WorkspaceExtract) -> str:
    """Readable and time-ordered: `20261127T020000Z-acme-1f3a9c2e`."""
    stamp = as_utc(extract.started_at).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{extract.workspace}-{uuid.uuid4().hex[:8]}"


def _attach_inspected(
    path: Path, read_only: bool, lock_timeout_s: float
) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """An existing file attached and inspected (`_inspect`; for the writer also its
    catalog), so nothing stored in the file takes part in reading it. A reader gets the
    sandbox; the writer the same connection with the file as its current database (so
    nothing can change the file between the inspection and the writing) and whether the
    file's catalog is exactly the shipped one."""
    if not has_duckdb_header(path):
        raise NotAnEvidenceFile(
            f"{path} is not a DuckDB file (no DuckDB header), so it is not a bb2sv "
            "evidence file. Check --db; the file was left unchanged."
        )
    deadline = time.monotonic() + lock_timeout_s
    # A writable ATTACH replays a write-ahead log (left by a writer that crashed) into the
    # file at once, before a file that must be refused could be: such a file is inspected
    # read-only first.
    wal_left = Path(f"{path}.wal").exists()
    conn = attach(path, read_only=read_only or wal_left, lock_timeout_s=lock_timeout_s)
    try:
        version = _inspect(conn, path)
        if read_only:
            _require_latest(version, path)
            return sandbox(conn, path), True  # reads go on under the shipped catalog
        found = read_catalog(conn, EVIDENCE)
        if version == LATEST_VERSION:  # an older file gains its columns from the migrations
            require_shipped_tables(conn)
        _refuse_edited_catalog(found, path, latest=version == LATEST_VERSION)
        as_shipped = not catalog_problems(conn, found)
        if wal_left:
            conn.close()
            remaining = max(0.0, deadline - time.monotonic())
            conn = attach(path, read_only=False, lock_timeout_s=remaining)
        conn.execute(f"USE {EVIDENCE}")  # the writer's SQL names the file's tables
    except BaseException:
        conn.close()
        raise
    return conn, as_shipped


def _inspect(conn: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Schema version of the attached file, read without writing anything."""
    try:
        version = schema_version(conn, EVIDENCE)
        block_size, blocks = conn.execute(
            "SELECT block_size, used_blocks FROM pragma_database_size() WHERE database_name = ?",
            [EVIDENCE],
        ).fetchall()[0]
    except duckdb.Error as exc:
        raise EvidenceCorrupt(
            f"Evidence file {path} could not be read ({str(exc).splitlines()[0]}). Restore "
            "it from a backup; the file was left unchanged."
        ) from None
    # DuckDB reads data blocks lazily, so a truncated file opens fine. The file must hold
    # at least its used blocks after the three 4 KiB header blocks (total_blocks is no
    # bound: free blocks at the end are cut off the file).
    if path.stat().st_size < 3 * 4096 + blocks * block_size:
        raise EvidenceCorrupt(
            f"Evidence file {path} is truncated: its header lists {blocks} used blocks of "
            f"{block_size} bytes but the file is only {path.stat().st_size} bytes. Restore it "
            "from a backup; the file was left unchanged."
        )
    if version is None:
        raise NotAnEvidenceFile(
            f"{path} is a DuckDB database but not a bb2sv evidence file (it has tables but no "
            "schema_version). Pass a new path with --db; the file was left unchanged."
        )
    if version > LATEST_VERSION:
        raise SchemaTooNew(
            f"Evidence file {path} has schema version {version}, but this bb2sv "
            f"({__version__}) knows up to {LATEST_VERSION}. Upgrade bb2sv to read or "
            "write it; the file was left unchanged.",
            found=version,
            supported=LATEST_VERSION,
        )
    return version


def _require_latest(version: int, path: Path) -> None:
    if version < LATEST_VERSION:
        raise EvidenceError(
            f"Evidence file {path} has schema version {version}, older than this "
            f"bb2sv's {LATEST_VERSION}. Open it once for writing (bb2sv collect) to "
            "upgrade it, then query it."
        )


def _refuse_edited_catalog(found: dict, path: Path, *, latest: bool) -> None:
    """Refuse to write to a file with macros bb2sv did not create, or (at the latest
    schema, where the migrations are done) tables whose definition is not bb2sv's."""
    if planted := foreign_macros(found):
        raise IntegrityError(
            f"Evidence file {path} holds macros that bb2sv did not create "
            f"({', '.join(planted)}): someone edited the file, and such macros change what "
            "SQL run in it means, so bb2sv will not write to it. Run `bb2sv verify` to see "
            "every change, then restore the file from a backup (or, once you know what "
            "happened, DROP MACRO them). The file was left unchanged."
        )
    if latest and (rebuilt := rebuilt_tables(found)):
        raise IntegrityError(
            f"Evidence file {path} has tables whose definition is not bb2sv's "
            f"({', '.join(rebuilt)}): they were rebuilt, and their constraints or storage "
            "changed, so bb2sv will not add evidence to it. Run `bb2sv verify` to see every "
            "change, then restore the file from a backup. The file was left unchanged."
        )
