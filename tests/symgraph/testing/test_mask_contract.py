"""check_mask_invariance: correct masked models pass; planted bugs (padding leaking into
the state, a loss normalised by the padded length, sequences mixed across the batch, a
readout of the padded ids) fail with a message naming the mask contract."""

import numpy as np
import pytest
from hypothesis import given

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import MaskContractError, check_mask_invariance, padded_batches

IDS = np.array([[1, 2, 3], [4, 0, 5], [6, 0, 0], [2, 0, 0]])
MASK = (np.arange(4)[:, None] < np.array([4, 1, 2])[None, :]).astype("float32")


class MaskedRNN:
    """A tanh RNN over ids (or float features), float32 weights.

    ``blend``: ``'switch'`` (exact, as ``symgraph.models.masks``), ``'product'``
    (``m * new + (1 - m) * old``) or ``None`` (the planted bug: no blend).
    ``normalize``: the masked per-token loss divided by ``'mask'`` (the number of real
    tokens) or by ``'padded'`` (the planted bug: the padded length ``T``).
    """

    def __init__(self, vocab=7, n_in=3, hidden=4, blend="switch", normalize="mask",
                 mix_batch=False, features=False, seed=0):
        rng = np.random.default_rng(seed)

        def weight(name, *shape):
            return sg.shared((rng.normal(size=shape) * 0.7).astype("float32"), name=name)

        self.E, self.W, self.U = (weight("E", vocab, n_in), weight("W", n_in, hidden),
                                  weight("U", hidden, hidden))
        self.hidden, self.blend, self.normalize = hidden, blend, normalize
        self.mix_batch, self.features = mix_batch, features

    def step(self, m_t, x_t, h):
        new = T.tanh(T.dot(x_t, self.W) + T.dot(h, self.U))
        m = m_t.dimshuffle(0, "x")
        if self.blend == "switch":
            return T.switch(m > 0, new, h)
        if self.blend == "product":
            return m * new + (1 - m) * h
        return new

    def __call__(self, x, mask):
        x = x if self.features else self.E[x]
        h0 = T.zeros((x.shape[1], self.hidden), dtype="float32")
        hs, _ = sg.scan(self.step, sequences=[mask, x], outputs_info=h0)
        final = hs[-1]
        if self.mix_batch:
            final = final + final[0]
        token_loss = (hs ** 2).sum(axis=-1) * mask
        count = mask.sum() if self.normalize == "mask" else T.cast(hs.shape[0], "float32")
        return final, T.tanh(final).sum(axis=1), token_loss.sum() / count


@given(batch=padded_batches(vocab=7, max_len=6, max_batch=4))
def test_correct_masked_models_pass(batch):
    check_mask_invariance(MaskedRNN(blend="switch"), *batch)
    check_mask_invariance(MaskedRNN(blend="product"), *batch)


def test_float_features_and_explicit_params():
    x = np.random.default_rng(0).normal(size=(4, 3, 3)).astype("float32")
    model = MaskedRNN(features=True)
    check_mask_invariance(model, x, MASK, params=[model.W])
    with pytest.raises(MaskContractError, match="inputs is not exactly zero at"):
        check_mask_invariance(MaskedRNN(features=True, blend=None), x, MASK)


def test_padding_leaking_into_the_state_violates_the_contract():
    with pytest.raises(MaskContractError) as err:
        check_mask_invariance(MaskedRNN(blend=None), IDS, MASK)
    msg = str(err.value)
    assert msg.startswith("mask contract violated")
    assert "with 2 padded steps appended: per-sequence output 0 changed" in msg
    assert "the gradient w.r.t. the inputs (through AdvancedSubtensor1" in msg
    assert "is not exactly zero at" in msg


def test_a_loss_normalised_by_the_padded_length_violates_the_contract():
    with pytest.raises(MaskContractError) as err:
        check_mask_invariance(MaskedRNN(normalize="padded"), IDS, MASK)
    msg = str(err.value)
    assert msg.startswith("mask contract violated")
    assert "with 2 padded steps appended: the cost changed from" in msg
    assert "per-sequence output 0 changed" not in msg  # only the loss is wrong


def test_sequences_mixed_across_the_batch_violate_the_contract():
    with pytest.raises(MaskContractError, match=r"(?s)mask contract violated.*with its "
                       r"sequences reordered \(columns \[.*per-sequence output 0 changed"):
        check_mask_invariance(MaskedRNN(mix_batch=True), IDS, MASK)


def test_reading_the_padded_ids_violates_the_contract():
    E = sg.shared(np.arange(14.0).reshape(7, 2), name="E")

    def bag_of_words(ids, mask):  # ignores the mask: averages over the padding too
        return E[ids].mean(axis=0).sum(axis=1)

    with pytest.raises(MaskContractError, match="other content at the padded positions: "
                       "per-sequence output 0 changed"):
        check_mask_invariance(bag_of_words, IDS, MASK)


def test_bad_arguments_are_rejected():
    model = MaskedRNN()
    with pytest.raises(ValueError, match="time-major"):
        check_mask_invariance(model, IDS, MASK.T)
    with pytest.raises(ValueError, match="only 0.0 and 1.0"):
        check_mask_invariance(model, IDS, MASK * 0.5)
    with pytest.raises(TypeError, match="per-sequence outputs"):
        check_mask_invariance(lambda ids, m: ids, IDS, MASK)
    with pytest.raises(ValueError, match="leading axis must be the batch"):
        check_mask_invariance(lambda ids, m: m.sum(axis=1), IDS, MASK)
