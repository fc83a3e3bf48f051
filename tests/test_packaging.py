"""What the code reads from files beside it reaches an installed bb2sv."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
DATA = SETUPTOOLS["package-data"]["*"]  # the globs of the files a wheel carries
PACKAGES = [name.rstrip("*") for name in SETUPTOOLS["packages"]["find"]["include"]]


def test_no_data_file_lies_in_a_folder_the_wheel_leaves_out():
    """setuptools finds packages by folder name and skips a folder whose name is not an
    identifier (a dot in it, say views/superseded/0.6.0): its files would be missing from
    an installed bb2sv, and the code reading them would fail there only."""
    outside = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for pattern in DATA
        for path in (ROOT / package).rglob(pattern)
        if not all(part.isidentifier() for part in path.relative_to(ROOT).parent.parts)
    ]
    assert outside == []
