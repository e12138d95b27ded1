"""Tests for symgraph.models.batching."""

import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from symgraph.models.batching import (
    BPTTStream,
    PaddedBatch,
    check_mask,
    make_padded_batches,
    padding_fraction,
)

PAD = 0
sequences_st = st.lists(
    st.lists(st.integers(1, 50), min_size=2, max_size=12).map(np.array), min_size=1, max_size=25
)


def test_small_example_by_hand():
    seqs = [np.array([2, 5, 6, 2]), np.array([2, 7, 2])]
    (batch,) = make_padded_batches(seqs, batch_size=2, pad_id=PAD, bucket=False)
    np.testing.assert_array_equal(batch.inputs, [[2, 2], [5, 7], [6, 0]])
    np.testing.assert_array_equal(batch.targets, [[5, 7], [6, 2], [2, 0]])
    np.testing.assert_array_equal(batch.mask, [[1, 1], [1, 1], [1, 0]])
    assert batch.inputs.dtype == np.int32 and batch.targets.dtype == np.int32
    assert batch.mask.dtype == np.float32
    assert batch.n_tokens == 5
    assert batch.lengths.tolist() == [3, 2] and batch.indices.tolist() == [0, 1]
    assert batch.padding_fraction == pytest.approx(1 / 6)
    assert (batch.n_steps, batch.batch_size) == (3, 2)


def test_bos_id_is_prepended():
    (batch,) = make_padded_batches([[4, 9]], batch_size=1, pad_id=PAD, bos_id=9)
    np.testing.assert_array_equal(batch.inputs[:, 0], [9, 4])
    np.testing.assert_array_equal(batch.targets[:, 0], [4, 9])


def test_mask_dtype_option():
    (batch,) = make_padded_batches([[1, 2]], 1, PAD, dtype="float64")
    assert batch.mask.dtype == np.float64
    with pytest.raises(ValueError, match="float dtype, got int32"):
        make_padded_batches([[1, 2]], 1, PAD, dtype="int32")


def test_bucketing_cuts_padding():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 9, size=n) for n in rng.integers(2, 40, size=200)]
    plain = make_padded_batches(seqs, 16, PAD, bucket=False)
    bucketed = make_padded_batches(seqs, 16, PAD, bucket=True, shuffle_seed=1)
    assert padding_fraction(bucketed) < padding_fraction(plain) / 3
    assert padding_fraction(plain) > 0.2


def test_shuffle_seed_is_deterministic():
    seqs = [np.arange(1, n) for n in range(3, 40)]
    first = make_padded_batches(seqs, 4, PAD, shuffle_seed=7)
    again = make_padded_batches(seqs, 4, PAD, shuffle_seed=7)
    other = make_padded_batches(seqs, 4, PAD, shuffle_seed=8)
    assert [b.indices.tolist() for b in first] == [b.indices.tolist() for b in again]
    assert [b.indices.tolist() for b in first] != [b.indices.tolist() for b in other]
    unshuffled = make_padded_batches(seqs, 4, PAD)
    assert [b.n_steps for b in unshuffled] == sorted(b.n_steps for b in unshuffled)


def test_empty_and_bad_arguments():
    with pytest.raises(ValueError, match="empty list of sequences"):
        make_padded_batches([], 4, PAD)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        make_padded_batches([[1, 2]], 0, PAD)
    with pytest.raises(ValueError, match="pad_id"):
        make_padded_batches([[1, 2]], 1, -1)
    with pytest.raises(ValueError, match="sequence 1 must hold integer ids, got dtype float64"):
        make_padded_batches([[1, 2], [1.5, 2.0]], 1, PAD)
    with pytest.raises(ValueError, match="sequence 0 must be a 1-D"):
        make_padded_batches([[[1, 2]]], 1, PAD)
    with pytest.raises(ValueError, match="sequence 0 holds id -3"):
        make_padded_batches([[1, -3]], 1, PAD)


