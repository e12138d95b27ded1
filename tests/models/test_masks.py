"""Masks as a contract: masked_update, sequence_cross_entropy, padding invariance."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.models.masks import masked_token_losses, masked_update, sequence_cross_entropy
from symgraph.models.recurrent import LSTM

MODE = "numpy"


def test_masked_update_keeps_old_exactly_and_blocks_nan():
    m, new, old = T.dvector("m"), T.dmatrix("new"), T.dmatrix("old")
    out = masked_update(m, new, old)
    g = T.dmatrix("g")
    g_new, g_old = sg.grad((out * g).sum(), [new, old])
    f = sg.function([m, new, old, g], [out, g_new, g_old], mode=MODE)
    mask = np.array([1.0, 0.0, 1.0, 0.0])
    new_v = np.array([[1.0, 2.0], [np.inf, np.nan], [3.0, -np.inf], [np.nan, np.nan]])
    old_v = np.arange(8.0).reshape(4, 2) / 7.0
    g_v = np.full((4, 2), 0.5)
    o, gn, go = f(mask, new_v, old_v, g_v)
    np.testing.assert_array_equal(o[[1, 3]], old_v[[1, 3]])  # bit for bit
    np.testing.assert_array_equal(o[[0, 2]], new_v[[0, 2]])
    assert np.all(np.isfinite(gn)) and np.all(np.isfinite(go))
    np.testing.assert_array_equal(gn[[1, 3]], 0.0)
    np.testing.assert_array_equal(go[[1, 3]], 0.5)
    np.testing.assert_array_equal(gn[[0, 2]], 0.5)
    np.testing.assert_array_equal(go[[0, 2]], 0.0)


def test_masked_update_broadcasts_over_feature_axes():
    m, new, old = T.dvector("m"), T.dtensor3("new"), T.dtensor3("old")
    f = sg.function([m, new, old], masked_update(m, new, old), mode=MODE)
    a, b = np.ones((2, 3, 4)), np.zeros((2, 3, 4))
    np.testing.assert_array_equal(f(np.array([0.0, 1.0]), a, b), np.stack([b[0], a[1]]))


def _np_ce(logits, targets):
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, targets[..., None], -1)[..., 0]


@pytest.mark.parametrize("normalize", ["token", "sequence", "none"])
def test_sequence_cross_entropy_normalisations(normalize):
    rng = np.random.default_rng(0)
    z, y, m = T.dtensor3("z"), T.lmatrix("y"), T.dmatrix("m")
    loss = sequence_cross_entropy(z, y, m, normalize=normalize)
    f = sg.function([z, y, m], loss, mode=MODE)
    zv = rng.normal(size=(5, 3, 7)) * 3
    yv = rng.integers(0, 7, (5, 3))
    mv = np.ones((5, 3))
    mv[3:, 1] = 0
    mv[1:, 2] = 0
    ce = _np_ce(zv, yv) * mv
    want = {"token": ce.sum() / mv.sum(), "sequence": ce.sum(0).mean(), "none": ce.sum()}
    np.testing.assert_allclose(f(zv, yv, mv), want[normalize], rtol=1e-12)


def test_sequence_cross_entropy_rejects_unknown_normalisation():
    with pytest.raises(ValueError, match="normalize"):
        sequence_cross_entropy(T.dtensor3(), T.lmatrix(), T.dmatrix(), normalize="batch")


def test_padded_logits_add_nothing_and_get_zero_gradient():
    z, y, m = T.dtensor3("z"), T.lmatrix("y"), T.dmatrix("m")
    losses = masked_token_losses(z, y, m)
    f = sg.function([z, y, m], [losses, sg.grad(losses.sum(), z)], mode=MODE)
    zv = np.random.default_rng(1).normal(size=(3, 2, 4))
    zv[2, 1] = 1e300  # garbage at the padded position
    mv = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    out, gz = f(zv, np.zeros((3, 2), dtype=np.int64), mv)
    assert out[2, 1] == 0.0 and np.all(np.isfinite(out))
    np.testing.assert_array_equal(gz[2, 1], 0.0)
    assert np.all(np.isfinite(gz))


# ---- padding invariance on a masked LSTM ---------------------------------------------

N_IN, H, V = 3, 4, 5


@pytest.fixture(scope="module")
def lstm_model():
    """Per-sequence losses, the summed-loss gradients and the input gradient of a tiny
    masked LSTM with a softmax output, compiled once."""
    rng = np.random.default_rng(0)
    layer = LSTM(N_IN, H, rng, init_scale=0.5, dtype="float64")
    w_out = sg.shared(rng.uniform(-0.5, 0.5, (H, V)), name="w_out")
    x, y, m = T.dtensor3("x"), T.lmatrix("y"), T.dmatrix("m")
    weights = T.dvector("weights")  # per-sequence weights: one-hot picks one sequence
    hs, _ = layer(x, m)
    logits = T.dot(hs.reshape((-1, H)), w_out).reshape((x.shape[0], x.shape[1], V))
    per_seq = masked_token_losses(logits, y, m).sum(axis=0)
    cost = (per_seq * weights).sum()
    params = layer.params + [w_out]
    grads = sg.grad(cost, params + [x])
    return sg.function([x, y, m, weights], [per_seq, *grads], mode=MODE)


def _batch(rng, lengths):
    t_max = max(lengths)
    x = rng.normal(size=(t_max, len(lengths), N_IN))
    y = rng.integers(0, V, (t_max, len(lengths)))
    m = np.zeros((t_max, len(lengths)))
    for b, n in enumerate(lengths):
        m[:n, b] = 1.0
    return x, y, m


@settings(max_examples=8, deadline=None)
@given(lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4),
       extra=st.integers(1, 3), seed=st.integers(0, 100), data=st.data())
def test_padding_further_or_reordering_changes_no_sequence(lstm_model, lengths, extra,
                                                           seed, data):
    f = lstm_model
    rng = np.random.default_rng(seed)
    x, y, m = _batch(rng, lengths)
    n_b = len(lengths)
    ones = np.ones(n_b)
    base = f(x, y, m, ones)
    # more padding, filled with garbage that must not matter
    pad = ((0, extra), (0, 0), (0, 0))
    x2 = np.pad(x, pad, constant_values=1e6)
    y2 = np.pad(y, pad[:2], constant_values=V - 1)
    m2 = np.pad(m, pad[:2])
    padded = f(x2, y2, m2, ones)
    np.testing.assert_allclose(padded[0], base[0], rtol=1e-12, atol=1e-12)
    for g_base, g_pad in zip(base[1:-1], padded[1:-1]):
        np.testing.assert_allclose(g_pad, g_base, rtol=1e-10, atol=1e-12)
    gx = padded[-1]
    np.testing.assert_array_equal(gx[m2 == 0], 0.0)
    assert all(np.all(np.isfinite(g)) for g in padded[1:])
    # reordering the columns permutes the per-sequence losses and keeps the gradients
    perm = np.array(data.draw(st.permutations(range(n_b))))
    shuffled = f(x[:, perm], y[:, perm], m[:, perm], ones)
    np.testing.assert_allclose(shuffled[0], base[0][perm], rtol=1e-12, atol=1e-12)
    for g_base, g_shuf in zip(base[1:-1], shuffled[1:-1]):
        np.testing.assert_allclose(g_shuf, g_base, rtol=1e-10, atol=1e-12)
    # each sequence's own gradient is unchanged by padding the batch further
    b = data.draw(st.integers(0, n_b - 1))
    pick = np.eye(n_b)[b]
    alone = f(x, y, m, pick)
    alone_padded = f(x2, y2, m2, pick)
    for g1, g2 in zip(alone[1:-1], alone_padded[1:-1]):
        np.testing.assert_allclose(g2, g1, rtol=1e-10, atol=1e-12)
