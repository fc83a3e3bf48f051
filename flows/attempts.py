"""When the collection reads a workspace again, and how each attempt is described.

A workspace whose read failed for a reason worth retrying (`ErrorKind.retryable`) is read
again, up to `attempts` times, `retry_delay` seconds apart, as long as it has not kept
failing for `give_up_after` seconds: the stall (time since the page that keeps failing was
first tried) carries over from one attempt into the next, so the default 180 s bounds a
failing workspace whatever the per-page settings. A stop never starts another attempt.

    plan = AttemptPlan(attempts=3, retry_delay=10.0, give_up_after=180.0)
    again = plan.next(attempt, extract, now=time.monotonic())   # an Attempt, or None
    plan.describe(attempt, extract, again)      # the stored run's error, naming the attempt
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tasks.bitbucket.models import WorkspaceExtract
from tasks.signals import STOP
from tasks.step_functions import Attempt
from tasks.vocabulary import RunStatus

__all__ = ["AttemptPlan"]

MIN_ATTEMPT_S = 1.0  # an attempt with less time than this left is not worth starting


@dataclass(frozen=True, slots=True)
class AttemptPlan:
    attempts: int = 3
    retry_delay: float = 10.0
    give_up_after: float = 180.0

    def next(self, attempt: Attempt, extract: WorkspaceExtract, *, now: float) -> Attempt | None:
        """The attempt to make after `attempt` produced `extract`, or None if it was the last."""
        kind = extract.error_kind
        if extract.status is RunStatus.COMPLETE or kind is None or not kind.retryable:
            return None
        if attempt.number >= self.attempts or STOP.requested:
            return None
        stall_until = attempt.stall_until
        if extract.stalled_since is not None:
            ends = extract.stalled_since + self.give_up_after
            stall_until = ends if stall_until is None else min(stall_until, ends)
        if stall_until is not None and stall_until - now < self.retry_delay + MIN_ATTEMPT_S:
            return None
        return Attempt(attempt.workspace, attempt.number + 1, now + self.retry_delay, stall_until)

    def describe(
        self, attempt: Attempt, extract: WorkspaceExtract, again: Attempt | None
    ) -> WorkspaceExtract:
        """The extract with its error naming the attempt: retried, or the last one and why."""
        kind = extract.error_kind
        retryable = kind is not None and kind.retryable
        if extract.error is None or self.attempts == 1 or (attempt.number == 1 and not retryable):
            return extract  # nothing to retry, or a final answer on the first try
        note = f"attempt {attempt.number} of {self.attempts}"
        if again is not None:
            note += f", read again in {self.retry_delay:g} s"
        elif retryable and attempt.number < self.attempts and not STOP.requested:
            note += (
                f", the last: the workspace kept failing for about {self.give_up_after:g} s "
                "(give_up_after_seconds, --give-up-after)"
            )
        else:
            note += ", the last"
        return dataclasses.replace(extract, error=f"{note}: {extract.error}")
