"""Tests for symgraph.models.vocab."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from symgraph.models.vocab import DEFAULT_SPECIALS, EOS, PAD, UNK, Vocabulary, tokenize

words = st.text(alphabet="abcxyz\0é ", min_size=1, max_size=4)


def test_build_orders_specials_then_frequency_then_alphabet():
    vocab = Vocabulary.build(list("banana bread"))
    assert vocab.tokens[:3] == DEFAULT_SPECIALS
    # counts: a=4, b=2, n=2, r=1, e=1, d=1, ' '=1
    assert vocab.tokens[3:] == ("a", "b", "n", " ", "d", "e", "r")
    assert (vocab.pad_id, vocab.unk_id, vocab.eos_id) == (0, 1, 2)


def test_build_min_count_and_max_size():
    tokens = ["x"] * 3 + ["y"] * 2 + ["z"]
    assert Vocabulary.build(tokens, min_count=2).tokens[3:] == ("x", "y")
    assert Vocabulary.build(tokens, max_size=4).tokens == (PAD, UNK, EOS, "x")
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary.build(tokens, max_size=2)
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(tokens, min_count=0)


def test_build_does_not_count_specials_or_duplicate_them():
    vocab = Vocabulary.build(["<unk>", "a", "<unk>"])
    assert vocab.tokens == (PAD, UNK, EOS, "a")


def test_encode_maps_unknown_tokens_to_unk():
    vocab = Vocabulary.build(["the", "cat", "the"])
    ids = vocab.encode(["the", "dog", "cat", "<eos>"])
    assert ids.dtype == np.int32
    assert ids.tolist() == [vocab.id_of("the"), vocab.unk_id, vocab.id_of("cat"), vocab.eos_id]
    empty = vocab.encode([])
    assert empty.dtype == np.int32 and empty.shape == (0,)


def test_encode_without_unk_token_names_the_token():
    vocab = Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match="'c'.*<unk>"):
        vocab.encode(["a", "c"])
    with pytest.raises(ValueError, match="no '<pad>' token"):
        _ = vocab.pad_id


def test_decode_checks_ids():
    vocab = Vocabulary.build("ab")
    assert vocab.decode(np.array([3, 4, 2], dtype=np.int64)) == ["a", "b", EOS]
    assert vocab.decode([]) == []
    with pytest.raises(ValueError, match=r"id 5, expected ids in \[0, 5\)"):
        vocab.decode([0, 5])
    with pytest.raises(ValueError, match="id -1"):
        vocab.decode([-1])
    with pytest.raises(ValueError, match="integer ids"):
        vocab.decode([1.0])


def test_len_contains_iter_eq():
    vocab = Vocabulary.build("hello")
    assert len(vocab) == 3 + 4
    assert "l" in vocab and "z" not in vocab and UNK in vocab
    assert list(vocab) == list(vocab.tokens)
    assert vocab == Vocabulary.build("olleh")
    assert vocab != Vocabulary.build("hello!")


def test_constructor_rejects_duplicates_empty_and_missing_specials():
    with pytest.raises(ValueError, match="unique.*'a' has ids 0 and 2"):
        Vocabulary(["a", "b", "a"])
    with pytest.raises(ValueError, match="non-empty"):
        Vocabulary(["a", ""])
    with pytest.raises(ValueError, match="not among"):
        Vocabulary(["a"], specials=["<pad>"])
    with pytest.raises(ValueError, match="non-empty str"):
        Vocabulary.build(["a", ""])


def test_tokenize_levels():
    assert tokenize("ab c", "char") == ["a", "b", " ", "c"]
    assert tokenize("  the   cat sat ", "word") == ["the", "cat", "sat"]
    assert tokenize("", "word") == []
    with pytest.raises(ValueError, match="'char' or 'word', got 'byte'"):
        tokenize("x", "byte")
    with pytest.raises(TypeError, match="str"):
        tokenize(b"x", "char")


def test_arrays_round_trip_through_npz_without_pickle(tmp_path):
    vocab = Vocabulary.build(["a\0", "\0", "é", "naïve", "a\0", "b"])
    arrays = vocab.to_arrays()
    assert all(a.dtype != object for a in arrays.values())
    np.savez(tmp_path / "v.npz", **arrays)
    with np.load(tmp_path / "v.npz", allow_pickle=False) as npz:
        restored = Vocabulary.from_arrays({k: npz[k] for k in npz.files})
    assert restored == vocab
    assert restored.tokens == vocab.tokens
    assert restored.eos_id == vocab.eos_id


def test_from_arrays_reports_bad_input():
    arrays = Vocabulary.build("abc").to_arrays()
    with pytest.raises(ValueError, match="lack.*token_lengths"):
        Vocabulary.from_arrays({"tokens": arrays["tokens"], "special_ids": arrays["special_ids"]})
    with pytest.raises(ValueError, match="unicode"):
        Vocabulary.from_arrays({**arrays, "tokens": np.arange(6)})
    with pytest.raises(ValueError, match="special_ids"):
        Vocabulary.from_arrays({**arrays, "special_ids": np.array([0, 99])})


def test_empty_vocabulary_round_trips():
    vocab = Vocabulary([])
    assert len(vocab) == 0
    assert Vocabulary.from_arrays(vocab.to_arrays()) == vocab


@given(st.lists(words, min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_build_is_independent_of_token_order(tokens, rnd):
    shuffled = list(tokens)
    rnd.shuffle(shuffled)
    assert Vocabulary.build(tokens) == Vocabulary.build(shuffled)


@given(st.lists(words, min_size=1, max_size=30), st.lists(words, max_size=10))
def test_decode_inverts_encode_for_known_tokens(tokens, extra):
    vocab = Vocabulary.build(tokens)
    assert vocab.decode(vocab.encode(tokens)) == tokens
    decoded = vocab.decode(vocab.encode(extra))
    assert decoded == [t if t in vocab else UNK for t in extra]
    assert Vocabulary.from_arrays(vocab.to_arrays()) == vocab
