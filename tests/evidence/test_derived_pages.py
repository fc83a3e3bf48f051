"""Pages normalised as they arrive (`PageDeriver`): the same rows, and no second parse."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tasks import normalise
from tasks.bitbucket.models import RawPage
from tasks.evidence.store import EvidenceStore
from tasks.normalise import PageDeriver, observations_table
from tasks.policy import DEFAULT_POLICY
from tasks.vocabulary import Listing

DAY = date(2026, 3, 1)
LATER = datetime(2026, 3, 1, 6, 0, 1, tzinfo=UTC)


def awkward_members(synth) -> list[dict]:
    """Members that exercise every rule: unknown and absent 2SV, a uuid-only member, text
    that is not ASCII, owners."""
    return [
        *synth.synthetic_members(230),
        synth.member("zoë", display_name="Zoë Ünïcode", permission="owner"),
        synth.member("bot", account_id=None, has_2fa_enabled=None),
        synth.member("quiet", has_2fa_enabled=synth.ABSENT),
    ]


def derived(pages: list[RawPage]) -> normalise.PageMemo:
    deriver = PageDeriver()
    for page in pages:
        deriver.add(page)
    return deriver.finish()


def test_pages_derived_as_they_arrive_give_the_same_rows(synth):
    extract = synth.make_extract("acme", awkward_members(synth), day=DAY)
    # A member listed twice (a later page repeats the first) and a failed attempt kept as
    # evidence: the first-sighting rule and the 200-only rule must hold with the memo too.
    again = RawPage(Listing.MEMBERS, "https://x/again", 200, LATER, extract.pages[0].body)
    failed = RawPage(Listing.MEMBERS, "https://x/429", 429, LATER, b'{"error": 1}')
    pages = [*extract.pages, again, failed]
    memo = derived(pages)
    # One entry per distinct 200 body: members pages and permissions pages.
    distinct = {(page.listing, page.sha256) for page in pages if page.status_code == 200}
    assert len(memo) == len(distinct)
    assert observations_table("acme", pages, memo=memo).equals(observations_table("acme", pages))


def test_the_store_does_not_parse_a_derived_page_again(synth, tmp_path, monkeypatch):
    members = awkward_members(synth)
    plain = synth.make_extract("acme", members, day=DAY)
    with EvidenceStore.open(tmp_path / "plain.duckdb") as store:
        store.record_run(plain, policy=DEFAULT_POLICY)
        expected = store.conn.sql(ROWS).fetchall()

    fast = synth.make_extract("acme", members, day=DAY)
    fast.derived = derived(fast.pages)
    parsed: list[str] = []
    for name in ("page_members", "page_roles"):
        original = getattr(normalise, name)
        monkeypatch.setattr(
            normalise, name, lambda page, _o=original, _n=name: parsed.append(_n) or _o(page)
        )
    with EvidenceStore.open(tmp_path / "fast.duckdb") as store:
        record = store.record_run(fast, policy=DEFAULT_POLICY)
        assert store.conn.sql(ROWS).fetchall() == expected
    assert parsed == []  # every page was found in the memo
    assert record.member_count == len(members)


ROWS = """
    SELECT * EXCLUDE (run_id) FROM member_2sv_observations ORDER BY account_id, uuid
"""


@pytest.mark.parametrize("cancel", [False, True])
def test_finishing_waits_for_the_pages_given_or_drops_those_not_started(synth, cancel):
    pages = synth.make_extract("acme", synth.synthetic_members(500), day=DAY).pages
    deriver = PageDeriver()
    for page in pages:
        deriver.add(page)
    memo = deriver.finish(cancel=cancel)
    assert len(memo) <= len(pages)
    if not cancel:
        assert len(memo) == len(pages)  # 5 members pages, 5 permissions pages
    # Whatever was dropped, the rows are those of the pages.
    assert observations_table("acme", pages, memo=memo).equals(observations_table("acme", pages))


def test_roles_merged_for_one_run_are_given_again_only_while_its_pages_are_the_same(synth):
    """A memo keeps the last run's merged roles (`PageMemo.merged_roles`): the next run
    with the same permissions bodies gets them, a run whose pages changed (a role, or the
    pages' order: the first sighting wins) gets its own, the same as without a memo."""
    memo = normalise.PageMemo()
    members = awkward_members(synth)
    promoted = [*members[:3], synth.member(4, permission="owner"), *members[4:]]
    days = [
        synth.make_extract("acme", members, day=DAY, pagelen=50),
        synth.make_extract("acme", members, day=date(2026, 3, 2), pagelen=50),
        synth.make_extract("acme", promoted, day=date(2026, 3, 3), pagelen=50),
    ]
    found = [normalise.permissions_by_member(day.pages, memo) for day in days]
    assert found[1] is found[0]  # the same bodies: merged once
    assert (
        found[2] is not found[0]
        and found[2]["557058:00000004-aaaa-4bbb-8ccc-000000000004"] == "owner"
    )
    reordered = [*days[2].pages[::-1]]
    for pages in (day.pages for day in days), [reordered]:
        for run in pages:
            assert normalise.permissions_by_member(run, memo) == (
                normalise.permissions_by_member(run)
            )
    for day in days:  # the rows too
        assert observations_table("acme", day.pages, memo=memo).equals(
            observations_table("acme", day.pages)
        )
