"""Checks made before any API call, so bad configuration fails fast with a clear message."""

from __future__ import annotations

import os
from pathlib import Path

from tasks.bitbucket.exceptions import ConfigError

# Extraction tasks carry this tag, so operators can bound API use across flow runs with a
# Prefect tag concurrency limit (`prefect concurrency-limit create bitbucket-api 4`).
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
