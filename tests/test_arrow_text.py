"""`text_of`: an Arrow string array's values as one text, read from the array's own buffer."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tasks.arrow_text import text_of


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_the_values_one_after_the_other(kind):
    lines = pa.array(["a,b\r\n", "", None, "Zoë 山田\r\n", "last"], kind)
    assert bytes(text_of(lines)) == "a,b\r\nZoë 山田\r\nlast".encode()


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_a_slice_gives_only_its_own_values(kind):
    lines = pa.array(["skipped\n", "one\n", "two\n", "after\n"], kind)
    assert bytes(text_of(lines.slice(1, 2))) == b"one\ntwo\n"
    assert bytes(text_of(lines.slice(4))) == b""


def test_no_values_no_text():
    assert bytes(text_of(pa.array([], pa.string()))) == b""
    assert bytes(text_of(pa.array([None, None], pa.string()))) == b""
    assert bytes(text_of(pa.array([""], pa.large_string()))) == b""


def test_the_text_is_the_arrays_own_buffer_not_a_copy():
    lines = pa.array(["x" * 1_000, "y"])
    assert text_of(lines).obj.address == lines.buffers()[2].address


@pytest.mark.parametrize(
    ("kind", "values"),
    [(pa.binary(), [b"ab", b"cd"]), (pa.string_view(), ["ab", "cd"]), (pa.int32(), [1])],
)
def test_other_arrays_are_refused(kind, values):
    with pytest.raises(TypeError, match="string arrays"):
        text_of(pa.array(values, kind))
