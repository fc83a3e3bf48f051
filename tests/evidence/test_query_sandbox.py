"""`bb2sv query` is sandboxed: one SELECT, over the evidence file and nothing else."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from tasks.evidence.errors import EvidenceError
from tasks.evidence.query import run_query


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-VALUE\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "template",
    [
        "SELECT content FROM read_text('{secret}')",
        "SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM glob('{folder}/*')",
        "SELECT * FROM query_table('{secret}')",
    ],
)
def test_selects_cannot_read_other_files(filled, secret_file, template):
    sql = template.format(secret=secret_file, folder=secret_file.parent)
    with pytest.raises(EvidenceError) as caught:
        run_query(filled, sql)
    assert "TOP-SECRET-VALUE" not in str(caught.value)


@pytest.mark.parametrize(
    ("template", "kind"),
    [
        ("COPY (SELECT * FROM collection_runs) TO '{out}'", "COPY"),
        ("ATTACH '{out}' AS other", "ATTACH"),
        ("INSTALL httpfs", "INSTALL/LOAD"),
        ("LOAD httpfs", "INSTALL/LOAD"),
        ("SET enable_external_access = true", "SET"),
        ("EXPORT DATABASE '{folder}'", "EXPORT"),
        ("CALL pragma_version()", "CALL"),
        ("DETACH evidence", "DETACH"),
    ],
)
def test_other_statements_are_refused_before_they_run(filled, tmp_path, template, kind):
    out = tmp_path / "out.csv"
    sql = template.format(out=out, folder=tmp_path / "export")
    with pytest.raises(
        EvidenceError, match=f"read-only and sandboxed: it runs a SELECT, not {kind}"
    ):
        run_query(filled, sql)
    assert not out.exists() and not (tmp_path / "export").exists()


def test_one_statement_only(filled, tmp_path):
    with pytest.raises(EvidenceError, match="exactly one SQL statement; got 2"):
        run_query(filled, f"SELECT 1; COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'")
    assert not (tmp_path / "x.csv").exists()


def test_a_planted_view_that_reads_a_file_is_refused_too(filled, synth, secret_file, db_path):
    filled = synth.copy_file(filled, db_path)
    conn = synth.plain_connect(filled)
    conn.execute(f"CREATE VIEW planted AS SELECT content FROM read_text('{secret_file}')")
    conn.close()
    with pytest.raises(EvidenceError, match="sandboxed") as caught:
        run_query(filled, "SELECT * FROM evidence.main.planted")
    assert "TOP-SECRET-VALUE" not in str(caught.value)


def test_selects_and_explain_still_work(filled):
    assert run_query(filled, "SELECT count(*) AS n FROM member_2sv_observations")["n"][0] == 60
    assert not run_query(filled, "EXPLAIN SELECT * FROM findings").empty
    assert not run_query(filled, "FROM duckdb_views() SELECT view_name").empty


def test_the_readers_catalog_is_private_rebuilt_once_its_folder_is_gone_and_tidies_up(filled):
    from tasks.evidence.catalog import reader_catalog

    catalog = reader_catalog()
    assert stat.S_IMODE(catalog.parent.stat().st_mode) == 0o700  # nobody else can plant one
    assert [path.name for path in catalog.parent.iterdir()] == ["readers.duckdb"]
    # A process id above the largest the system gives out: no such process can be running
    # (a real one that exited could have its id given to another meanwhile).
    pid_max = Path("/proc/sys/kernel/pid_max")
    gone = int(pid_max.read_text()) + 1 if pid_max.exists() else 2**22 + 1
    temp = Path(tempfile.gettempdir())
    killed = temp / f"bb2sv-catalog-{gone}-left"  # its exit never came (SIGKILL)
    killed.mkdir()
    (killed / "readers.duckdb").write_bytes(b"left behind")
    alive = temp / f"bb2sv-catalog-{os.getppid()}-kept"
    alive.mkdir()
    # Names no process id can have are left alone, and fail nothing.
    odd = [temp / f"bb2sv-catalog-{name}-x" for name in ("99999999999999999999", "²", "0")]
    for folder in odd:
        folder.mkdir()
    try:
        shutil.rmtree(catalog.parent)  # say, a cleaner of old temporary files
        runs = run_query(filled, "SELECT count(*) AS n FROM daily_compliance")
        assert runs["n"][0] > 0
        assert reader_catalog() != catalog and reader_catalog().exists()
        assert not killed.exists() and alive.exists()
        assert all(folder.exists() for folder in odd)
    finally:
        shutil.rmtree(killed, ignore_errors=True)
        for folder in (alive, *odd):
            folder.rmdir()
