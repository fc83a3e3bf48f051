"""The load's digest lines made with Arrow (`json_lines`) are the digest SQL's, byte for byte,
for every code point and any text, null or column a run may hold; where they cannot be
made (a timestamp outside years 1000-9999), the load digests the rows in SQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tasks.evidence import hashing, json_lines
from tasks.evidence.connection import in_memory

# Everything JSON escapes or might: quotes, backslashes, every control character, DEL,
# the line and paragraph separators, slashes, non-ASCII and astral characters.
AWKWARD = ['"', "\\", "/", "\x7f", "\u2028\u2029", "Løvås 名前 🙂", '","', "],[", "null", ""]
AWKWARD += [chr(code) for code in range(32)]

TEXTS = [
    "workspace",
    "account_id",
    "uuid",
    "nickname",
    "display_name",
    "permission",
    "two_step_state",
    "account_type",
    "kind",
    "directory_account_status",
    "directory_claim_status",
    "directory_email_domain",
]
FLAGS = ["has_2fa_enabled", "in_directory", "directory_mfa_enabled"]


@pytest.fixture(scope="module")
def conn():
    connection = in_memory()
    yield connection
    connection.close()


def _sql_lines(conn, rows: pa.Table, kind: str) -> list[str]:
    conn.register("_rows", rows)
    try:
        sql = hashing._digest_sql(kind).replace("{observations}", "_rows")
        return conn.sql(sql).to_arrow_table()["line"].to_pylist()
    finally:
        conn.unregister("_rows")


def _rows(rng: random.Random, count: int, *, clean: bool = False) -> pa.Table:
    """Observation rows: text columns mixing plain text, awkward text and nulls (or, with
    `clean`, text with nothing to escape and no null: the fast path), some columns all
    null, one all one text."""

    def text() -> str:
        if clean:
            return f"member {rng.randint(0, 10**6)} Løvås 🙂"
        return "".join(rng.choice(AWKWARD) + rng.choice("ab ") for _ in range(rng.randint(0, 3)))

    columns: dict[str, pa.Array] = {"run_id": pa.array(["r"] * count)}
    for name in TEXTS:
        shape = rng.choice(["mixed", "mixed", "null", "plain"]) if not clean else "plain"
        if shape == "null":
            values = [None] * count
        elif shape == "plain":
            values = [text() for _ in range(count)]
        else:
            values = [None if rng.random() < 0.2 else text() for _ in range(count)]
        columns[name] = pa.array(values, pa.string())
    for name in FLAGS:
        columns[name] = pa.array([rng.choice([True, False, None]) for _ in range(count)])
    start = datetime(2026, 3, 1, tzinfo=UTC)
    columns["observed_at"] = pa.array(
        [start + timedelta(microseconds=rng.randint(0, 10**12)) for _ in range(count)],
        pa.timestamp("us", tz="UTC"),
    )
    return pa.table(columns)


def test_a_text_is_written_as_to_json_writes_it_for_every_code_point(conn):
    points = [chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF]
    column = pa.array([*points, None, "plain", 'a"b\\c\x00'], pa.string())
    conn.register("_texts", pa.table({"value": column}))
    expected = conn.sql("SELECT to_json([value]::VARCHAR[])::VARCHAR FROM _texts").fetchall()
    made = json_lines.json_texts(conn, column).to_pylist()
    assert made == [line[1:-1] for (line,) in expected]


@pytest.mark.parametrize("escaped", ['"', "\\", *(chr(code) for code in range(32))])
def test_a_column_whose_one_escape_is_any_of_the_34_is_written_as_to_json(conn, escaped):
    """Text without nulls whose one character to escape is in one value: the fast path
    (quotes around the text as it is) must not be taken."""
    column = pa.array(["plain", f"a{escaped}b", "plain too"], pa.string())
    conn.register("_texts", pa.table({"value": column}))
    expected = conn.sql("SELECT to_json([value]::VARCHAR[])::VARCHAR FROM _texts").fetchall()
    assert json_lines.json_texts(conn, column).to_pylist() == [line[1:-1] for (line,) in expected]


@pytest.mark.parametrize("seed", range(6))
def test_lines_are_the_sql_lines_for_any_rows(conn, seed):
    rows = _rows(random.Random(seed), 300, clean=seed == 0)
    assert json_lines.observation_lines(conn, rows).to_pylist() == _sql_lines(
        conn, rows, "observations"
    )
    assert json_lines.identity_lines(conn, rows).to_pylist() == _sql_lines(conn, rows, "identity")


def test_lines_of_columns_in_pieces_or_cut_from_larger_ones(conn):
    """A column in several chunks, or a slice whose buffer holds bytes of values around it
    (an escaped one among them), makes the same lines."""
    rows = _rows(random.Random(7), 400)
    cut = rows.slice(100, 200)
    pieces = pa.Table.from_batches(rows.to_batches(max_chunksize=37))
    for table in (cut, pieces):
        assert json_lines.observation_lines(conn, table).to_pylist() == _sql_lines(
            conn, table, "observations"
        )
        assert json_lines.identity_lines(conn, table).to_pylist() == _sql_lines(
            conn, table, "identity"
        )


def test_no_rows_make_no_lines_and_the_empty_digest(conn):
    rows = _rows(random.Random(1), 0)
    assert len(json_lines.observation_lines(conn, rows)) == 0
    assert len(json_lines.identity_lines(conn, rows)) == 0
    assert hashing.sorted_digest(json_lines.identity_lines(conn, rows)) == hashing.EMPTY_SHA256


@pytest.mark.parametrize("odd", ["year 999", "year 10000", "null"])
def test_a_time_outside_years_1000_to_9999_is_left_to_the_sql(conn, odd):
    rows = _rows(random.Random(2), 5)
    micros = rows["observed_at"].combine_chunks().cast(pa.int64()).to_pylist()
    micros[3] = {
        "year 999": (datetime(999, 12, 31, 23, 59, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC))
        // timedelta(microseconds=1),
        "year 10000": 253402300800 * 10**6,  # 10000-01-01T00:00:00Z
        "null": None,
    }[odd]
    column = pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    rows = rows.set_column(rows.schema.get_field_index("observed_at"), "observed_at", column)
    assert json_lines.observation_lines(conn, rows) is None
    around = rows.slice(0, 3)  # the times around it are written
    assert json_lines.observation_lines(conn, around).to_pylist() == _sql_lines(
        conn, around, "observations"
    )


def test_the_load_digests_are_the_sql_digests(conn):
    rows = _rows(random.Random(3), 500)
    pages = pa.table(
        {
            "run_id": pa.array([], pa.string()),
            "seq": pa.array([], pa.int32()),
            "listing": pa.array([], pa.string()),
            "url": pa.array([], pa.string()),
            "status_code": pa.array([], pa.int32()),
            "fetched_at": pa.array([], pa.timestamp("us", tz="UTC")),
            "sha256": pa.array([], pa.string()),
        }
    )
    made = hashing.run_digests_apart("r", pages, rows)
    conn.register("_rows", rows)
    try:
        assert made.observations_sha256 == hashing.digests(conn, "observations", "_rows")["r"]
        assert made.identity_sha256 == hashing.digests(conn, "identity", "_rows")["r"]
    finally:
        conn.unregister("_rows")


def test_lines_made_with_their_newline_give_the_same_digest(conn):
    """The load makes each line with its "\n" and hashes the sorted lines' own buffer; a
    line that is the start of another (a shorter name) still sorts first."""
    rows = _rows(random.Random(4), 400)
    prefix = pa.array(["ab", "a", "abc", 'a"', "a\\", "", "b"] * 3, pa.string())
    for lines, ended in (
        (
            json_lines.observation_lines(conn, rows),
            json_lines.observation_lines(conn, rows, ending="\n"),
        ),
        (json_lines.identity_lines(conn, rows), json_lines.identity_lines(conn, rows, ending="\n")),
        (prefix, pc.binary_join_element_wise(prefix, "\n", "")),
    ):
        assert hashing.sorted_digest(ended, ended=True) == hashing.sorted_digest(lines)
        assert hashing.sorted_digest(ended.cast(pa.large_string()), ended=True) == (
            hashing.sorted_digest(lines)
        )
    with pytest.raises(ValueError, match="without its newline"):
        hashing.sorted_digest(pa.array(["b", "a"]), ended=True)


@pytest.mark.parametrize("stretch", [1, 7, 400, 401])
def test_lines_sorted_a_stretch_at_a_time_give_the_same_digest(conn, monkeypatch, stretch):
    """The load sorts its lines into stretches of _SORTED_STRETCH, hashed one after another:
    the digest is that of all the lines sorted at once, whatever the stretch."""
    rows = _rows(random.Random(5), 400)
    lines = json_lines.observation_lines(conn, rows)
    whole = hashing.sorted_digest(lines)
    monkeypatch.setattr(hashing, "_SORTED_STRETCH", stretch)
    ended = json_lines.observation_lines(conn, rows, ending="\n")
    assert hashing.sorted_digest(ended, ended=True) == whole
    assert hashing.sorted_digest(ended.slice(1, 399), ended=True) == hashing.sorted_digest(
        lines.slice(1, 399)
    )


@pytest.mark.parametrize(
    "kind", [pa.timestamp("us"), pa.timestamp("ns", tz="UTC")], ids=["naive", "nanoseconds"]
)
def test_a_time_without_zone_or_finer_than_microseconds_is_left_to_the_sql(conn, kind):
    rows = _rows(random.Random(5), 3)
    column = rows["observed_at"].cast(kind)
    rows = rows.set_column(rows.schema.get_field_index("observed_at"), "observed_at", column)
    assert json_lines.observation_lines(conn, rows) is None
