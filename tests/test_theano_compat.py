"""Acceptance: code written for Theano's tensor API runs with only the imports changed
and gives numpy's values and finite-difference gradients."""

import numpy as np

import symgraph as theano
import symgraph.tensor as T
from tests.helpers import check_grad

floatX = "float64"
MODE = "numpy"


def test_mlp_with_biases_softmax_crossentropy_and_sgd_updates():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype("int64")
    x_sym, y_sym = T.matrix("x", dtype=floatX), T.lvector("y")
    W1 = theano.shared(rng.normal(size=(4, 8)) * 0.5, name="W1")
    b1 = theano.shared(np.zeros(8), name="b1")
    W2 = theano.shared(rng.normal(size=(8, 2)) * 0.5, name="W2")
    b2 = theano.shared(np.zeros(2), name="b2")
    hidden = T.tanh(T.dot(x_sym, W1) + b1)
    p_y = T.nnet.softmax(T.dot(hidden, W2) + b2)
    cost = T.nnet.categorical_crossentropy(p_y, y_sym).mean()
    params = [W1, b1, W2, b2]
    grads = T.grad(cost, params)
    train = theano.function([x_sym, y_sym], cost,
                            updates=[(p, p - 0.5 * g) for p, g in zip(params, grads)],
                            mode=MODE)
    predict = theano.function([x_sym], T.argmax(p_y, axis=1), mode=MODE)
    first = train(X, y)
    for _ in range(100):
        last = train(X, y)
    assert last < first / 3
    assert (predict(X) == y).mean() > 0.9
    # numpy reference of the forward pass
    h = np.tanh(X @ W1.get_value() + b1.get_value())
    z = h @ W2.get_value() + b2.get_value()
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    evaluate = theano.function([x_sym, y_sym], cost, mode=MODE)
    np.testing.assert_allclose(evaluate(X, y), -np.log(p[np.arange(30), y]).mean())


def test_embedding_with_repeated_indices_max_argmax_switch_clip():
    rng = np.random.default_rng(1)
    E = rng.normal(size=(5, 3))
    idx = np.array([1, 3, 1, 1, 0])
    i_sym = T.lvector("i")

    def model(emb):
        rows = emb[i_sym]
        return T.switch(rows > 0, T.clip(rows, 0, 0.8), rows * 0.1).max(axis=1)

    e_sym = T.dmatrix("E")
    f = theano.function([e_sym, i_sym], [model(e_sym), T.argmax(e_sym[i_sym], axis=1)],
                        mode=MODE)
    vals, arg = f(E, idx)
    rows = E[idx]
    np.testing.assert_allclose(vals, np.where(rows > 0, np.clip(rows, 0, 0.8), rows * 0.1)
                               .max(axis=1))
    np.testing.assert_array_equal(arg, rows.argmax(axis=1))
    g = theano.function([e_sym, i_sym], theano.grad(e_sym[i_sym].sum(), e_sym), mode=MODE)
    np.testing.assert_array_equal(g(E, idx)[:, 0], [1, 3, 0, 1, 0])  # repeated rows add up
    check_grad(lambda emb: T.tanh(emb[T.constant(idx)]) * 2, E)


def test_reshape_concatenate_dimshuffle_givens_and_grad_of_grad():
    rng = np.random.default_rng(2)
    data = theano.shared(rng.normal(size=(6, 4)), name="data")
    index = T.lscalar("index")
    batch = T.dmatrix("batch")
    out = T.concatenate([batch, batch.dimshuffle(0, 1) * 2], axis=1).reshape((-1,))
    f = theano.function([index], out.sum(), givens={batch: data[index * 2: index * 2 + 2]},
                        mode=MODE)
    assert np.isclose(f(1), 3 * data.get_value()[2:4].sum())
    x = T.dvector("x")
    g = theano.grad(T.sum(T.tanh(x) ** 2), x)
    gg = theano.grad(g.sum(), x)
    v = rng.normal(size=3)
    t = np.tanh(v)
    expected = 2 * (1 - t ** 2) ** 2 - 4 * t ** 2 * (1 - t ** 2)
    np.testing.assert_allclose(theano.function([x], gg, mode=MODE)(v), expected, rtol=1e-10)


def test_softmax_crossentropy_on_huge_logits_is_finite():
    x = T.dmatrix("x")
    y = T.lvector("y")
    onehot = T.dmatrix("onehot")
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]])
    for target, value in [(y, np.array([1, 2])), (onehot, np.eye(3)[[1, 2]])]:
        cost = T.nnet.categorical_crossentropy(T.nnet.softmax(x), target).sum()
        f = theano.function([x, target], [cost, theano.grad(cost, x)], mode=MODE)
        c, g = f(logits, value)
        assert np.isfinite(c) and np.all(np.isfinite(g))
        np.testing.assert_allclose(c, 2000.0 + 1.0 + np.log1p(np.exp(-1.0)), rtol=1e-12)
        soft = np.exp(logits - logits.max(1, keepdims=True))
        soft /= soft.sum(1, keepdims=True)
        np.testing.assert_allclose(g, soft - np.eye(3)[[1, 2]], atol=1e-12)
