"""Fixtures for the evidence-store tests: pages from `emulator.offline` (no HTTP).

    members = synth.synthetic_members(250)                  # mix of enabled/disabled/unknown
    extract = synth.make_extract("acme", members, day=date(2026, 3, 1))
    with EvidenceStore.open(db_path) as store:
        store.record_run(extract, policy=DEFAULT_POLICY)

`synth` is `emulator.offline` (its `__all__`) plus `plain_connect`, `copy_file` and
`on_disk`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from emulator import offline
from tasks.bitbucket.spill import BodySpill
from tasks.evidence.page_bodies import expand_in_plain_duckdb


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "evidence.duckdb"


def plain_connect(path: Path) -> duckdb.DuckDBPyConnection:
    """A plain writable DuckDB connection, as someone tampering with the file would use; it
    reads compressed page bodies, as such a person can (zlib)."""
    conn = duckdb.connect(str(path), config={"autoinstall_known_extensions": False})
    expand_in_plain_duckdb(conn)
    return conn


def copy_file(source: Path, target: Path) -> Path:
    """A copy of a closed evidence file, for a test that changes it (the original is shared
    by a module; building it once is what saves the time)."""
    assert not Path(f"{source}.wal").exists(), "the evidence file was not closed"
    shutil.copyfile(source, target)
    return target


def on_disk(pages: list, folder: Path) -> tuple[list, int]:
    """(the pages with their bodies in a temporary file in `folder`, as the client keeps
    them; that file's descriptor, for a test that changes or cuts it)."""
    spill = BodySpill(str(folder))
    kept = [page.kept_in(spill) for page in pages]
    assert all(page.body_on_disk for page in kept)
    return kept, spill._file.fileno()


@pytest.fixture(scope="session")
def synth() -> SimpleNamespace:
    """`emulator.offline`'s builders plus the test-only helpers above (test modules cannot
    import conftest by name)."""
    builders = {name: getattr(offline, name) for name in offline.__all__}
    return SimpleNamespace(
        **builders, plain_connect=plain_connect, copy_file=copy_file, on_disk=on_disk
    )


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> Path:
    """One run of 60 members in a file shared by a module whose queries only read (or are
    refused)."""
    from datetime import date

    from tasks.evidence.store import EvidenceStore
    from tasks.policy import DEFAULT_POLICY

    path = tmp_path_factory.mktemp("filled") / "evidence.duckdb"
    extract = offline.make_extract("acme", offline.synthetic_members(60), day=date(2026, 3, 1))
    with EvidenceStore.open(path) as store:
        store.record_run(extract, policy=DEFAULT_POLICY)
    return path
