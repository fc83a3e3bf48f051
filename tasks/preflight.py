"""Checks made before any API call, so bad configuration fails fast with a clear message."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tasks.bitbucket.exceptions import ConfigError

log = logging.getLogger("bb2sv.preflight")

API_TAG = "bitbucket-api"


def check_reports_dir(reports_dir: str | os.PathLike) -> Path:
    """Create the reports root if needed and prove it is writable."""
    path = Path(reports_dir)
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


def ensure_api_concurrency_limit(limit: int, tag: str = API_TAG) -> None:
    """Create the tag concurrency limit that bounds concurrent API reads, unless one exists.

    An existing limit is the operator's choice and is left as it is.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    if limit < 1:
        raise ConfigError(f"max_concurrent_workspaces must be at least 1, got {limit}.")
    with get_client(sync_client=True) as client:
        try:
            client.read_concurrency_limit_by_tag(tag)
        except ObjectNotFound:
            client.create_concurrency_limit(tag=tag, concurrency_limit=limit)
            log.info("Created Prefect tag concurrency limit %r = %d", tag, limit)
