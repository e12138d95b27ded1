"""Acceptance: gradients through the masked LSTM scan equal PyTorch autograd's on the same
float64 weights and padded batch, to 1e-7 relative error.

PyTorch's ``nn.LSTM`` has no mask; with padding only at the end of each sequence, running
it over the padded batch and masking the loss gives exactly the masked model's loss (padded
steps come after every real step of their column), so the gradients must agree.
"""

import numpy as np
import torch

import symgraph as sg
import symgraph.tensor as T
from tests.test_seed_notebook import LogisticRegression, LstmLayer

torch.set_default_dtype(torch.float64)


def padded_batch(rng, n_tokens, T_, lengths):
    ids = rng.integers(0, n_tokens, size=(T_ + 1, len(lengths)))
    mask = (np.arange(T_)[:, None] < np.asarray(lengths)[None, :]).astype("float64")
    return ids[:-1], ids[1:], mask


def test_masked_lstm_gradients_match_pytorch_autograd():
    rng = np.random.default_rng(0)
    n_tokens, n_h, T_ = 7, 5, 6
    x_ids, y_ids, mask_v = padded_batch(rng, n_tokens, T_, [6, 4, 1, 3])
    emb = rng.normal(size=(n_tokens, 4))

    x, y, mask = T.dtensor3("x"), T.lmatrix("y"), T.dmatrix("mask")
    lstm = LstmLayer(rng, x, mask, 4, n_h)
    for p in lstm.params:  # random biases too, so every gradient is exercised
        p.set_value(rng.normal(size=p.get_value().shape) * 0.5)
    out = LogisticRegression(rng, lstm.output, n_h, n_tokens)
    params = lstm.params + out.params
    logp = T.nnet.log_softmax(T.dot(lstm.output, out.W) + out.b)
    nll = -logp.reshape((-1, n_tokens))[T.arange(y.shape[0] * y.shape[1]), y.flatten()]
    cost = (nll * mask.flatten()).sum() / mask.sum()
    f = sg.function([x, y, mask], [cost, *sg.grad(cost, params)], mode="numpy")
    ours = f(emb[x_ids], y_ids, mask_v)

    W = {name: p.get_value() for name, p in zip(
        ["W_i", "U_i", "b_i", "W_f", "U_f", "b_f", "W_o", "U_o", "b_o", "W_c", "U_c", "b_c"],
        lstm.params)}
    net = torch.nn.LSTM(4, n_h)
    gates = ["i", "f", "c", "o"]  # PyTorch's gate order
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.tensor(np.concatenate([W[f"W_{g}"].T for g in gates])))
        net.weight_hh_l0.copy_(torch.tensor(np.concatenate([W[f"U_{g}"].T for g in gates])))
        net.bias_ih_l0.copy_(torch.tensor(np.concatenate([W[f"b_{g}"] for g in gates])))
        net.bias_hh_l0.zero_()
    out_W = torch.tensor(out.W.get_value(), requires_grad=True)
    out_b = torch.tensor(out.b.get_value(), requires_grad=True)
    hs, _ = net(torch.tensor(emb[x_ids]))
    logits = hs @ out_W + out_b
    nll_t = torch.nn.functional.cross_entropy(logits.reshape(-1, n_tokens),
                                              torch.tensor(y_ids.reshape(-1)), reduction="none")
    m = torch.tensor(mask_v.reshape(-1))
    cost_t = (nll_t * m).sum() / m.sum()
    cost_t.backward()

    def rel(a, b):
        return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)

    assert rel(ours[0], cost_t.item()) < 1e-12
    g = dict(zip(["W_i", "U_i", "b_i", "W_f", "U_f", "b_f", "W_o", "U_o", "b_o", "W_c", "U_c",
                  "b_c", "out_W", "out_b"], ours[1:]))
    H = n_h
    for k, gate in enumerate(gates):
        rows = slice(k * H, (k + 1) * H)
        assert rel(g[f"W_{gate}"], net.weight_ih_l0.grad[rows].numpy().T) < 1e-7
        assert rel(g[f"U_{gate}"], net.weight_hh_l0.grad[rows].numpy().T) < 1e-7
        assert rel(g[f"b_{gate}"], net.bias_ih_l0.grad[rows].numpy()) < 1e-7
    assert rel(g["out_W"], out_W.grad.numpy()) < 1e-7
    assert rel(g["out_b"], out_b.grad.numpy()) < 1e-7
