"""One hourly API budget per credential, shared through the Prefect server's rate limit.

Two `SharedBudget`s of one credential stand for two flow runs in two processes: each has its
own in-process pacer, so only the server's limit can make them share one budget.
"""

from __future__ import annotations

import math
import time

import pytest

from tasks.bitbucket.auth import BearerToken
from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.ratelimit import RequestPacer
from tasks.shared_budget import BUSY, SharedBudget, ensure_budget_limit, pacer_for_run
from tasks.signals import StopFlag

pytestmark = pytest.mark.usefixtures("prefect_harness")
# Under pytest-xdist, no other test process uses the Prefect server meanwhile: its SQLite
# database answers writes that meet with 503. The server's own services still write now and
# then, so the tests accept a busy answer from the real server before its slot.
PREFECT_SERVER_ALONE = True

TOKEN = "tok-shared-budget-Q7"


def settings(token: str, per_hour: int = 3) -> BitbucketSettings:
    return BitbucketSettings(auth=BearerToken(token), max_requests_per_hour=per_hour)


def test_runs_of_one_credential_share_its_hourly_budget():
    name = ensure_budget_limit(settings(TOKEN))
    assert TOKEN not in name
    first_run, second_run = SharedBudget(name, 3), SharedBudget(name, 3)
    assert [first_run.reserve(time.monotonic(), within=10) for _ in range(3)] == [0.0] * 3
    # The second run's own pacer is empty, but the credential's hour is spent.
    assert second_run.reserve(time.monotonic(), within=0.5) == math.inf

    other = SharedBudget(ensure_budget_limit(settings("tok-another-credential")), 3)
    assert other.reserve(time.monotonic(), within=10) == 0.0, "another credential, another budget"


def test_a_run_uses_the_shared_budget_only_with_a_prefect_api():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    assert isinstance(pacer_for_run(settings(TOKEN)), SharedBudget)
    with temporary_settings({PREFECT_API_URL: None}):
        pacer = pacer_for_run(settings(TOKEN))
    assert type(pacer) is RequestPacer, "the CLI on its own keeps the in-process pacer"


def busy_server(monkeypatch, budget: SharedBudget, answers: list) -> list[int]:
    """The server answers the budget's next slot requests with `answers` (a status, or a
    status and headers; 503: busy), then as usual. A SQLite-backed server's 503 comes from
    two writes meeting, which a test cannot bring about on demand.

    Returns every answer in order: the given ones, then the server's own. Those can be busy
    too: the server's own services write to its SQLite file while a test runs alone."""
    import httpx

    real, sent = budget._increment, []

    def increment(slots: int) -> None:
        if answers:
            status, headers = (
                answers.pop(0) if isinstance(answers[0], tuple) else (answers.pop(0), {})
            )
            sent.append(status)
            request = httpx.Request("POST", "http://prefect.invalid/api/v2/x")
            response = httpx.Response(status, headers=headers, request=request)
            raise httpx.HTTPStatusError("busy", request=request, response=response)
        try:
            real(slots)
        except httpx.HTTPStatusError as exc:
            sent.append(exc.response.status_code)
            raise
        sent.append(200)

    monkeypatch.setattr(budget, "_increment", increment)
    return sent


def server_gave_a_slot(answers: list[int]) -> bool:
    """The server's own answers ended in a slot (200), after nothing but busy ones."""
    return answers[-1:] == [200] and all(status in BUSY for status in answers[:-1])


class RecordedPauses(StopFlag):
    """A stop flag that records each pause it is asked for (and then makes it)."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.pauses.append(seconds)
        return super().wait(seconds)


def test_a_busy_server_is_asked_again_at_once_not_after_prefects_2_s(monkeypatch):
    budget = SharedBudget(ensure_budget_limit(settings("tok-busy-server", per_hour=100)), 100)
    sent = busy_server(monkeypatch, budget, [503, 503])
    pauses = RecordedPauses()
    assert budget.reserve(time.monotonic(), within=10, stop=pauses) == 0.0
    assert sent[:2] == [503, 503] and server_gave_a_slot(sent[2:]), sent
    # Its own short pauses, one per busy answer (the pauses themselves, not the time the
    # call took, which a busy machine stretches); Prefect's backoff would sleep 2 s, then 4 s
    assert pauses.pauses[:2] == [0.05, 0.1] and len(pauses.pauses) == len(sent) - 1
    assert max(pauses.pauses) < 2.0, pauses.pauses


def test_a_server_that_stays_busy_leaves_the_run_pacing_locally(monkeypatch, caplog):
    import tasks.shared_budget as shared_budget

    monkeypatch.setattr(shared_budget, "BUSY_PAUSES", (0.01, 0.01))
    budget = SharedBudget(ensure_budget_limit(settings("tok-busy-server", per_hour=100)), 100)
    sent = busy_server(monkeypatch, budget, [503, 502, 503, 503])
    assert budget.reserve(time.monotonic(), within=10) == 0.0, "paced locally: a slot now"
    assert sent == [503, 502, 503]
    assert "unavailable" in caplog.text and "pacing locally" in caplog.text


def test_a_rate_limited_api_is_asked_again_after_its_retry_after(monkeypatch):
    budget = SharedBudget(ensure_budget_limit(settings("tok-busy-server", per_hour=100)), 100)
    sent = busy_server(
        monkeypatch, budget, [(429, {"Retry-After": "0.3"}), (503, {"Retry-After": "soon"})]
    )
    started = time.monotonic()
    assert budget.reserve(time.monotonic(), within=10) == 0.0
    assert sent[:2] == [429, 503] and server_gave_a_slot(sent[2:]), (
        f"asked again, not paced locally: {sent}"
    )
    assert time.monotonic() - started >= 0.3, "the API's Retry-After was waited"


def test_a_wait_for_a_shared_slot_ends_when_its_listing_is_stopped():
    import threading

    from tasks.signals import StopFlag

    budget = SharedBudget(ensure_budget_limit(settings("tok-stopped-wait", per_hour=1)), 1)
    assert budget.reserve(time.monotonic(), within=10) == 0.0  # the hour's one slot
    listing = StopFlag()  # the other listing failed: this one's scoped stop, not a signal
    threading.Timer(0.3, listing.request, ["the other listing failed"]).start()
    started = time.monotonic()
    assert budget.reserve(time.monotonic(), within=30, stop=listing) == math.inf
    assert time.monotonic() - started < 10, "ended by the stop, not by waiting out `within`"
