"""Optimizers against their update formulas (two steps), clipping and the lr schedule."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.models.optim import (
    adagrad,
    adam,
    clip_elementwise,
    clip_global_norm,
    global_norm,
    lr_at_epoch,
    momentum,
    sgd,
)

MODE = "numpy"
P0 = np.array([[0.5, -1.0, 2.0], [0.25, 0.0, -0.75]])
Q0 = np.array([1.5, -2.0])
GRADS = [(np.array([[0.1, -0.2, 0.3], [1.0, -1.5, 0.0]]), np.array([0.5, 0.25])),
         (np.array([[-0.4, 0.2, 0.7], [0.3, 0.5, -2.0]]), np.array([-1.0, 3.0]))]
LRS = [0.1, 0.05]


def _run(make, dtype="float64"):
    """Two steps of an optimizer on two parameters with given gradients and a shared lr
    changed between the steps; returns the parameter values after each step."""
    p = sg.shared(P0.astype(dtype), name="p")
    q = sg.shared(Q0.astype(dtype), name="q")
    gp, gq = T.matrix("gp", dtype=dtype), T.vector("gq", dtype=dtype)
    lr = sg.shared(np.array(LRS[0], dtype=dtype), name="lr")
    updates = make([p, q], [gp, gq], lr)
    f = sg.function([gp, gq], [], updates=updates, mode=MODE)
    values = []
    for (g1, g2), rate in zip(GRADS, LRS):
        lr.set_value(np.array(rate, dtype=dtype))
        f(g1.astype(dtype), g2.astype(dtype))
        values.append((p.get_value(), q.get_value()))
    return values, updates


def _check(values, expected):
    for (p, q), (pe, qe) in zip(values, expected):
        np.testing.assert_allclose(p, pe, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(q, qe, rtol=1e-12, atol=1e-14)


def test_sgd():
    values, updates = _run(sgd)
    expected, ps = [], [P0, Q0]
    for grads, rate in zip(GRADS, LRS):
        ps = [x - rate * g for x, g in zip(ps, grads)]
        expected.append(ps)
    _check(values, expected)
    assert updates.state == []


def test_momentum():
    values, updates = _run(lambda p, g, lr: momentum(p, g, lr, mu=0.8))
    expected, ps, vs = [], [P0, Q0], [np.zeros_like(P0), np.zeros_like(Q0)]
    for grads, rate in zip(GRADS, LRS):
        vs = [0.8 * v + g for v, g in zip(vs, grads)]
        ps = [x - rate * v for x, v in zip(ps, vs)]
        expected.append(ps)
    _check(values, expected)
    assert [s.name for s in updates.state] == ["momentum.p.v", "momentum.q.v"]
    np.testing.assert_allclose(updates.state[1].get_value(), vs[1])


def test_adagrad_as_in_min_char_rnn():
    values, updates = _run(adagrad)
    expected, ps, mem = [], [P0, Q0], [np.zeros_like(P0), np.zeros_like(Q0)]
    for grads, rate in zip(GRADS, LRS):
        mem = [m + g * g for m, g in zip(mem, grads)]
        ps = [x - rate * g / np.sqrt(m + 1e-8) for x, g, m in zip(ps, grads, mem)]
        expected.append(ps)
    _check(values, expected)
    assert [s.name for s in updates.state] == ["adagrad.p.G", "adagrad.q.G"]


def test_adam_with_bias_correction():
    b1, b2, eps = 0.9, 0.99, 1e-8
    values, updates = _run(lambda p, g, lr: adam(p, g, lr, b1=b1, b2=b2, eps=eps))
    expected, ps = [], [P0, Q0]
    ms, vs = [np.zeros_like(P0), np.zeros_like(Q0)], [np.zeros_like(P0), np.zeros_like(Q0)]
    for t, (grads, rate) in enumerate(zip(GRADS, LRS), start=1):
        ms = [b1 * m + (1 - b1) * g for m, g in zip(ms, grads)]
        vs = [b2 * v + (1 - b2) * g * g for v, g in zip(vs, grads)]
        ps = [x - rate * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
              for x, m, v in zip(ps, ms, vs)]
        expected.append(ps)
    _check(values, expected)
    names = [s.name for s in updates.state]
    assert names == ["adam.t", "adam.p.m", "adam.p.v", "adam.q.m", "adam.q.v"]
    assert float(updates.state[0].get_value()) == 2.0


@pytest.mark.parametrize("make", [sgd, momentum, adagrad, adam])
def test_float32_parameters_keep_their_dtype(make):
    values, _ = _run(make, dtype="float32")
    assert values[-1][0].dtype == np.float32 and values[-1][1].dtype == np.float32
    assert np.all(np.isfinite(values[-1][0]))


def test_optimizer_checks_lengths():
    p = sg.shared(np.zeros(2), name="p")
    with pytest.raises(ValueError, match="1 parameters but 2 gradients"):
        sgd([p], [T.dvector(), T.dvector()], 0.1)


def test_clip_global_norm():
    a, b = T.dvector("a"), T.dmatrix("b")
    f = sg.function([a, b], [*clip_global_norm([a, b], 5.0), global_norm([a, b])], mode=MODE)
    av, bv = np.array([3.0, 4.0]), np.array([[12.0]])  # global norm 13
    ca, cb, norm = f(av, bv)
    assert norm == pytest.approx(13.0)
    scale = 5.0 / (13.0 + 1e-6)
    np.testing.assert_allclose(ca, av * scale, rtol=1e-12)
    np.testing.assert_allclose(cb, bv * scale, rtol=1e-12)
    small_a, small_b, _ = f(av / 10, bv / 10)  # norm 1.3 < 5: unchanged
    np.testing.assert_array_equal(small_a, av / 10)
    np.testing.assert_array_equal(small_b, bv / 10)
    with pytest.raises(ValueError):
        clip_global_norm([a], 0.0)


def test_clip_elementwise():
    a = T.dvector("a")
    f = sg.function([a], clip_elementwise([a], 1.5)[0], mode=MODE)
    np.testing.assert_array_equal(f(np.array([-3.0, -1.0, 0.5, 2.0])), [-1.5, -1.0, 0.5, 1.5])


def test_lr_at_epoch_schedule():
    got = [lr_at_epoch(1.0, 0.5, 4, e) for e in range(1, 8)]
    assert got == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    assert lr_at_epoch(0.01, 0.9, 0, 1) == pytest.approx(0.009)
    with pytest.raises(ValueError, match="1-based"):
        lr_at_epoch(1.0, 0.5, 4, 0)
