"""Workspace arguments: checked before any request, and named safely everywhere after.

Bitbucket names a workspace by its slug (its ID, the part after bitbucket.org/) or by its
UUID in braces. Anything else is refused before a token is sent anywhere: a slug `..`
would otherwise resolve to another API path with our credentials on it.

    check_workspaces(["acme", "{0f0e0d0c-1111-4222-8333-444455556666}", "acme"])
    # ['acme', '{0f0e0d0c-1111-4222-8333-444455556666}']   (in order, duplicates dropped)
    folder_name("{0F0E0D0C-1111-4222-8333-444455556666}")
    # '0f0e0d0c-1111-4222-8333-444455556666'   (report folders, never braces)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tasks.bitbucket.exceptions import ConfigError

__all__ = ["MAX_WORKSPACES", "check_workspaces", "folder_name", "is_uuid"]

MAX_WORKSPACES = 500
# Bitbucket workspace IDs: lowercase letters, digits, '-' and '_' (and '.', which some old
# ones have); never '.' or '-' first, so no '..' and no option-like names.
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,61}$")
_UUID = re.compile(r"^\{[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}$")


def is_uuid(workspace: str) -> bool:
    return bool(_UUID.match(workspace))


def check_workspaces(workspaces: Iterable[str]) -> list[str]:
    """The workspaces to read, in order without duplicates; ConfigError naming every bad one."""
    if isinstance(workspaces, str):
        workspaces = [workspaces]  # a single slug passed where a list was meant
    given = [str(workspace).strip() for workspace in workspaces]
    if not given:
        raise ConfigError("No workspace to read: give at least one workspace slug or {uuid}.")
    bad = [workspace for workspace in given if not (_SLUG.match(workspace) or is_uuid(workspace))]
    if bad:
        shown = ", ".join(repr(workspace[:80]) for workspace in bad[:5])
        hint = ""
        if any(_SLUG.match(workspace.lower()) for workspace in bad):
            hint = " Workspace IDs are lowercase."
        raise ConfigError(
            f"Not a Bitbucket workspace: {shown}. Give the workspace ID (the name after "
            "bitbucket.org/ in its URL: lowercase letters, digits, '-', '_' or '.', starting "
            f"with a letter or digit) or its UUID in braces, e.g. {{0f0e0d0c-…}}.{hint}"
        )
    unique = list(dict.fromkeys(given))
    if len(unique) > MAX_WORKSPACES:
        raise ConfigError(
            f"{len(unique)} workspaces in one collection; at most {MAX_WORKSPACES}. Split them "
            "over several deployments (one per evidence file)."
        )
    return unique


def folder_name(workspace: str) -> str:
    """A workspace as one path segment: the slug itself, or the UUID without braces."""
    return workspace.strip("{}").lower() if is_uuid(workspace) else workspace
