"""Pure pieces of the client: Retry-After parsing, backoff, pacing window, next-link rules."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from tasks.bitbucket.ambiguous_json import _no_key_lost, ambiguous_json
from tasks.bitbucket.client import public_url
from tasks.bitbucket.exceptions import PaginationAnomaly
from tasks.bitbucket.extract import listing_url
from tasks.bitbucket.paginator import NextLinkPaginator
from tasks.bitbucket.ratelimit import RequestPacer
from tasks.bitbucket.retry import backoff_delay, retry_after_seconds

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("Fri, 27 Nov 2026 12:00:30 GMT", 30.0),
        ("Fri, 27 Nov 2026 11:59:00 GMT", 0.0),  # in the past: go now
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(value, seconds):
    assert retry_after_seconds(value, NOW) == seconds


def test_backoff_is_full_jitter_and_capped():
    rng = random.Random(5)
    first = [backoff_delay(1, base=1.0, cap=30.0, rng=rng) for _ in range(200)]
    late = [backoff_delay(12, base=1.0, cap=30.0, rng=rng) for _ in range(200)]
    assert all(0 <= d <= 1.0 for d in first)
    assert all(0 <= d <= 30.0 for d in late) and max(late) > 20  # reaches up to the cap
    assert min(late) < 10  # full jitter: may be short


def test_pacer_sliding_window_and_slow_down():
    pacer = RequestPacer(3, window=100.0)
    assert [pacer.reserve(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert pacer.reserve(10.0) == 90.0  # fourth waits for the first to leave the window
    assert pacer.reserve(150.0) == 0.0
    before = pacer.slowdowns  # a request sent now, answered after the slow-down below
    pacer.slow_down(5.0)
    assert pacer.slowed and pacer.reserve(150.0) == 5.0
    pacer.relax(before)  # its answer lacks NearLimit, but it was sent before: still slowed
    assert pacer.slowed
    pacer.relax(pacer.slowdowns)  # a request sent after the slow-down: the limit is clear
    assert not pacer.slowed


def test_paginator_follows_opaque_links_and_refuses_loops_other_hosts_and_paths():
    first = "https://api.example.com/2.0/workspaces/a/members?pagelen=100"
    paginator = NextLinkPaginator(first)
    second = "https://api.example.com/2.0/workspaces/a/members?cursor=zz%2Bq"
    assert paginator.count_page(["a1"]) == 1
    assert paginator.next_url({"values": [], "next": second}) == second  # exactly as given
    assert paginator.count_page(["a2"]) == 2
    with pytest.raises(PaginationAnomaly, match="loop"):
        paginator.next_url({"values": [], "next": first})
    assert NextLinkPaginator(first).next_url({"values": []}) is None
    with pytest.raises(PaginationAnomaly, match="another host"):
        NextLinkPaginator(first).next_url({"next": "https://evil.example/2.0/x"})
    other = "https://api.example.com/2.0/workspaces/b/members?page=2"  # another workspace
    with pytest.raises(PaginationAnomaly, match="links to another listing"):
        NextLinkPaginator(first).next_url({"next": other})


def test_paginator_names_the_loop_and_the_page_it_was_on():
    first = "https://api.example.com/2.0/workspaces/a/members?pagelen=100"
    second = "https://api.example.com/2.0/workspaces/a/members?page=2"
    paginator = NextLinkPaginator(first)
    paginator.count_page(["a1", "a2"])
    paginator.next_url({"next": second})
    paginator.count_page(["a3"])
    with pytest.raises(PaginationAnomaly) as link_loop:
        paginator.next_url({"next": "/2.0/workspaces/a/members?pagelen=100"})  # relative
    assert link_loop.value.message == (
        f"next-link loop: page 2 points back to {first}, which was already read"
    )
    # Back to page 1 under another URL: caught by its members, not its link.
    again = paginator.next_url({"next": first + "&page=1"})
    with pytest.raises(PaginationAnomaly) as repeat:
        paginator.count_page(["a1", "a2"])
    assert repeat.value.message == f"next-link loop: page 3 ({again}) repeats page 1 exactly"


def test_paginator_lets_empty_pages_and_new_members_through():
    paginator = NextLinkPaginator("https://api.example.com/2.0/workspaces/a/members")
    assert [paginator.count_page(keys) for keys in ([], [], ["a1"], ["a1", "a2"])] == [1, 2, 3, 4]
    assert paginator.pages == 4
    with pytest.raises(PaginationAnomaly, match="not a URL"):
        paginator.next_url({"next": 7})
    with pytest.raises(PaginationAnomaly) as huge:  # a hostile API's 200 KB of it
        paginator.next_url({"next": ["x" * 200_000]})
    assert len(huge.value.message) < 300, "the value is cut in the message (and the report)"


def test_public_url_drops_credentials():
    url = httpx.URL("https://u:p@api.example.com/2.0/x?page=2&access_token=abc")
    assert public_url(url) == "https://api.example.com/2.0/x?page=2"


def test_listing_url_encodes_plus_and_uuid_slug():
    url = listing_url("https://api.example.com/2.0", "{1234-ab}", "members")
    assert url == (
        "https://api.example.com/2.0/workspaces/%7B1234-ab%7D/members"
        "?pagelen=100&fields=%2Bvalues.user.has_2fa_enabled"
    )
    assert httpx.Request("GET", url).url.raw_path.endswith(b"fields=%2Bvalues.user.has_2fa_enabled")


def test_a_scoped_stop_follows_its_parent_and_stops_nothing_else():
    from tasks.signals import StopFlag, stop_scope

    parent = StopFlag()
    with stop_scope(parent) as scope:
        scope.request("the other listing's failure")
        assert scope.requested and not parent.requested  # the rest of the process goes on
    with stop_scope(parent) as scope:
        parent.request("SIGTERM")
        assert (scope.requested, scope.reason) == (True, "SIGTERM")
    with stop_scope(parent) as scope:  # a stop that came before the scope reaches it too
        assert (scope.requested, scope.reason) == (True, "SIGTERM")


def test_a_system_clock_stopped_by_a_flag_ends_its_sleep_on_it():
    from tasks.bitbucket.clock import SYSTEM_CLOCK, stopped_by
    from tasks.signals import STOP, StopFlag

    flag = StopFlag()
    flag.request("the other listing's failure")
    clock = stopped_by(SYSTEM_CLOCK, flag)
    assert clock.stop is flag and SYSTEM_CLOCK.stop is STOP  # a copy; the original is kept
    clock.sleep(3600)  # returns at once: the flag is requested
    fake = object()
    assert stopped_by(fake, flag) is fake  # a test clock's sleeps do not really wait


def test_alarms_ring_in_time_order_unless_cancelled_and_survive_a_failing_one():
    import threading
    import time

    from tasks.bitbucket.inflight import Alarms

    alarms, rung, done = Alarms(), [], threading.Event()
    now = time.monotonic()

    def ring(name: str) -> None:
        rung.append(name)
        if name == "last":
            done.set()

    def broken() -> None:
        raise RuntimeError("a callback that fails")

    # Tenths of a second apart: the cancel must come before its alarm is due, however long
    # a busy machine holds this thread between the two calls.
    alarms.call_at(now + 0.6, lambda: ring("last"))
    cancelled = alarms.call_at(now + 0.2, lambda: ring("cancelled"))
    alarms.call_at(now + 0.1, broken)
    alarms.call_at(now + 0.3, lambda: ring("second"))
    alarms.call_at(now, lambda: ring("first"))
    alarms.cancel(cancelled)
    assert done.wait(5), "the alarms stopped ringing"
    assert rung == ["first", "second", "last"]
    assert time.monotonic() - now >= 0.6  # not before its time


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"values": [{"user": {"uuid": "{u}", "has_2fa_enabled": true}}], "size": 1}', None),
        (b'{"a": {"b": [{"c": 1, "c": 2}]}}', "gives the key 'c' twice in one object"),
        (b'{"a": 1, "a": 1}', "gives the key 'a' twice in one object"),  # even the same value
        (b'{"\\u0061": 1, "a": 2}', "gives the key 'a' twice in one object"),  # spelt apart
        (b'{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}', None),  # one per object is fine
        (b"[" * 5000 + b"]" * 5000, "nests too deep to be checked for keys given twice"),
    ],
)
def test_json_readers_could_disagree_on(body, said):
    assert ambiguous_json(body) == said


# Pages the count must not vouch for: each gives a key twice, hidden from a naive count.
HIDDEN_TWICE = [
    b'{"a": 1, "a" : 2}',  # blank before the colon
    b'{"a":1,"a"\n:2}',
    b'{"a": 1, "a": 2, "b": "\\u0022:"}',  # a quote-colon that orjson writes as \":
    b'{"a": 1, "a": 2, "b": ":x"}',  # a string that starts with a colon
    b'{"a": 1, "a": 2, ":k": 0}',
    b'{"a": 1, "a": 2, "b": [":x"]}',
    b'{"a": 1, "a": 2, "b\\\\": 3}',  # a key ending in a backslash
    b'{"\\u0061": 1, "a": 2}',
    b'{"v": [{"u": {"x": 1, "x": 1}}]}',
]


@pytest.mark.parametrize("body", HIDDEN_TWICE)
def test_a_key_given_twice_is_found_with_the_document_too(body):
    said = ambiguous_json(body)
    assert said is not None and "twice in one object" in said
    assert ambiguous_json(body, orjson.loads(body)) == said


def test_with_the_document_an_ordinary_page_is_not_read_again(monkeypatch):
    import json

    body = (
        b'{"pagelen": 100, "values": [{"user": {"uuid": "{u}", "account_id": "5:a", '
        b'"links": {"self": {"href": "https://x/y?a=1"}}, "has_2fa_enabled": true}, '
        b'"permission": "owner"}], "next": "https://x/?page=2"}'
    )
    calls = []
    monkeypatch.setattr(json, "loads", lambda *a, **k: calls.append(a))
    assert ambiguous_json(body, orjson.loads(body)) is None
    assert calls == []  # the count answered
    ambiguous_json(body)
    assert len(calls) == 1  # without the document, Python's reader


def test_the_count_agrees_with_pythons_reader_on_random_pages():
    """Random pages with keys given twice or not, quotes, colons, backslashes, blanks and
    escapes in keys and values: with the document or without, the same answer."""
    rng = random.Random(20261129)
    pieces = ['"', ":", "\\\\", "\\u0022", "\\u003a", "a", "b", " ", "{", ",", "\\n"]

    def text() -> str:
        return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4))).replace('"', '\\"')

    def value(depth: int) -> str:
        kind = rng.random()
        if depth < 3 and kind < 0.3:
            return obj(depth + 1)
        if depth < 3 and kind < 0.4:
            return "[" + ", ".join(value(depth + 1) for _ in range(rng.randint(0, 3))) + "]"
        return f'"{text()}"' if kind < 0.8 else str(rng.randint(0, 9))

    def obj(depth: int) -> str:
        keys = [rng.choice(["a", "b", "\\u0061", text()]) for _ in range(rng.randint(0, 4))]
        blank = rng.choice(["", "", "", " ", "\n"])
        return "{" + ", ".join(f'"{key}"{blank}: {value(depth)}' for key in keys) + "}"

    found = vouched = 0
    for _ in range(3000):
        body = obj(0).encode()
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            continue
        said = ambiguous_json(body)
        found += said is not None
        vouched += _no_key_lost(body, document)
        assert ambiguous_json(body, document) == said, body
    assert found > 300  # keys given twice were among them
    assert vouched > 300  # and pages the count answered for


def test_duckdb_and_orjson_read_a_key_given_twice_differently():
    """Why a page giving a key twice is refused: the evidence and SQL over it would differ."""
    import duckdb
    import orjson

    body = '{"has_2fa_enabled": false, "has_2fa_enabled": true}'
    assert orjson.loads(body)["has_2fa_enabled"] is True
    with duckdb.connect() as conn:
        (first,) = conn.execute("SELECT json_extract(?, '$.has_2fa_enabled')", [body]).fetchone()
    assert first == "false"
