"""Layers against hand-written numpy references; gradients against finite differences."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.models.layers import Dropout, Embedding, Linear, LogisticRegression
from symgraph.models.recurrent import GRU, LSTM, RNN, StackedRNN
from tests.helpers import check_grad

MODE = "numpy"
T_, B, N_IN, H = 5, 3, 2, 3


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ---- numpy references (masked, time-major) ---------------------------------------------

def np_lstm(x, mask, W, U, b, h, c):
    hs = []
    for t in range(x.shape[0]):
        z = x[t] @ W + b + h @ U
        i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
        c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h_new = sigmoid(o) * np.tanh(c_new)
        keep = mask[t][:, None] > 0
        h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
        hs.append(h)
    return np.stack(hs), [h, c]


def np_gru(x, mask, W, U, b, h):
    hs = []
    for t in range(x.shape[0]):
        a, u = x[t] @ W + b, h @ U
        r = sigmoid(a[:, :H] + u[:, :H])
        z = sigmoid(a[:, H:2 * H] + u[:, H:2 * H])
        n = np.tanh(a[:, 2 * H:] + r * u[:, 2 * H:])
        h = np.where(mask[t][:, None] > 0, (1 - z) * n + z * h, h)
        hs.append(h)
    return np.stack(hs), [h]


def np_rnn(x, mask, W, U, b, h):
    hs = []
    for t in range(x.shape[0]):
        h = np.where(mask[t][:, None] > 0, np.tanh(x[t] @ W + b + h @ U), h)
        hs.append(h)
    return np.stack(hs), [h]


REFERENCES = {LSTM: np_lstm, GRU: np_gru, RNN: np_rnn}


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T_, B, N_IN))
    mask = np.ones((T_, B))
    mask[3:, 1] = 0.0
    mask[1:, 2] = 0.0
    return rng, x, mask


@pytest.mark.parametrize("cls", [LSTM, GRU, RNN])
def test_forward_matches_numpy_reference(cls):
    rng, x, mask = _data()
    layer = cls(N_IN, H, rng, init_scale=0.8, dtype="float64")
    init = [rng.normal(size=(B, H)) for _ in range(layer.n_states)]
    xs, ms = T.dtensor3("x"), T.dmatrix("m")
    s0 = [T.dmatrix(f"s{k}") for k in range(layer.n_states)]
    hs, finals = layer(xs, ms, s0)
    f = sg.function([xs, ms, *s0], [hs, *finals], mode=MODE)
    got_hs, *got_finals = f(x, mask, *init)
    params = [p.get_value() for p in layer.params]
    want_hs, want_finals = REFERENCES[cls](x, mask, *params, *init)
    np.testing.assert_allclose(got_hs, want_hs, rtol=1e-12, atol=1e-12)
    for got, want in zip(got_finals, want_finals):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # zero initial states by default, and no mask means every step is real
    hs0, _ = layer(xs)
    f0 = sg.function([xs], hs0, mode=MODE)
    zeros = [np.zeros((B, H))] * layer.n_states
    np.testing.assert_allclose(f0(x), REFERENCES[cls](x, np.ones((T_, B)), *params, *zeros)[0],
                               rtol=1e-12, atol=1e-12)


def test_lstm_layout_and_forget_bias():
    rng = np.random.default_rng(0)
    layer = LSTM(N_IN, H, rng, init_scale=0.1, forget_bias=1.0, dtype="float64", name="lstm0")
    assert [p.name for p in layer.params] == ["lstm0.W", "lstm0.U", "lstm0.b"]
    assert layer.W.get_value().shape == (N_IN, 4 * H)
    assert layer.U.get_value().shape == (H, 4 * H)
    b = layer.b.get_value()
    assert np.all(np.abs(b[H:2 * H] - 1.0) <= 0.1) and np.all(np.abs(b[:H]) <= 0.1)
    plain = LSTM(N_IN, H, np.random.default_rng(0), init_scale=0.1, forget_bias=0.0)
    assert np.all(np.abs(plain.b.get_value()) <= 0.1)
    assert plain.W.get_value().dtype == np.dtype(sg.config.floatX)


@pytest.mark.parametrize("cls", [LSTM, GRU, RNN])
def test_gradients_match_finite_differences(cls):
    """Gradients of a projection of the outputs and final states with respect to the
    inputs, the weights and the initial states (padding included), in float64."""
    rng, x, mask = _data(1)
    layer = cls(N_IN, H, rng, init_scale=0.8, dtype="float64")
    init = [rng.normal(size=(B, H)) * 0.5 for _ in range(layer.n_states)]

    def fn(x_v, W, U, b, *states):
        layer.W, layer.U, layer.b = W, U, b  # swap the shared weights for inputs
        hs, finals = layer(x_v, T.constant(mask), list(states))
        return T.concatenate([hs.reshape((-1, H))] + finals, axis=0)

    check_grad(fn, x, *[p.get_value() for p in layer.params], *init, n_tests=2)


def test_stacked_rnn_states_and_step_match_scan():
    rng, x, mask = _data(2)
    stack = StackedRNN("lstm", N_IN, [4, 3], rng, init_scale=0.5, dtype="float64")
    assert stack.state_sizes == [4, 4, 3, 3]
    assert [p.name for p in stack.params][:3] == ["lstm0.W", "lstm0.U", "lstm0.b"]
    xs = T.dtensor3("x")
    out, finals = stack(xs)
    f = sg.function([xs], [out, *finals], mode=MODE)
    got, *got_finals = f(x)
    x_t = T.dmatrix("x_t")
    states = [T.dmatrix(f"s{k}") for k in range(4)]
    top, new = stack.step(x_t, states)
    step = sg.function([x_t, *states], [top, *new], mode=MODE)
    s = stack.zero_states(B, "float64")
    for t in range(T_):
        h, *s = step(x[t], *s)
        np.testing.assert_allclose(h, got[t], rtol=1e-12, atol=1e-12)
    for a, b in zip(s, got_finals):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_embedding_lookup_and_scatter_gradient():
    rng = np.random.default_rng(0)
    emb = Embedding(6, 2, rng, init_scale=1.0, dtype="float64")
    ids = T.imatrix("ids")
    out = emb(ids)
    g = sg.grad(out.sum(), emb.W)
    f = sg.function([ids], [out, g], mode=MODE)
    idv = np.array([[0, 5, 5], [1, 0, 5]], dtype=np.int32)
    vals, grad = f(idv)
    np.testing.assert_array_equal(vals, emb.W.get_value()[idv])
    counts = np.bincount(idv.ravel(), minlength=6)[:, None] * np.ones((1, 2))
    np.testing.assert_array_equal(grad, counts)
    with pytest.raises(TypeError, match="integers"):
        emb(T.dmatrix())


def test_linear_and_softmax_output():
    rng = np.random.default_rng(0)
    layer = LogisticRegression(3, 4, rng, dtype="float64", name="out")
    assert [p.name for p in layer.params] == ["out.W", "out.b"]
    assert np.all(np.abs(layer.W.get_value()) <= 1 / np.sqrt(3))
    x = T.dtensor3("x")
    f = sg.function([x], [layer.logits(x), layer.probabilities(x, 0.5)], mode=MODE)
    xv = rng.normal(size=(2, 5, 3))
    z, p = f(xv)
    want = xv @ layer.W.get_value() + layer.b.get_value()
    np.testing.assert_allclose(z, want, rtol=1e-12)
    e = np.exp(2 * want - (2 * want).max(-1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(-1, keepdims=True), rtol=1e-12)
    lin = Linear(3, 2, rng, init_scale=0.01)
    assert np.all(np.abs(lin.W.get_value()) <= 0.01)


def test_dropout_inverted_scaling_reproducible_and_off_in_eval():
    x = T.dmatrix("x")
    drop = Dropout(0.25, sg.RandomStreams(7))
    y = drop(x, train=True)
    f = sg.function([x], y, mode=MODE)
    ones = np.ones((200, 50))
    a, b = f(ones), f(ones)
    assert set(np.unique(a)) <= {0.0, 1.0 / 0.75}
    assert abs((a == 0).mean() - 0.25) < 0.02
    assert not np.array_equal(a, b)  # fresh draws every call
    again = sg.function([x], Dropout(0.25, sg.RandomStreams(7))(x, train=True), mode=MODE)
    np.testing.assert_array_equal(again(ones), a)  # the same seed gives the same masks
    assert drop(x, train=False) is x
    assert Dropout(0.0)(x, train=True) is x
    with pytest.raises(ValueError):
        Dropout(1.0, sg.RandomStreams(0))


def test_masked_lstm_gradients_equal_pytorch_autograd():
    """Same float64 weights and padded batch: outputs at real steps, each sequence's final
    state (PyTorch: a packed sequence) and all gradients agree to 1e-7."""
    torch = pytest.importorskip("torch")
    rng, x, mask = _data(3)
    lengths = mask.sum(axis=0).astype(np.int64)
    layer = LSTM(N_IN, H, rng, init_scale=0.7, dtype="float64")
    r_out, r_h, r_c = rng.normal(size=(T_, B, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H))

    xs = T.dtensor3("x")
    hs, (h, c) = layer(xs, T.constant(mask))
    cost = (hs * T.constant(r_out * mask[:, :, None])).sum() + (h * r_h).sum() + (c * r_c).sum()
    f = sg.function([xs], [cost, *sg.grad(cost, [xs, *layer.params])], mode=MODE)
    ours = f(x)

    W, U, b = (p.get_value() for p in layer.params)
    lstm = torch.nn.LSTM(N_IN, H).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(W.T))
        lstm.weight_hh_l0.copy_(torch.from_numpy(U.T))
        lstm.bias_ih_l0.copy_(torch.from_numpy(b))
        lstm.bias_hh_l0.zero_()
    tx = torch.from_numpy(x).requires_grad_(True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.from_numpy(lengths),
                                                     enforce_sorted=False)
    out, (th, tc) = lstm(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T_)
    t_cost = ((out * torch.from_numpy(r_out * mask[:, :, None])).sum()
              + (th[0] * torch.from_numpy(r_h)).sum() + (tc[0] * torch.from_numpy(r_c)).sum())
    t_cost.backward()
    theirs = [t_cost.item(), tx.grad.numpy(), lstm.weight_ih_l0.grad.numpy().T,
              lstm.weight_hh_l0.grad.numpy().T, lstm.bias_ih_l0.grad.numpy()]
    assert ours[0] == pytest.approx(theirs[0], rel=1e-12)
    for a, b_ in zip(ours[1:], theirs[1:]):
        np.testing.assert_allclose(a, b_, rtol=1e-7, atol=1e-12)
