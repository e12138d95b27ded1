"""The language model: compiled functions, state carry (truncated BPTT), generation."""

import numpy as np
import pytest

from symgraph.models.batching import make_padded_batches
from symgraph.models.lm import LanguageModel, compile_lm, generate

MODE = "numpy"
V = 7


def _model(cell="lstm", **kw):
    return LanguageModel(V, embed=4, hidden=kw.pop("hidden", [5]), cell=cell, seed=3,
                         dtype="float64", **kw)


def test_parameters_are_named_and_counted():
    model = _model(hidden=[5, 4])
    names = [p.name for p in model.params]
    assert names == ["embed.W", "lstm0.W", "lstm0.U", "lstm0.b", "lstm1.W", "lstm1.U",
                     "lstm1.b", "out.W", "out.b"]
    assert model.n_params == V * 4 + (4 * 20 + 5 * 20 + 20) + (5 * 16 + 4 * 16 + 16) + 4 * V + V
    arrays = model.state_arrays()
    other = _model(hidden=[5, 4])
    for p in other.params:
        p.set_value(np.zeros_like(p.get_value()))
    other.load_arrays(arrays)
    for a, b in zip(model.params, other.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())
    with pytest.raises(ValueError, match="shape"):
        _model(hidden=[6, 4]).load_arrays(arrays)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_training_lowers_the_loss(cell):
    rng = np.random.default_rng(0)
    seqs = [np.append(rng.integers(3, V, rng.integers(2, 6)), 2) for _ in range(12)]
    batches = make_padded_batches(seqs, 4, pad_id=0, bos_id=2, dtype="float64")
    model = _model(cell, dropout=0.1)
    fns = compile_lm(model, "adam", lr=0.05, clip=5.0, mode=MODE)

    def mean_loss():
        total = sum(float(fns.evaluate(b.inputs, b.targets, b.mask)[0]) for b in batches)
        return total / sum(b.n_tokens for b in batches)

    before = mean_loss()
    for _ in range(15):
        for b in batches:
            fns.train(b.inputs, b.targets, b.mask)
    assert mean_loss() < before - 0.3


def test_state_carry_equals_one_long_window():
    """Evaluating two BPTT windows with the first's final states fed to the second equals
    evaluating the concatenated window from zero states."""
    model = _model(hidden=[5, 3])
    fns = compile_lm(model, "sgd", lr=0.1, clip=None, mode=MODE, masked=False, stateful=True)
    rng = np.random.default_rng(1)
    x = rng.integers(0, V, (8, 2)).astype(np.int32)
    y = rng.integers(0, V, (8, 2)).astype(np.int32)
    zero = model.zero_states(2)
    whole, *final_whole = fns.evaluate(x, y, *zero)
    first, *carried = fns.evaluate(x[:5], y[:5], *zero)
    second, *final = fns.evaluate(x[5:], y[5:], *carried)
    assert first + second == pytest.approx(whole, rel=1e-12)
    for a, b in zip(final, final_whole):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    # the training step returns the final states too, and they are the forward's
    loss, *train_final = fns.train(x[:5], y[:5], *zero)
    for a, b in zip(train_final, carried):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_single_step_function_shares_parameters_with_training():
    model = _model()
    fns = compile_lm(model, "sgd", lr=0.1, clip=None, mode=MODE, masked=False, stateful=True)
    ids = np.array([1, 4], dtype=np.int32)
    zero = model.zero_states(2)
    probs, *_ = fns.step(ids, *zero, np.float64(1.0))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # the step's probabilities are the softmax of the forward's logits at t = 0
    x = ids[None, :]
    total = fns.evaluate(x, np.array([[3, 5]], dtype=np.int32), *zero)[0]
    assert total == pytest.approx(-np.log(probs[0, 3]) - np.log(probs[1, 5]), rel=1e-10)
    fns.train(x, np.array([[3, 5]], dtype=np.int32), *zero)  # an SGD step changes weights
    probs2, *_ = fns.step(ids, *zero, np.float64(1.0))
    assert not np.allclose(probs, probs2)
    sharp, *_ = fns.step(ids, *zero, np.float64(0.1))
    assert sharp.max() > probs2.max()


def test_generate_stops_at_eos_and_respects_bans():
    model = _model()
    fns = compile_lm(model, parts=("step",), mode=MODE)
    rows = generate(fns.step, model, [2], n=6, rng=np.random.default_rng(0), max_len=12,
                    stop_id=2, banned_ids=[0])
    assert len(rows) == 6
    assert all(len(r) <= 12 and 2 not in r and 0 not in r for r in rows)
    again = generate(fns.step, model, [2], n=6, rng=np.random.default_rng(0), max_len=12,
                     stop_id=2, banned_ids=[0])
    assert rows == again
    with pytest.raises(ValueError, match="temperature"):
        generate(fns.step, model, [2], 1, np.random.default_rng(0), temperature=0.0)
