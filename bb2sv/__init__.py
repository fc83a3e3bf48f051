"""bb2sv: Bitbucket Cloud two-step verification evidence (the command line and the demo)."""

from tasks.version import __version__

__all__ = ["__version__"]
