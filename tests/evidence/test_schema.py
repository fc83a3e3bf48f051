"""Schema: migrations in one transaction, versioning, and refusing files we must not touch."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from tasks.evidence import creation, file_identity, store
from tasks.evidence.catalog import catalog_problems, empty_evidence_file
from tasks.evidence.connection import CONNECTION_CONFIG, connect
from tasks.evidence.errors import (
    EvidenceCorrupt,
    EvidenceError,
    NotAnEvidenceFile,
    SchemaTooNew,
)
from tasks.evidence.sandbox import attach
from tasks.evidence.schema import LATEST_VERSION, migrate, view_files
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY

PUBLIC = {
    "collection_runs",
    "raw_api_pages",
    "member_2sv_observations",
    "run_policies",
    "policy_exceptions",
    "latest_member_state",
    "daily_compliance",
    "member_state_history",
    "findings",
    "evidence_coverage",
}


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_file(db_path: Path, synth) -> Path:
    extract = synth.make_extract("acme", synth.synthetic_members(120), day=date(2026, 3, 1))
    with EvidenceStore.open(db_path) as store:
        store.record_run(extract, policy=DEFAULT_POLICY)
    return db_path


def test_new_file_has_schema_settings_and_duckdb_14_storage(db_path):
    with EvidenceStore.open(db_path) as store:
        versions = store.conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        names = {
            name
            for (name,) in store.conn.execute(
                "SELECT table_name FROM information_schema.tables"
            ).fetchall()
        }
        settings = store.conn.execute(
            "SELECT current_setting('autoinstall_known_extensions'), "
            "current_setting('autoload_known_extensions'), current_setting('TimeZone')"
        ).fetchall()[0]
    assert [v for (v,) in versions] == list(range(1, LATEST_VERSION + 1))
    assert names >= PUBLIC
    assert settings == (False, False, "UTC")
    # storage version 67 is DuckDB 1.4's format; 2.0's default (999) is unreadable by 1.4
    (storage_version,) = struct.unpack("<Q", db_path.read_bytes()[12:20])
    assert storage_version == 67


def test_a_file_written_again_keeps_duckdb_14_storage(synth, db_path):
    """The writer attaches an existing file rather than opening it with the setting."""
    stored_file(db_path, synth)
    extract = synth.make_extract("acme", synth.synthetic_members(120), day=date(2026, 3, 2))
    with EvidenceStore.open(db_path) as store:
        store.record_run(extract, policy=DEFAULT_POLICY)
        (tags,) = store.conn.execute(
            "SELECT tags FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchall()[0]
    assert tags["storage_version"] == "v1.4.0+"
    (storage_version,) = struct.unpack("<Q", db_path.read_bytes()[12:20])
    assert storage_version == 67


# The columns of the first schema, named: later migrations add nullable columns.
STATE_COLUMNS = "(run_id, member_id, observed_at, permission, has_2fa_enabled, two_step_state)"
RUN_COLUMNS = (
    "(run_id, seq, workspace, source, started_at, finished_at, status, member_count, "
    "request_count, tool_version, prefect_flow_run_id, raw_sha256, prev_run_hash, run_hash, "
    "error, error_kind, emulated, policy_sha256, observations_sha256)"
)


def test_check_constraints_reject_unknown_states(synth, db_path):
    EvidenceStore.open(db_path).close()
    conn = synth.plain_connect(db_path)
    with pytest.raises(duckdb.ConstraintException):
        conn.execute(
            f"INSERT INTO member_run_states {STATE_COLUMNS} VALUES ('r', 1, now(), 'member', "
            "NULL, 'maybe')"
        )
    with pytest.raises(duckdb.ConstraintException):  # state must agree with has_2fa_enabled
        conn.execute(
            f"INSERT INTO member_run_states {STATE_COLUMNS} VALUES ('r', 1, now(), 'member', "
            "false, 'enabled')"
        )
    with pytest.raises(duckdb.ConstraintException):
        conn.execute(
            f"INSERT INTO collection_runs {RUN_COLUMNS} VALUES ('r', 1, 'acme', 's', now(), "
            "now(), 'done', 0, 0, 'v', NULL, '', '', '', NULL, NULL, false, '', '')"
        )
    conn.close()


def test_older_schema_is_migrated_on_open(db_path):
    conn = connect(db_path, read_only=False)
    migrate(conn, target=1)
    conn.close()
    with EvidenceStore.open(db_path) as store:
        (version,) = store.conn.execute("SELECT max(version) FROM schema_version").fetchall()[0]
        store.conn.execute("SELECT count(*) FROM run_policies").fetchall()[0]
        store.conn.execute("SELECT count(*) FROM findings").fetchall()[0]
    assert version == LATEST_VERSION


def test_read_only_open_of_older_schema_asks_for_an_upgrade(db_path):
    conn = connect(db_path, read_only=False)
    migrate(conn, target=1)
    conn.close()
    before = file_hash(db_path)
    with pytest.raises(EvidenceError, match="older than"):
        EvidenceStore.open(db_path, read_only=True)
    assert file_hash(db_path) == before


@pytest.mark.parametrize("read_only", [False, True])
def test_newer_schema_is_refused_and_file_untouched(synth, db_path, read_only):
    stored_file(db_path, synth)
    conn = synth.plain_connect(db_path)
    conn.execute("INSERT INTO schema_version VALUES (99, 'from_the_future', now())")
    conn.close()
    before = file_hash(db_path)
    with pytest.raises(SchemaTooNew, match="schema version 99") as caught:
        EvidenceStore.open(db_path, read_only=read_only)
    assert (caught.value.found, caught.value.supported) == (99, LATEST_VERSION)
    assert file_hash(db_path) == before


def crashed_with_wal(synth, db_path: Path, statement: str) -> Path:
    """A stored file as a writer that ran `statement` and then crashed leaves it: the last
    commit only in the write-ahead log (copied while the writer still holds them)."""
    conn = synth.plain_connect(stored_file(db_path, synth))
    conn.execute("SET checkpoint_threshold = '1GB'")  # the commit stays in the log
    conn.execute(statement)
    crashed = db_path.with_name("crashed.duckdb")
    shutil.copyfile(db_path, crashed)
    shutil.copyfile(f"{db_path}.wal", f"{crashed}.wal")
    conn.close()
    return crashed


def test_a_refused_file_keeps_the_log_a_crashed_writer_left(synth, db_path):
    """A writable ATTACH would replay the log into the file before it could be refused."""
    future = "INSERT INTO schema_version VALUES (99, 'from_the_future', now())"
    crashed = crashed_with_wal(synth, db_path, future)
    wal = Path(f"{crashed}.wal")
    before = file_hash(crashed), file_hash(wal)
    with pytest.raises(SchemaTooNew, match="schema version 99"):
        EvidenceStore.open(crashed)
    assert (file_hash(crashed), file_hash(wal)) == before


def test_the_writer_recovers_what_a_crashed_writer_committed_to_the_log(synth, db_path):
    edit = "UPDATE collection_runs SET error = 'committed before the crash'"
    crashed = crashed_with_wal(synth, db_path, edit)
    with EvidenceStore.open(crashed) as store:
        errors = store.conn.execute("SELECT DISTINCT error FROM collection_runs").fetchall()
    assert errors == [("committed before the crash",)]
    assert not Path(f"{crashed}.wal").exists()


@pytest.mark.parametrize("damage", ["header", "truncate"])
def test_corrupt_file_is_refused_and_file_untouched(synth, db_path, damage):
    stored_file(db_path, synth)
    data = bytearray(db_path.read_bytes())
    if damage == "header":
        data[4096 + 100 : 4096 + 300] = b"\xff" * 200
    else:
        data = data[: len(data) // 2]
    db_path.write_bytes(bytes(data))
    before = file_hash(db_path)
    with pytest.raises(EvidenceCorrupt, match="backup"):
        EvidenceStore.open(db_path)
    assert file_hash(db_path) == before


@pytest.mark.parametrize("content", [b"", b"name,email\nalice,a@example.com\n" * 500])
def test_non_duckdb_file_is_refused_and_file_untouched(db_path, content):
    db_path.write_bytes(content)
    with pytest.raises(NotAnEvidenceFile, match="not a DuckDB file"):
        EvidenceStore.open(db_path)
    assert db_path.read_bytes() == content


def test_foreign_duckdb_database_is_refused_and_file_untouched(synth, db_path):
    conn = synth.plain_connect(db_path)
    conn.execute("CREATE TABLE invoices AS SELECT 1 AS id")
    conn.close()
    before = file_hash(db_path)
    with pytest.raises(NotAnEvidenceFile, match="not a bb2sv evidence file"):
        EvidenceStore.open(db_path)
    assert file_hash(db_path) == before


def test_views_are_recreated_from_sql_files(synth, db_path):
    EvidenceStore.open(db_path).close()
    conn = synth.plain_connect(db_path)
    conn.execute("DROP VIEW findings")
    conn.execute("CREATE OR REPLACE VIEW daily_compliance AS SELECT 'stale' AS day")
    conn.close()
    with EvidenceStore.open(db_path) as store:
        columns = [c[0] for c in store.conn.execute("SELECT * FROM daily_compliance").description]
        store.conn.execute("SELECT * FROM findings").fetchall()
    assert "compliance_pct" in columns
    assert len(view_files()) >= 6


def test_read_only_open_of_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(EvidenceError, match="bb2sv collect"):
        EvidenceStore.open(tmp_path / "nope.duckdb", read_only=True)
    assert not (tmp_path / "nope.duckdb").exists()


def test_a_new_file_is_the_migrated_empty_file_stamped_when_it_was_made(tmp_path, monkeypatch):
    """A new file is copied from the empty file the migrations make (nothing is migrated):
    whole, its owner's alone, its schema_version saying when it was made, not when this
    process made the copy."""
    empty_evidence_file()  # the copy exists before the file is made
    before = datetime.now(UTC)
    monkeypatch.setattr(creation, "migrate", _not_called)
    monkeypatch.setattr(store, "migrate", _not_called)
    path = tmp_path / "e.duckdb"
    EvidenceStore.open(path).close()
    stamps, problems = _stamps_and_problems(path)
    assert len(stamps) == 1 and stamps[0][0] >= before
    assert problems == []  # exactly the shipped catalog
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["e.duckdb"]  # no scratch copy left


def test_each_new_file_has_its_own_duckdb_identity(tmp_path):
    """DuckDB refuses a write-ahead log written for another file: a crashed writer's log
    renamed beside another new file is not replayed into it, copies though both are."""
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    for path in (a, b):
        EvidenceStore.open(path).close()
    assert a.read_bytes()[124:140] != b.read_bytes()[124:140]
    crashed = duckdb.connect(str(a), config=CONNECTION_CONFIG)
    crashed.execute("PRAGMA disable_checkpoint_on_shutdown")
    crashed.execute("SET checkpoint_threshold = '10GB'")
    crashed.execute("CREATE TABLE planted (x INTEGER)")
    crashed.close()  # its log stays: a.duckdb.wal
    Path(f"{a}.wal").rename(f"{b}.wal")
    with pytest.raises(duckdb.IOException, match="WAL does not match database file"):
        duckdb.connect(str(b), config=CONNECTION_CONFIG)


@pytest.mark.parametrize("why", ["no hard links", "another DuckDB header", "no temporary folder"])
def test_a_new_file_is_migrated_when_it_cannot_be_copied(tmp_path, monkeypatch, why):
    """On a filesystem without hard links, or with a DuckDB whose file header is not laid
    out as checked, a new file is made by migrating, as DuckDB creates it."""
    if why == "no hard links":
        monkeypatch.setattr(os, "link", _raise(PermissionError(errno.EPERM, "not permitted")))
    elif why == "another DuckDB header":
        monkeypatch.setattr(file_identity, "_layout_as_expected", lambda: False)
    else:  # the layout cannot be checked: the answer is no
        empty_evidence_file()
        unchecked = file_identity._layout_as_expected.__wrapped__  # not this process's answer
        monkeypatch.setattr(file_identity, "_layout_as_expected", unchecked)
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    migrated = []
    monkeypatch.setattr(creation, "migrate", lambda conn: migrated.append(migrate(conn)))
    path = tmp_path / "e.duckdb"
    EvidenceStore.open(path).close()
    monkeypatch.undo()
    assert migrated == [LATEST_VERSION]
    assert _stamps_and_problems(path)[1] == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["e.duckdb"]


def test_a_file_name_as_long_as_the_system_allows_is_created(tmp_path):
    path = tmp_path / ("e" * 240 + ".duckdb")
    EvidenceStore.open(path).close()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_copy_left_by_a_killed_creation_is_removed_by_the_next_one(tmp_path):
    """A scratch copy stays behind when its process is killed mid-creation. The next file
    created in the folder, or the next writer of the file, removes it once it is both old
    and its process gone; not a copy still being made (a live process's, or a young one),
    nor anything else."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    hour_ago = time.time() - creation.STALE_AFTER_S - 60
    left = {
        f".bb2sv-new-{gone.pid}-0123456789ab": hour_ago,  # stale: removed
        f".bb2sv-new-{gone.pid}-ba9876543210": time.time(),  # young: kept
        f".bb2sv-new-{os.getpid()}-0123456789ab": hour_ago,  # its process runs: kept
        ".bb2sv-new-notapid-0123456789ab": hour_ago,  # not our name: kept
        "notes.txt": hour_ago,
    }
    for name, mtime in left.items():
        (tmp_path / name).write_bytes(b"x" * 100)
        os.utime(tmp_path / name, (mtime, mtime))
    EvidenceStore.open(tmp_path / "e.duckdb").close()
    kept = {p.name for p in tmp_path.iterdir()}
    assert kept == {*left, "e.duckdb"} - {f".bb2sv-new-{gone.pid}-0123456789ab"}
    # Killed after linking its copy: the file exists, and its next writer removes the copy.
    again = tmp_path / f".bb2sv-new-{gone.pid}-00000000000f"
    again.write_bytes(b"x")
    os.utime(again, (hour_ago, hour_ago))
    EvidenceStore.open(tmp_path / "e.duckdb", read_only=True).close()
    assert again.exists(), "a reader changes nothing"
    EvidenceStore.open(tmp_path / "e.duckdb").close()
    assert not again.exists()


def test_the_stamp_leaves_a_file_a_run_reached_first(synth, tmp_path, monkeypatch):
    """Another writer that opened the new file before this one and stored a run: the
    migrations' time stays the copy's, before that run."""
    theirs = duckdb.connect(str(stored_file(tmp_path / "theirs.duckdb", synth)))
    row = theirs.execute("SELECT * FROM collection_runs").fetchall()[0]
    theirs.close()
    empty_evidence_file()
    before = datetime.now(UTC)

    def connect_after_their_run(path, **options):
        conn = connect(path, **options)
        conn.execute(f"INSERT INTO collection_runs VALUES ({', '.join('?' * len(row))})", row)
        return conn

    monkeypatch.setattr(creation, "connect", connect_after_their_run)
    path = tmp_path / "e.duckdb"
    EvidenceStore.open(path).close()
    stamps, _problems = _stamps_and_problems(path)
    assert len(stamps) == 1 and stamps[0][0] < before


def _stamps_and_problems(path: Path) -> tuple[list, list[str]]:
    conn = attach(path, read_only=True, lock_timeout_s=5)
    try:
        stamps = conn.execute("SELECT DISTINCT applied_at FROM evidence.schema_version").fetchall()
        return stamps, catalog_problems(conn)
    finally:
        conn.close()


def _not_called(*args, **kwargs):
    raise AssertionError("a new file was migrated, not copied")


def _raise(error: OSError):
    def fail(*args, **kwargs):
        raise error

    return fail


def test_a_file_that_appears_while_one_is_created_is_opened_not_replaced(synth, tmp_path):
    """Two writers that both found no file: the one that comes second opens the first one's
    file (here, one already holding a run) and leaves it as it was."""
    path = stored_file(tmp_path / "e.duckdb", synth)
    held = path.read_bytes()
    assert creation.create(path, lock_timeout_s=5) is None
    assert path.read_bytes() == held
    assert [p.name for p in tmp_path.iterdir()] == ["e.duckdb"]


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda folder: folder / "missing" / "e.duckdb", "Check that its folder exists"),
        (lambda folder: _dangling_link(folder), "symbolic link to a file that does not exist"),
        (lambda folder: folder / "e.duckdb", "Could not create evidence file"),  # link: EIO
        # EPERM is "no hard links" only from link itself
        (lambda folder: folder / "e.duckdb", "Could not create evidence file (fchmod)"),
    ],
)
def test_a_file_that_cannot_be_created_says_why_and_leaves_nothing(
    tmp_path, monkeypatch, make, says
):
    path = make(tmp_path)
    if says == "Could not create evidence file":
        monkeypatch.setattr(os, "link", _raise(OSError(errno.EIO, "Input/output error")))
    if says.endswith("(fchmod)"):
        says = says.removesuffix(" (fchmod)")
        monkeypatch.setattr(os, "fchmod", _raise(PermissionError(errno.EPERM, "not permitted")))
    listed = sorted(tmp_path.iterdir())
    with pytest.raises(EvidenceError, match=says):
        EvidenceStore.open(path)
    assert sorted(tmp_path.iterdir()) == listed


def _dangling_link(folder: Path) -> Path:
    link = folder / "e.duckdb"
    link.symlink_to(folder / "gone.duckdb")
    return link
