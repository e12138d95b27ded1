"""Acceptance: the seed Theano notebook's masked LSTM language model (LstmLayer with
theano.scan over [mask, input], LogisticRegression, sequence_categorical_crossentropy,
T.grad, SGD updates, a single-step sampling function) runs with only its imports changed,
and matches a hand-written numpy LSTM."""

import numpy as np

import symgraph as theano
import symgraph.tensor as T

floatX = "float64"


def init_weights(rng, n_in, n_out):
    return theano.shared(rng.uniform(-0.1, 0.1, (n_in, n_out)).astype(floatX), borrow=True)


class LstmLayer:
    def __init__(self, rng, input, mask, n_in, n_h):
        self.W_i, self.U_i = init_weights(rng, n_in, n_h), init_weights(rng, n_h, n_h)
        self.W_f, self.U_f = init_weights(rng, n_in, n_h), init_weights(rng, n_h, n_h)
        self.W_o, self.U_o = init_weights(rng, n_in, n_h), init_weights(rng, n_h, n_h)
        self.W_c, self.U_c = init_weights(rng, n_in, n_h), init_weights(rng, n_h, n_h)
        self.b_i = theano.shared(np.zeros(n_h, dtype=floatX))
        self.b_f = theano.shared(np.ones(n_h, dtype=floatX))
        self.b_o = theano.shared(np.zeros(n_h, dtype=floatX))
        self.b_c = theano.shared(np.zeros(n_h, dtype=floatX))
        self.params = [self.W_i, self.U_i, self.b_i, self.W_f, self.U_f, self.b_f,
                       self.W_o, self.U_o, self.b_o, self.W_c, self.U_c, self.b_c]

        def step(m_, x_, h_, c_):
            i = T.nnet.sigmoid(T.dot(x_, self.W_i) + T.dot(h_, self.U_i) + self.b_i)
            f = T.nnet.sigmoid(T.dot(x_, self.W_f) + T.dot(h_, self.U_f) + self.b_f)
            o = T.nnet.sigmoid(T.dot(x_, self.W_o) + T.dot(h_, self.U_o) + self.b_o)
            c = T.tanh(T.dot(x_, self.W_c) + T.dot(h_, self.U_c) + self.b_c)
            c = f * c_ + i * c
            c = m_[:, None] * c + (1. - m_)[:, None] * c_
            h = o * T.tanh(c)
            h = m_[:, None] * h + (1. - m_)[:, None] * h_
            return h, c

        self.step = step
        [h, c], updates = theano.scan(
            fn=step, sequences=[mask, input],
            outputs_info=[T.alloc(np.asarray(0., dtype=floatX), input.shape[1], n_h),
                          T.alloc(np.asarray(0., dtype=floatX), input.shape[1], n_h)])
        self.output = h


class LogisticRegression:
    def __init__(self, rng, input, n_in, n_out):
        self.W = init_weights(rng, n_in, n_out)
        self.b = theano.shared(np.zeros(n_out, dtype=floatX))
        self.params = [self.W, self.b]
        self.p_y_given_x = T.nnet.softmax(T.dot(input, self.W) + self.b)
        self.y_pred = T.argmax(self.p_y_given_x, axis=-1)


def sequence_categorical_crossentropy(prediction, targets, mask):
    prediction_flat = prediction.reshape(((prediction.shape[0] * prediction.shape[1]),
                                          prediction.shape[2]), ndim=2)
    targets_flat = targets.flatten()
    mask_flat = mask.flatten()
    ce = T.nnet.categorical_crossentropy(prediction_flat, targets_flat)
    return T.sum(ce * mask_flat)


def numpy_lstm(params, x, mask):
    W_i, U_i, b_i, W_f, U_f, b_f, W_o, U_o, b_o, W_c, U_c, b_c = params
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h = c = np.zeros((x.shape[1], U_i.shape[0]))
    hs = []
    for x_t, m in zip(x, mask):
        i, f = sig(x_t @ W_i + h @ U_i + b_i), sig(x_t @ W_f + h @ U_f + b_f)
        o, g = sig(x_t @ W_o + h @ U_o + b_o), np.tanh(x_t @ W_c + h @ U_c + b_c)
        c_new = f * c + i * g
        c = m[:, None] * c_new + (1 - m[:, None]) * c
        h = m[:, None] * (o * np.tanh(c)) + (1 - m[:, None]) * h
        hs.append(h)
    return np.stack(hs)


def batch(rng, n_tokens=6, T_=5, B=3):
    ids = rng.integers(0, n_tokens, size=(T_ + 1, B))
    lengths = np.array([T_, 3, 1])[:B]
    mask = (np.arange(T_)[:, None] < lengths[None, :]).astype(floatX)
    return ids[:-1], ids[1:], mask


def test_seed_notebook_lstm_trains_matches_numpy_and_samples():
    rng = np.random.default_rng(0)
    n_tokens, n_h = 6, 8
    x_ids, y_ids, mask_v = batch(rng, n_tokens)
    embedding = np.eye(n_tokens, dtype=floatX)  # one-hot input as in the notebook

    x = T.tensor3("x", dtype=floatX)
    y = T.lmatrix("y")
    mask = T.matrix("mask", dtype=floatX)
    lstm = LstmLayer(rng, x, mask, n_tokens, n_h)
    output = LogisticRegression(rng, lstm.output, n_h, n_tokens)
    params = lstm.params + output.params
    cost = sequence_categorical_crossentropy(output.p_y_given_x, y, mask) / mask.sum()
    grads = T.grad(cost, params)
    lr = 2.0
    train = theano.function([x, y, mask], cost,
                            updates=[(p, p - lr * g) for p, g in zip(params, grads)],
                            mode="numpy")
    hidden = theano.function([x, mask], lstm.output, mode="numpy")

    xs = embedding[x_ids]
    values = [p.get_value() for p in lstm.params]
    np.testing.assert_allclose(hidden(xs, mask_v), numpy_lstm(values, xs, mask_v), rtol=1e-12)
    losses = [float(train(xs, y_ids, mask_v)) for _ in range(100)]
    assert losses[-1] < 0.5 * losses[0]

    # the single-step sampling function shares the trained parameters
    x_t = T.matrix("x_t", dtype=floatX)
    h_tm1, c_tm1 = T.matrix("h", dtype=floatX), T.matrix("c", dtype=floatX)
    m_t = T.vector("m", dtype=floatX)
    h_t, c_t = lstm.step(m_t, x_t, h_tm1, c_tm1)
    p_t = T.nnet.softmax(T.dot(h_t, output.W) + output.b)
    step = theano.function([m_t, x_t, h_tm1, c_tm1], [p_t, h_t, c_t], mode="numpy")
    h = c = np.zeros((1, n_h))
    token, sampled = 0, []
    for _ in range(5):
        p, h, c = step(np.ones(1), embedding[[token]], h, c)
        assert np.isclose(p.sum(), 1.0)
        token = int(rng.choice(n_tokens, p=p[0]))
        sampled.append(token)
    full = hidden(embedding[[0] + sampled[:-1]][:, None, :], np.ones((5, 1)))
    np.testing.assert_allclose(full[-1], h, rtol=1e-12)  # stepwise == scanned
