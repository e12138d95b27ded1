"""Tests for symgraph.models.corpus."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from symgraph.models.corpus import CorpusError, bundled_corpus_path, read_lines, split_lines


def test_read_lines_strips_and_drops_empty_lines(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"\xef\xbb\xbf first line \r\n\n   \nsecond\tline\n\xc3\xa9t\xc3\xa9\r\n  ")
    assert read_lines(path) == ["first line", "second\tline", "été"]
    assert read_lines(str(path)) == ["first line", "second\tline", "été"]


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(CorpusError, match="not found.*nope.txt"):
        read_lines(path)


def test_directory_is_refused(tmp_path):
    with pytest.raises(CorpusError, match="is a directory"):
        read_lines(tmp_path)


def test_invalid_utf8_reports_byte_offset_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(
        CorpusError, match=r"latin1.txt.*not valid UTF-8.*0xe9.*offset 6 \(line 2\)"
    ):
        read_lines(path)


def test_invalid_utf8_offset_counts_the_bom(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfab\xff")
    with pytest.raises(CorpusError, match="offset 5 "):
        read_lines(path)


@pytest.mark.parametrize("content", [b"", b"\n\n  \r\n\t\n"])
def test_empty_corpus_is_refused(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match="empty.txt.*no non-empty line"):
        read_lines(path)


def test_corpus_error_is_a_value_error():
    assert issubclass(CorpusError, ValueError)


def test_bundled_corpus_is_the_dinosaur_names():
    path = bundled_corpus_path()
    assert path.name == "dinos.txt" and path.is_file()
    lines = read_lines(path)
    assert len(lines) > 1000
    assert lines[0] == "Aachenosaurus"
    assert all(line == line.strip() and line for line in lines)


def test_split_is_deterministic_and_partitions():
    lines = [f"s{i}" for i in range(100)]
    train, valid = split_lines(lines, 0.1, seed=3)
    assert (train, valid) == split_lines(lines, 0.1, seed=3)
    assert len(valid) == 10 and len(train) == 90
    assert sorted(train + valid) == sorted(lines)
    # both parts keep the original order
    assert train == [s for s in lines if s in set(train)]
    assert valid != split_lines(lines, 0.1, seed=4)[1]


def test_split_small_corpora():
    assert split_lines(["a", "b"], 0.01, seed=0)[1] in (["a"], ["b"])
    assert len(split_lines(["a", "b", "c"], 0.9, seed=0)[0]) == 1
    assert split_lines(["a"], 0.5, seed=0) == (["a"], [])
    assert split_lines(["a", "b"], 0.0, seed=0) == (["a", "b"], [])


def test_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"valid_fraction must be in \[0, 1\), got 1.0"):
        split_lines(["a", "b"], 1.0, seed=0)
    with pytest.raises(ValueError, match="valid_fraction"):
        split_lines(["a", "b"], -0.1, seed=0)
    with pytest.raises(ValueError, match="no lines"):
        split_lines([], 0.1, seed=0)


@given(
    st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=50),
    st.floats(0.0, 0.99),
    st.integers(0, 2**32 - 1),
)
def test_split_property(lines, fraction, seed):
    train, valid = split_lines(lines, fraction, seed)
    assert Counter(train) + Counter(valid) == Counter(lines)
    if len(lines) >= 2 and fraction > 0:
        assert 1 <= len(valid) <= len(lines) - 1
    else:
        assert valid == []
