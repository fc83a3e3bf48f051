"""What the code reads from files beside it reaches an installed bb2sv."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ("*.sql", "*.css", "*.html", "*.j2", "*.json", "*.md", "*.yaml")  # pyproject's globs


def test_no_data_file_lies_in_a_folder_the_wheel_leaves_out():
    """setuptools finds packages by folder name and skips a folder whose name is not an
    identifier (a dot in it, say views/superseded/0.6.0): its files would be missing from
    an installed bb2sv, and the code reading them would fail there only."""
    outside = [
        str(path.relative_to(ROOT))
        for package in ("tasks", "flows", "bb2sv", "emulator")
        for pattern in DATA
        for path in (ROOT / package).rglob(pattern)
        if not all(part.isidentifier() for part in path.relative_to(ROOT).parent.parts)
    ]
    assert outside == []
