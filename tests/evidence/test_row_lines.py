"""verify's row digests made from per-page parts (`row_lines`) are the digest SQL's, for any
text a member's fields may hold; where the parts cannot be lined up with the rows, it says
so (None) and verify digests the rows in SQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from tasks.bitbucket.models import RawPage
from tasks.evidence import frames, hashing
from tasks.evidence.connection import in_memory
from tasks.evidence.row_lines import PageParts, run_digests
from tasks.normalise import PageMemo, observations_table
from tasks.vocabulary import Listing

# Everything JSON escapes or might: quotes, backslashes, every control character, DEL,
# the line and paragraph separators, slashes, non-ASCII and astral characters.
AWKWARD = [
    '"',
    "\\",
    "/",
    "\x7f",
    "\u2028\u2029",
    "Løvås 名前 🙂",
    '","',
    "],[",
    "null",
    "",
    *(chr(code) for code in range(32)),
]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(AWKWARD) + rng.choice("ab ") for _ in range(rng.randint(0, 4)))


def _members_page(rng: random.Random, first: int, size: int, at: datetime) -> RawPage:
    values = []
    for number in range(first, first + size):
        keyed = rng.random() < 0.7  # else the uuid is the member's key
        user = {
            "account_id": f"id-{number}-{_text(rng)}" if keyed else None,
            "uuid": f"{{{number}}}" if not keyed or rng.random() < 0.8 else None,
            "nickname": _text(rng),
            "display_name": _text(rng) if rng.random() < 0.9 else None,
            "has_2fa_enabled": rng.choice([True, False, None, "yes"]),
            "type": rng.choice(["user", "team", None, _text(rng)]),
        }
        if rng.random() < 0.5:
            user["kind"] = _text(rng)
        values.append({"user": user})
    body = orjson.dumps({"values": values})
    return RawPage(Listing.MEMBERS, f"https://x/members?page={first}", 200, at, body)


def _permissions_page(rng: random.Random, members: int, at: datetime) -> RawPage:
    values = [
        {"user": {"account_id": None}, "permission": "member"},
        *(
            {"user": {"uuid": f"{{{number}}}"}, "permission": rng.choice(["owner", _text(rng)])}
            for number in range(members)
            if rng.random() < 0.7
        ),
    ]
    body = orjson.dumps({"values": values})
    return RawPage(Listing.PERMISSIONS, "https://x/permissions", 200, at, body)


def _sql_digests(run_id: str, derived) -> tuple[str, str]:
    conn = in_memory()
    try:
        conn.register("rows", frames.observations_table(run_id, derived))
        return (
            hashing.digests(conn, "observations", "rows")[run_id],
            hashing.digests(conn, "identity", "rows")[run_id],
        )
    finally:
        conn.close()


@pytest.mark.parametrize("seed", range(8))
def test_digests_from_page_parts_are_the_digest_sqls(seed):
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-5)))
    pages = [
        _members_page(rng, first, 20, start + timedelta(microseconds=7 * first))
        for first in range(0, 60, 20)
    ]
    pages.append(_permissions_page(rng, 60, start))
    workspace = _text(rng) or "w"
    memo = PageMemo()
    derived = observations_table(workspace, pages, memo=memo)
    conn = in_memory()
    try:
        found = run_digests(conn, pages, derived, PageParts(memo))
    finally:
        conn.close()
    assert found == _sql_digests("run-1", derived)


def test_parts_that_do_not_line_up_with_the_rows_are_not_used():
    rng = random.Random(1)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    page = _members_page(rng, 0, 5, at)
    memo, conn = PageMemo(), in_memory()
    try:
        # The same page twice: normalise keeps each member's first sighting only.
        twice = observations_table("w", [page, page], memo=memo)
        assert run_digests(conn, [page, page], twice, PageParts(memo)) is None
        # Rows that are not the pages' (e.g. another run's): not digested from these parts.
        other = observations_table("w", [_members_page(rng, 0, 5, at)], memo=memo)
        assert run_digests(conn, [page], other, PageParts(memo)) is None
        # A year the two formatters might write differently.
        early = _members_page(rng, 0, 5, datetime(999, 1, 1, tzinfo=UTC))
        rows = observations_table("w", [early], memo=memo)
        assert run_digests(conn, [early], rows, PageParts(memo)) is None
    finally:
        conn.close()
