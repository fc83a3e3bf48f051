"""load_policy: the example file, the default, and every kind of bad file (field + line)."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

from tasks.policy import (
    DEFAULT_GRACE_DAYS,
    DEFAULT_POLICY,
    Policy,
    PolicyError,
    load_policy,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "policy.example.yaml"

VALID = """\
grace_days: 3
sla_days: 10
exceptions:
  - account_id: "557058:abc"
    workspace: acme
    reason: Hardware key on order
    approved_by: CISO
    ticket: SEC-1
    expires_on: 2026-12-31
  - nickname: deploy-bot
    workspace: acme
    reason: Being replaced
    approved_by: CISO
    ticket: SEC-2
    expires_on: "2027-01-15"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_keeps_values_exact_text_and_sha256(tmp_path):
    path = write(tmp_path, VALID)
    policy = load_policy(path)
    assert (policy.grace_days, policy.sla_days) == (3, 10)
    first, second = policy.exceptions
    assert first.account_id == "557058:abc" and first.nickname is None
    assert first.expires_on == date(2026, 12, 31)
    assert second.nickname == "deploy-bot" and second.expires_on == date(2027, 1, 15)
    assert policy.source_text == VALID
    assert policy.sha256 == hashlib.sha256(VALID.encode()).hexdigest()
    assert policy.source_path == str(path)


def test_shipped_example_policy_loads():
    policy = load_policy(EXAMPLE)
    assert len(policy.exceptions) == 2
    assert policy.sha256 == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()


def test_none_gives_default_and_a_missing_relative_path_is_an_error(tmp_path, monkeypatch):
    assert load_policy(None) is DEFAULT_POLICY
    assert DEFAULT_POLICY.grace_days == DEFAULT_GRACE_DAYS
    monkeypatch.chdir(tmp_path)  # "policy.yaml" exists elsewhere, not here
    with pytest.raises(PolicyError, match="policy.yaml"):
        load_policy("policy.yaml")


def test_empty_file_is_the_default_values_with_its_own_hash(tmp_path):
    policy = load_policy(write(tmp_path, "# nothing yet\n"))
    assert policy.exceptions == () and policy.grace_days == DEFAULT_GRACE_DAYS
    assert policy.source_text == "# nothing yet\n"


@pytest.mark.parametrize(
    ("text", "field", "line", "words"),
    [
        ("grace_days: 7\nsla_days: -1\n", "sla_days", 2, "from 0 to 3650 days"),
        ("grace_days: 7\nsla_days: 1000000000\n", "sla_days", 2, "from 0 to 3650 days"),
        ("grace_days: 3651\n", "grace_days", 1, "from 0 to 3650 days (ten years), got 3651"),
        ("grace_days: seven\n", "grace_days", 1, "whole number"),
        ("grace_days: true\n", "grace_days", 1, "whole number"),
        ("grace_days: 1\nsla_dayz: 3\n", "sla_dayz", 2, "unknown key"),
        ("exceptions: yes-please\n", "exceptions", 1, "list"),
        (VALID.replace("expires_on: 2026-12-31", "expires_on: 2026-13-01"),
         "exceptions[0].expires_on", 9, "YYYY-MM-DD"),
        (VALID.replace('expires_on: "2027-01-15"', "expires_on: next year"),
         "exceptions[1].expires_on", 15, "YYYY-MM-DD"),
        (VALID.replace("    ticket: SEC-2\n", ""), "exceptions[1].ticket", 10, "missing"),
        (VALID.replace("  - nickname: deploy-bot\n    workspace", "  - workspace"),
         "exceptions[1]", 10, "account_id or nickname"),
        (VALID.replace("    ticket: SEC-1\n", "    ticket: SEC-1\n    colour: red\n"),
         "exceptions[0].colour", 9, "unknown key"),
        (VALID.replace("reason: Being replaced", "reason: ''"),
         "exceptions[1].reason", 12, "empty"),
        ("grace_days: 1\ngrace_days: 2\n", "grace_days", 2, "twice"),
    ],
)  # fmt: skip
def test_bad_values_name_file_field_and_line(tmp_path, text, field, line, words):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    error = caught.value
    assert (error.field, error.line) == (field, line)
    assert str(path) in str(error) and f"line {line}" in str(error) and field in str(error)
    assert words in str(error)


def test_the_bounds_themselves_are_allowed_and_policies_built_in_code_keep_them(tmp_path):
    policy = load_policy(write(tmp_path, "grace_days: 0\nsla_days: 3650\n"))
    assert (policy.grace_days, policy.sla_days) == (0, 3650)
    with pytest.raises(PolicyError, match="sla_days: must be a whole number of days from 0 to"):
        Policy(sla_days=1_000_000_000)
    with pytest.raises(PolicyError, match="grace_days"):
        Policy(grace_days=-1)


def test_bad_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "grace_days: 7\nexceptions:\n  - workspace: [acme\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.line is not None and caught.value.line >= 3
    assert "not valid YAML" in str(caught.value)


def test_unreadable_or_missing_file_is_an_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "typo.yaml")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path)  # a directory
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00grace")
    with pytest.raises(PolicyError, match="UTF-8"):
        load_policy(binary)