def test_short_sequences_are_skipped_with_a_count():
    seqs = [[1], [], [1, 2, 3], [4]]
    with pytest.warns(UserWarning, match="skipped 3 of 4 sequences"):
        batches = make_padded_batches(seqs, 2, PAD)
    assert len(batches) == 1 and batches[0].indices.tolist() == [2]
    with pytest.raises(ValueError, match="all 2 sequences are shorter than 2"):
        make_padded_batches([[1], []], 2, PAD)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_padded_batches([[1], [2]], 2, PAD, bos_id=3)  # bos makes them long enough


@given(sequences_st, st.integers(1, 8), st.booleans(), st.one_of(st.none(), st.integers(0, 99)))
def test_padded_batches_properties(seqs, batch_size, bucket, seed):
    batches = make_padded_batches(seqs, batch_size, PAD, bucket=bucket, shuffle_seed=seed)
    assert len(batches) == -(-len(seqs) // batch_size)
    assert sorted(b.batch_size for b in batches)[1:] == [batch_size] * (len(batches) - 1)
    seen = []
    for batch in batches:
        assert batch.mask.sum() == batch.n_tokens
        np.testing.assert_array_equal(check_mask(batch.mask, batch.inputs.shape), batch.lengths)
        assert batch.n_steps == batch.lengths.max()
        assert np.all(batch.inputs[batch.mask == 0] == PAD)
        assert np.all(batch.targets[batch.mask == 0] == PAD)
        for col, j in enumerate(batch.indices):
            n = batch.lengths[col]
            original = seqs[j]
            rebuilt = np.concatenate([batch.inputs[:1, col], batch.targets[:n, col]])
            np.testing.assert_array_equal(rebuilt, original)
            np.testing.assert_array_equal(batch.inputs[1:n, col], batch.targets[: n - 1, col])
            seen.append(int(j))
    assert sorted(seen) == list(range(len(seqs)))
    # every real token appears exactly once among the masked targets
    targets = Counter(t for b in batches for t in b.targets[b.mask == 1].tolist())
    assert targets == Counter(t for s in seqs for t in s[1:].tolist())
    total = sum(b.mask.size for b in batches)
    real = sum(len(s) - 1 for s in seqs)
    assert padding_fraction(batches) == pytest.approx(1 - real / total)


def test_padding_fraction_of_nothing():
    with pytest.raises(ValueError, match="no batches"):
        padding_fraction([])


def test_padded_batch_shape_check():
    with pytest.raises(ValueError, match="targets has shape"):
        PaddedBatch(np.zeros((2, 3)), np.zeros((3, 3)), np.ones((2, 3)), 6)
    batch = PaddedBatch(np.zeros((2, 2)), np.zeros((2, 2)), np.array([[1, 1], [1, 0.0]]), 3)
    assert batch.lengths.tolist() == [2, 1]


# ----------------------------------------------------------------------------- check_mask


def test_check_mask_accepts_valid_masks():
    mask = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1]], dtype=np.float32)
    assert check_mask(mask, (3, 3)).tolist() == [2, 1, 3]
    assert check_mask(mask.astype(bool), (3, 3, 8)).tolist() == [2, 1, 3]
    assert check_mask(mask.astype(np.int64), [3, 3]).tolist() == [2, 1, 3]


def test_check_mask_shape_errors():
    with pytest.raises(ValueError, match=r"2-D \(T, B\), got a 1-D mask of shape \(3,\)"):
        check_mask(np.ones(3), (3,))
    with pytest.raises(ValueError, match=r"mask shape \(3, 2\) does not match inputs of shape"):
        check_mask(np.ones((3, 2)), (2, 3))
    with pytest.raises(ValueError, match="no columns"):
        check_mask(np.ones((3, 0)), (3, 0))


def test_check_mask_value_errors():
    mask = np.ones((4, 2))
    mask[2, 1] = 0.5
    mask[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"2 entries hold other values, e.g. mask\[2, 1\] = 0.5"):
        check_mask(mask, (4, 2))
    with pytest.raises(ValueError, match="float, int or bool"):
        check_mask(np.array([["a"]]), (1, 1))


