"""The CUDA backend on whole training steps: shared variables resident on the device
between calls, and a masked (and a contiguous, stateful) LSTM language model trained for
two steps, against the numpy reference: at toy sizes everywhere, and on a real GPU at the
sizes of the benchmark workloads too."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.models as M
import symgraph.tensor as T
from symgraph.backends.cuda.device import simulator_enabled
from tests.helpers import require_cuda_backend

require_cuda_backend()

#: (vocabulary, embedding, hidden, steps, batch): toy sizes, and the sizes of the
#: ``lstm-dinos`` and ``char-512`` benchmark workloads (a GPU only: the simulator runs
#: every CUDA thread as a Python thread).
TOY = (7, 4, 3, 3, 2)
REAL = {"lstm-dinos": (27, 128, 128, 15, 64), "char-512": (50, 128, 512, 64, 32)}


def test_shared_variables_stay_on_the_device_between_calls():
    from symgraph.backends.cuda.memory import RESIDENT

    w = sg.shared(np.arange(6, dtype="float32").reshape(2, 3), name="w")
    x = T.fvector("x")
    step = sg.function([x], (w * x).sum(), updates=[(w, w * 2 + x)], mode="cuda")
    total = sg.function([], w.sum(), mode="cuda")
    xv = np.array([1, -1, 0.5], "float32")
    expected = w.get_value()
    uploads, fetches = RESIDENT.uploads, RESIDENT.fetches
    for _ in range(3):
        assert step(xv) == pytest.approx(float((expected * xv).sum()))
        expected = expected * 2 + xv
        assert w.holder is RESIDENT
    assert RESIDENT.uploads == uploads + 1  # the first call only
    buffers = [RESIDENT.device_array(w)]
    for _ in range(2):
        step(xv)
        buffers.append(RESIDENT.device_array(w))
    assert buffers[0] is buffers[2] and buffers[0] is not buffers[1]  # two buffers in turn
    expected = expected * 4 + 3 * xv
    assert total() == pytest.approx(float(expected.sum()))  # another function, same copy
    assert RESIDENT.fetches == fetches
    np.testing.assert_allclose(w.get_value(), expected)
    assert w.holder is None and RESIDENT.fetches == fetches + 1
    total()
    assert RESIDENT.uploads == uploads + 1  # host and device agree: nothing to upload
    w.set_value(np.zeros((2, 3), "float32"))
    assert total() == 0.0 and RESIDENT.uploads == uploads + 2
    mixed = sg.function([], w + 1, updates=[(w, w - 1)], mode="numpy")
    np.testing.assert_array_equal(mixed(), np.ones((2, 3)))
    assert step(xv) == pytest.approx(-1.0)  # read the value the numpy function left
    np.testing.assert_allclose(w.get_value(), np.broadcast_to(-2 + xv, (2, 3)))


def _lstm_lm(mode: str, masked: bool, vocab: int, embedding: int, hidden: int):
    """The benchmark's model (``benchmarks/symgraph_systems.py``) at the given sizes."""
    rng = np.random.default_rng(0)
    ids, targets, mask = T.imatrix("ids"), T.imatrix("targets"), T.fmatrix("mask")
    embed = M.Embedding(vocab, embedding, rng, init_scale=0.1, dtype="float32")
    rnn = M.StackedRNN("lstm", embedding, [hidden], rng, init_scale=0.1, forget_bias=0.0,
                       dtype="float32")
    out = M.LogisticRegression(hidden, vocab, rng, init_scale=0.1, dtype="float32")
    states = [T.fmatrix(f"state{k}") for k in range(len(rnn.state_sizes))]
    hs, finals = rnn(embed(ids), mask if masked else None, None if masked else states)
    cost = M.sequence_cross_entropy(out.logits(hs), targets, mask, normalize="token")
    params = embed.params + rnn.params + out.params
    grads = sg.grad(cost, params)
    if not masked:
        grads = M.clip_global_norm(grads, 5.0)
    inputs = [ids, targets, mask] + ([] if masked else states)
    outputs = [cost] + ([] if masked else finals)
    step = sg.function(inputs, outputs, updates=M.sgd(params, grads, 0.5), mode=mode,
                       on_unused_input="ignore")
    return step, params, rnn


@pytest.mark.parametrize("masked", [True, False], ids=["masked", "contiguous"])
def test_lstm_training_steps_match_the_numpy_reference(masked):
    _check_training_steps(masked, *TOY)


@pytest.mark.skipif(simulator_enabled(), reason="benchmark sizes run on a real GPU only")
@pytest.mark.parametrize("workload", REAL)
def test_lstm_training_steps_at_benchmark_sizes_match_the_numpy_reference(workload):
    _check_training_steps(workload == "lstm-dinos", *REAL[workload])


def _check_training_steps(masked, vocab, embedding, hidden, n_steps, batch):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, vocab, (n_steps, batch)).astype("int32")
    targets = rng.integers(0, vocab, (n_steps, batch)).astype("int32")
    mask = np.ones((n_steps, batch), "float32")
    if masked:  # padding at the end of some columns
        lengths = rng.integers(1, n_steps + 1, batch)
        lengths[0], lengths[-1] = n_steps, n_steps - 1  # the longest, and a padded one
        mask[np.arange(n_steps)[:, None] >= lengths[None, :]] = 0.0
    runs = {}
    for mode in ("numpy", "cuda"):
        step, params, rnn = _lstm_lm(mode, masked, vocab, embedding, hidden)
        states, losses = rnn.zero_states(batch, "float32"), []
        for _ in range(2):
            loss, *new_states = step(ids, targets, mask, *([] if masked else states))
            losses.append(float(loss))
            states = new_states or states
        runs[mode] = losses, [p.get_value() for p in params], states
    (want_loss, want_params, want_states), (loss, got_params, got_states) = (
        runs["numpy"], runs["cuda"])
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    assert want_loss[1] < want_loss[0]
    for got, want in zip(got_params + got_states, want_params + want_states):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6)
