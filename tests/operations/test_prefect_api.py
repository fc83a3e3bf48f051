"""Which way bb2sv runs: a Prefect API configured anywhere Prefect reads its settings, or none."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tasks.prefect_api import _settings_may_name_an_api

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """A working directory and PREFECT_HOME with nothing in them, no PREFECT_* variables."""
    for name in list(os.environ):
        if name.startswith("PREFECT_"):
            monkeypatch.delenv(name)
    work, home = tmp_path / "work", tmp_path / "prefect-home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PREFECT_HOME", str(home))
    return work, home


def test_nothing_configured_is_seen_without_prefect(bare):
    assert _settings_may_name_an_api() is False


@pytest.mark.parametrize(
    "where",
    ["environment", "environment, lower case", "profile", ".env", "prefect.toml", "pyproject.toml"],
)
def test_every_place_prefect_reads_an_api_url_from_counts(bare, monkeypatch, where):
    work, home = bare
    url = "http://127.0.0.1:4200/api"
    if where == "environment":
        monkeypatch.setenv("PREFECT_API_URL", url)
    elif where == "environment, lower case":  # Prefect reads its variables in any case
        monkeypatch.setenv("prefect_api_url", url)
    elif where == "profile":
        (home / "profiles.toml").write_text(
            f'active = "local"\n[profiles.local]\nPREFECT_API_URL = "{url}"\n', encoding="utf-8"
        )
    elif where == ".env":
        (work / ".env").write_text(f"PREFECT_API_URL={url}\n", encoding="utf-8")
    elif where == "prefect.toml":
        (work / "prefect.toml").write_text(f'[api]\nurl = "{url}"\n', encoding="utf-8")
    else:
        (work / "pyproject.toml").write_text(f'[tool.prefect.api]\nurl = "{url}"\n', "utf-8")
    assert _settings_may_name_an_api() is True


def test_a_profile_without_an_api_is_not_one(bare):
    _, home = bare
    (home / "profiles.toml").write_text(
        'active = "local"\n[profiles.local]\nPREFECT_LOGGING_LEVEL = "DEBUG"\n', encoding="utf-8"
    )
    assert _settings_may_name_an_api() is False


def test_the_answer_is_prefects_own_and_the_bare_path_never_imports_it(bare):
    """In a fresh interpreter: no API anywhere → False without importing Prefect; an API in
    the profile → True, as Prefect itself reads it."""
    _, home = bare
    probe = (
        "import sys; from tasks.prefect_api import prefect_api_configured; "
        "print(prefect_api_configured(), 'prefect' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert run() == ["False", "False"]
    (home / "profiles.toml").write_text(
        'active = "x"\n[profiles.x]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n', "utf-8"
    )
    assert run() == ["True", "True"]
