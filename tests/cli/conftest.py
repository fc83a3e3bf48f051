"""What the command-line tests share: `bb2sv` run in this process with typer's CliRunner."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from typer.testing import CliRunner, Result

from bb2sv.cli import app

CREDENTIAL_PREFIXES = ("BITBUCKET_", "ATLASSIAN_", "BB2SV_")


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """`bb2sv ARGS` in this process; credentials and bb2sv settings come only from `env`."""
    cleared = {name: None for name in os.environ if name.startswith(CREDENTIAL_PREFIXES)}
    return CliRunner().invoke(app, list(args), env={**cleared, **(env or {})})


@pytest.fixture
def cli() -> Callable[..., Result]:
    return invoke
