"""bb2sv: Bitbucket Cloud two-step verification evidence."""

__version__ = "0.1.0"
