"""What reading the organization directory hands on: `DirectoryExtract`.

The pages are `RawPage`s with listing `directory`; the store keeps them with every
workspace's run of the collection, so each run's observations stay a pure function of its
own stored pages. Nothing here carries the Admin API key.

Usage::

    directory = extract_directory(settings)
    directory.status, directory.users_read, directory.error
    store.record_run(extract, policy=policy, directory=directory)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tasks.bitbucket.models import RawPage
from tasks.vocabulary import ErrorKind, RunStatus

__all__ = ["DirectoryExtract"]


@dataclass(slots=True)
class DirectoryExtract:
    """One read of the organization directory.

    `status` is `complete` only when every page arrived and the walk ended cleanly; then,
    and only then, members may pass on `atlassian_2sv` or `idp_sso`.
    """

    org_id: str
    source: str  # the organization's Admin API base URL (no credentials)
    started_at: datetime
    finished_at: datetime
    status: RunStatus
    pages: list[RawPage] = field(default_factory=list)
    users_read: int = 0  # distinct accountIds read
    request_count: int = 0
    error: str | None = None
    error_kind: ErrorKind | None = None
    emulated: bool = False

    @property
    def label(self) -> str:
        """How messages name it."""
        return f"the directory of organization '{self.org_id}'"