def test_check_mask_padding_must_be_at_the_end():
    mask = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 0]], dtype=np.float32)
    with pytest.raises(ValueError, match="column 1 has 0 at step 1 followed by 1 at step 2.*2 col"):
        check_mask(mask, (3, 3))


def test_check_mask_rejects_empty_columns():
    mask = np.array([[1, 0], [1, 0]], dtype=np.float32)
    with pytest.raises(ValueError, match="1 all-zero column.*column 1"):
        check_mask(mask, (2, 2))
    with pytest.raises(ValueError, match="all-zero"):
        check_mask(np.zeros((0, 2)), (0, 2))


# ----------------------------------------------------------------------------- BPTTStream


def tf_ptb_producer(raw, batch_size, num_steps):
    """TensorFlow's PTB reader (ptb_producer), in numpy, as the reference."""
    data_len = len(raw)
    batch_len = data_len // batch_size
    data = np.reshape(raw[: batch_size * batch_len], [batch_size, batch_len])
    epoch_size = (batch_len - 1) // num_steps
    for i in range(epoch_size):
        x = data[:, i * num_steps : (i + 1) * num_steps]
        y = data[:, i * num_steps + 1 : (i + 1) * num_steps + 1]
        yield x, y


def test_bptt_small_example():
    stream = BPTTStream(np.arange(20), batch_size=2, bptt=3)
    assert stream.rows.tolist() == [list(range(10)), list(range(10, 20))]
    assert len(stream) == 3 and stream.n_tokens == 18
    x, y = stream[0]
    assert x.dtype == np.int32 and y.dtype == np.int32 and x.shape == (3, 2)
    np.testing.assert_array_equal(x, [[0, 10], [1, 11], [2, 12]])
    np.testing.assert_array_equal(y, [[1, 11], [2, 12], [3, 13]])
    np.testing.assert_array_equal(stream[-1][1], [[7, 17], [8, 18], [9, 19]])
    with pytest.raises(IndexError, match="3 windows, got index 3"):
        stream[3]


def test_bptt_too_short_stream():
    with pytest.raises(
        ValueError, match=r"10 ids is too short.*at least batch_size \* \(bptt \+ 1"
    ):
        BPTTStream(np.arange(10), batch_size=2, bptt=5)
    BPTTStream(np.arange(12), batch_size=2, bptt=5)  # exactly one window
    with pytest.raises(ValueError, match="bptt must be a positive int"):
        BPTTStream(np.arange(10), batch_size=2, bptt=0)
    with pytest.raises(ValueError, match="integer ids"):
        BPTTStream(np.linspace(0, 1, 50), batch_size=2, bptt=2)


@given(
    st.integers(1, 300).flatmap(lambda n: st.lists(st.integers(0, 1000), min_size=n, max_size=n)),
    st.integers(1, 6),
    st.integers(1, 10),
)
def test_bptt_properties(ids, batch_size, bptt):
    ids = np.array(ids)
    batch_len = len(ids) // batch_size
    if (batch_len - 1) // bptt < 1:
        with pytest.raises(ValueError, match="too short"):
            BPTTStream(ids, batch_size, bptt)
        return
    stream = BPTTStream(ids, batch_size, bptt)
    windows = list(stream)
    reference = list(tf_ptb_producer(ids, batch_size, bptt))
    assert len(windows) == len(stream) == len(reference) == (batch_len - 1) // bptt
    for (x, y), (rx, ry) in zip(windows, reference):
        assert x.shape == y.shape == (bptt, batch_size)
        np.testing.assert_array_equal(x, rx.T)
        np.testing.assert_array_equal(y, ry.T)
        np.testing.assert_array_equal(x[1:], y[:-1])  # targets are inputs shifted by one
    for (_, y), (x_next, _) in zip(windows, windows[1:]):
        np.testing.assert_array_equal(y[-1], x_next[0])  # windows continue each other
    inputs = np.concatenate([x for x, _ in windows], axis=0)  # (n * bptt, B)
    for b in range(batch_size):
        row = ids[b * batch_len : (b + 1) * batch_len]
        np.testing.assert_array_equal(inputs[:, b], row[: len(windows) * bptt])
