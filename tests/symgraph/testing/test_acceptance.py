"""Acceptance of issue 7: a user's test of ten lines or fewer checks the gradients and the
mask contract of a custom masked GRU written with ``sg.scan`` (float32 weights) and
passes; the same test with the GRU's mask blend removed fails, naming the mask contract.
"""

import numpy as np
import pytest
from hypothesis import Phase, given, settings

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import (
    MaskContractError,
    check_grads,
    check_mask_invariance,
    padded_batches,
)


class MaskedGRU:
    """A user's masked GRU over token ids: embedding, a GRU written with ``sg.scan``
    (mask blend :math:`h_t = m_t \\tilde h_t + (1 - m_t) h_{t-1}`), and a score read
    from the final state, one per sequence: ``gru(ids, mask)`` is ``(B,)``."""

    blend = True

    def __init__(self, vocab: int, hidden: int, n_embed: int = 3, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)

        def weight(name, *shape):
            return sg.shared((rng.normal(size=shape) * 0.6).astype("float32"), name=name)

        self.hidden = hidden
        self.E, self.W = weight("E", vocab, n_embed), weight("W", n_embed, 3 * hidden)
        self.U, self.b = weight("U", hidden, 3 * hidden), weight("b", 3 * hidden)
        self.v = weight("v", hidden)
        self.params = [self.E, self.W, self.U, self.b, self.v]

    def step(self, m_t, x_t, h):
        H = self.hidden
        a, u = T.dot(x_t, self.W) + self.b, T.dot(h, self.U)
        r = T.nnet.sigmoid(a[:, :H] + u[:, :H])
        z = T.nnet.sigmoid(a[:, H:2 * H] + u[:, H:2 * H])
        n = T.tanh(a[:, 2 * H:] + r * u[:, 2 * H:])
        new = (1 - z) * n + z * h
        if not self.blend:
            return new
        m = m_t.dimshuffle(0, "x")
        return m * new + (1 - m) * h

    def __call__(self, ids, mask):
        h0 = T.zeros((ids.shape[1], self.hidden), dtype="float32")
        hs, _ = sg.scan(self.step, sequences=[mask, self.E[ids]], outputs_info=h0)
        return T.dot(T.tanh(hs[-1]), self.v)


class GRUWithoutBlend(MaskedGRU):
    """The same GRU with its mask blend removed: padded steps update the state."""

    blend = False


def user_test(MaskedGRU):
    # ---- the user's test: ten lines ----------------------------------------------------
    @given(batch=padded_batches(vocab=7, max_len=5, max_batch=3))
    def test_masked_gru(batch):
        gru = MaskedGRU(vocab=7, hidden=4)
        check_grads(gru, at=batch, wrt=gru.params)
        check_mask_invariance(gru, *batch)
    # -------------------------------------------------------------------------------------
    return test_masked_gru


test_masked_gru_user_test_passes = user_test(MaskedGRU)


def test_the_same_test_without_the_mask_blend_fails_naming_the_mask_contract():
    # the same test; only hypothesis' shrinking is off (the failure is all we need here)
    test = settings(phases=[Phase.generate], database=None)(user_test(GRUWithoutBlend))
    with pytest.raises(MaskContractError, match="mask contract violated") as err:
        test()
    assert "padded steps appended" in str(err.value)


def test_the_model_stays_float32_and_untouched():
    gru = MaskedGRU(vocab=7, hidden=4)
    before = [p.get_value() for p in gru.params]
    ids, mask = np.array([[1, 2], [3, 0]]), np.array([[1.0, 1.0], [1.0, 0.0]], "float32")
    check_grads(gru, at=(ids, mask), wrt=gru.params)
    check_mask_invariance(gru, ids, mask)
    for p, b in zip(gru.params, before):
        assert p.dtype == "float32"
        np.testing.assert_array_equal(p.get_value(), b)


def test_the_documented_example_runs():
    import symgraph.testing

    doc = symgraph.testing.__doc__
    code = doc.split("with float32 weights::\n\n")[1].split("\n\n")[0]
    lines = [line[4:] for line in code.splitlines()]
    assert len(lines) <= 10
    namespace: dict = {}
    exec("\n".join(lines), namespace)
    namespace["test_rnn"]()
