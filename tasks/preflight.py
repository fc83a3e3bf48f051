"""The one preflight: everything checked before any API call, by the CLI and by the flow.

    setup = preflight("evidence.duckdb", "reports", None, workspaces=["acme"])
    setup.policy, setup.settings, setup.reports_dir, setup.anchor_log, setup.signer
    setup.workspaces         # checked: slugs or {uuid}s, in order, each once
    setup.directory          # the organization directory's settings, None when not configured

Bad configuration fails fast with a clear message (ConfigError, PolicyError, EvidenceError).
Nothing is sent to Bitbucket; Secret blocks named for credentials are read from Prefect, and
nothing is written but the evidence file's creation or schema upgrade and the reports folder. An
evidence file that another process holds is no reason to skip a collection: the runs wait
for it when they are stored (or are spooled), so that is only logged here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tasks.atlassian.config import ADMIN_API_KEY, ORG_ID, DirectorySettings
from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.exceptions import ConfigError
from tasks.credentials import resolve_credentials
from tasks.evidence.anchors import check_anchor_log_writable
from tasks.evidence.errors import EvidenceLocked
from tasks.evidence.keys import RunSigner, signer_from_env
from tasks.evidence.spool import writer_wait
from tasks.evidence.store import EvidenceStore
from tasks.identity import DIRECTORY_FACTORS
from tasks.policy import Policy, load_policy
from tasks.workspaces import check_workspaces

__all__ = ["DEFAULT_ANCHOR_LOG", "CollectionSetup", "check_reports_dir", "preflight"]

DEFAULT_ANCHOR_LOG = "anchors.jsonl"  # under the reports root

log = logging.getLogger("bb2sv.preflight")
PREFLIGHT_LOCK_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class CollectionSetup:
    policy: Policy
    settings: BitbucketSettings
    reports_dir: Path
    anchor_log: Path  # one JSON line per stored run, outside the evidence file
    directory: DirectorySettings | None = None
    signer: RunSigner | None = None  # BB2SV_SIGNING_KEY(_BLOCK); its repr shows no key
    workspaces: list[str] = field(default_factory=list)


def preflight(
    db_path: str | os.PathLike,
    reports_dir: str | os.PathLike,
    policy_path: str | os.PathLike | None,
    secret_blocks: Mapping[str, str] | None = None,
    max_concurrent_workspaces: int = 1,
    anchor_log: str | os.PathLike | None = None,
    workspaces: Iterable[str] = (),
) -> CollectionSetup:
    """Workspaces, policy, credentials, signing key, reports folder, anchor log (default
    `<reports_dir>/anchors.jsonl`) and evidence file, in that order."""
    names = check_workspaces(workspaces) if workspaces else []
    policy = load_policy(policy_path)
    for unnamed in (e for e in policy.exceptions if e.account_id is None):
        log.warning(
            "The policy's exception %s (nickname %r, workspace %s) names no account_id, so it "
            "covers nobody: a nickname is its user's to choose. Add the member's account_id "
            "(the reports' Account ID column).",
            unnamed.ticket,
            unnamed.nickname,
            unnamed.workspace,
        )
    settings, directory = resolve_credentials(secret_blocks)
    if directory is None and policy.identity.needs_directory:
        named = ", ".join(f for f in DIRECTORY_FACTORS if f in policy.identity.accepted_factors)
        raise ConfigError(
            f"The policy accepts {named}, which only the Atlassian organization directory can "
            f"show, but it is not configured: set {ORG_ID} and {ADMIN_API_KEY} (or "
            f"{ADMIN_API_KEY}_BLOCK), or remove {named} from accepted_factors."
        )
    signer = signer_from_env()
    if max_concurrent_workspaces < 1:
        raise ConfigError("max_concurrent_workspaces must be at least 1.")
    reports = check_reports_dir(reports_dir)
    anchors = Path(anchor_log) if anchor_log is not None else reports / DEFAULT_ANCHOR_LOG
    check_anchor_log_writable(anchors)
    try:  # creates or migrates; fails clearly if corrupt, too new or not an evidence file
        with EvidenceStore.open(db_path, lock_timeout_s=min(PREFLIGHT_LOCK_WAIT_S, writer_wait())):
            pass
    except EvidenceLocked as exc:
        log.warning(
            "Evidence file %s is held by %s. Collecting anyway: each run waits for the file "
            "(BB2SV_WRITER_WAIT), or is spooled and stored by the next collection.",
            db_path,
            exc.holder,
        )
    return CollectionSetup(policy, settings, reports, anchors, directory, signer, names)


def check_reports_dir(reports_dir: str | os.PathLike) -> Path:
    """Create the reports root if needed and prove it is writable."""
    if not os.fspath(reports_dir).strip():
        raise ConfigError(
            "The reports directory is empty (--reports-dir ''), which would write reports and "
            "the anchor log into the current folder. Name a directory."
        )
    path = Path(reports_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"The reports directory {str(path)!r} is a file, not a directory. Choose another "
            "with --reports-dir."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"The reports directory {str(path)!r} cannot be created ({exc.strerror}). "
            "Choose another with --reports-dir or fix its permissions."
        ) from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"The reports directory {str(path)!r} is not a writable directory. "
            "Choose another with --reports-dir or fix its permissions."
        )
    return path
