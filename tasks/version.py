"""The tool version, read from the installed package metadata (a leaf: imports nothing of ours).

Every layer (client User-Agent, stored runs, reports, the CLI) reads it from here.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bb2sv")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


_RELEASE = re.compile(r"^([0-9]{1,9})\.([0-9]{1,9})")  # ASCII, and short enough for int()


def release_of(tool_version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a bb2sv version as stored with a run or a report; None when it
    does not read as one (none given, a source tree never installed, or not a version)."""
    found = _RELEASE.match(tool_version or "")
    return None if found is None else (int(found[1]), int(found[2]))
