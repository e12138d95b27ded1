"""The hypothesis strategies: shapes with size-1 and broadcastable dims, tensors in a
safe domain, padded batches with masks."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
from symgraph.testing import DOMAINS, lengths, padded_batches, shapes, tensors
from symgraph.testing.strategies import domain_elements


@given(shape=shapes(1, 3, 1, 3))
def test_shapes_have_small_sides(shape):
    assert 1 <= len(shape) <= 3 and all(1 <= s <= 3 for s in shape)


@given(pair=shapes(0, 3, broadcastable=True))
def test_broadcastable_pairs_broadcast_to_the_first_shape(pair):
    shape, other = pair
    assert np.broadcast_shapes(shape, other) == shape
    assert all(o in (1, s) for o, s in zip(other[::-1], shape[::-1]))


@given(x=tensors("float32", shapes(1, 2), domain="positive"),
       y=tensors("float64", (2, 3), elements=(-0.5, 0.5)),
       z=tensors("float64", (4,), domain="nonzero"),
       p=tensors(None, (3,), domain="unit"))
def test_tensors_honour_the_domain(x, y, z, p):
    assert x.dtype == np.float32 and np.all((x >= 0.1) & (x <= 3))
    assert y.shape == (2, 3) and np.all(np.abs(y) <= 0.5)
    assert np.all((np.abs(z) >= 0.1) & (np.abs(z) <= 3))
    assert p.dtype == sg.config.floatX and np.all((p > 0) & (p < 1))


def test_unknown_domain_is_rejected():
    with pytest.raises(ValueError, match="unknown domain"):
        domain_elements("tiny")
    assert set(DOMAINS) >= {"any", "positive", "unit"}


@given(batch=padded_batches(vocab=5, max_len=6, max_batch=4, pad_id=0))
def test_padded_batches_are_time_major_with_a_full_length_sequence(batch):
    ids, mask = batch
    assert ids.shape == mask.shape and ids.dtype == np.int64
    assert mask.dtype == sg.config.floatX and set(np.unique(mask)) <= {0.0, 1.0}
    assert np.any(mask.all(axis=0))  # at least one full-length sequence
    assert np.all(np.diff(mask, axis=0) <= 0)  # padding only at the end of each column
    assert np.all((ids >= 0) & (ids < 5)) and np.all(ids[mask == 0] == 0)


@given(lens=lengths(4, 3, min_len=2, min_batch=2))
def test_lengths(lens):
    assert 2 <= len(lens) <= 3 and all(2 <= n <= 4 for n in lens)


@given(st.data())
def test_integer_tensors(data):
    x = data.draw(tensors("int32", (3,), domain=(0, 4)))
    assert x.dtype == np.int32 and np.all((x >= 0) & (x <= 4))
