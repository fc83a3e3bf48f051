"""The `>>>` examples in docstrings run, so they cannot drift from the code (one in
tasks/bitbucket/retry.py used `UTC` without importing it, unnoticed until this ran)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tasks", "flows", "bb2sv", "emulator")


def modules_with_examples() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>> " in path.read_text(encoding="utf-8"):
                found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def test_examples_are_found():
    assert "tasks.bitbucket.retry" in modules_with_examples()


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    examples = [e for test in doctest.DocTestFinder().find(module) for e in test.examples]
    assert examples, f"{name} mentions '>>> ' outside any docstring doctest finds"
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # +SKIP ones are skipped
    assert result.failed == 0
