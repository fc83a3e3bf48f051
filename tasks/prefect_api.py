"""Whether a Prefect API is configured: the one rule for which way bb2sv runs.

With one, `bb2sv collect` runs the Prefect flow, Secret blocks can be read and the request
budget is shared through a global concurrency limit; without one, nothing talks to Prefect
(which would otherwise start a temporary server of its own, about 10 s).

    from tasks.prefect_api import prefect_api_configured
    prefect_api_configured()   # False on a fresh machine
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["prefect_api_configured"]


def prefect_api_configured() -> bool:
    """Whether Prefect has an API to run flows against, as Prefect itself reads its settings
    (environment, `.env`, prefect.toml, pyproject.toml, the active profile).

    Asking Prefect means importing it (about 1 s), so that is skipped, when Prefect is not
    loaded yet, if none of the places its settings come from mentions one.
    """
    if "prefect" not in sys.modules and not _settings_may_name_an_api():
        return False
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def _settings_may_name_an_api() -> bool:
    """False only when no source of Prefect's settings can set its API URL: no PREFECT_API*
    or PREFECT_PROFILE* variable (in any case: Prefect reads `prefect_api_url` too), no
    `.env` or prefect.toml here, no [tool.prefect] in pyproject.toml, and a profiles file (in
    PREFECT_HOME, ~/.prefect) that names no API."""
    if any(name.upper().startswith(("PREFECT_API", "PREFECT_PROFILE")) for name in os.environ):
        return True
    here = Path.cwd()
    if (here / ".env").exists() or (here / "prefect.toml").exists():
        return True
    if "tool.prefect" in _text(here / "pyproject.toml"):
        return True
    prefect_home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    return "API" in _text(prefect_home / "profiles.toml").upper()


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
