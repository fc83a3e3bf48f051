"""`RunProblem`: one thing verify found wrong, tied to the run it concerns (if any).

RunProblem("20261127T060000Z-acme-1f3a9c2e", 7, "chain broken: …")
RunProblem("20261127T060000Z-acme-1f3a9c2e", None, "raw pages stored for a run …")
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunProblem"]


@dataclass(frozen=True, slots=True)
class RunProblem:
    run_id: str
    seq: int | None  # the run's chain position; None for rows that belong to no stored run
    what: str
