"""The tool version, read from the installed package metadata (a leaf: imports nothing of ours).

Every layer (client User-Agent, stored runs, reports, the CLI) reads it from here.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bb2sv")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
