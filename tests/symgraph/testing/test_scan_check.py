"""check_scan_vs_unrolled: sg.scan agrees with the step unrolled in Python (values and
gradients; go_backwards, n_steps, per-step outputs, shared weights); a step with Python
side state, which scan traces once, is caught."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import ScanMismatchError, check_scan_vs_unrolled


def rnn_step(x_t, h, W, U):
    return T.tanh(T.dot(x_t, W) + T.dot(h, U))


@given(steps=st.integers(1, 5), batch=st.integers(1, 3), hidden=st.integers(1, 4),
       seed=st.integers(0, 100), backwards=st.booleans())
def test_rnn_scan_equals_unrolled(steps, batch, hidden, seed, backwards):
    rng = np.random.default_rng(seed)
    check_scan_vs_unrolled(
        rnn_step, sequences=[rng.normal(size=(steps, batch, 3)).astype("float32")],
        outputs_info=[rng.normal(size=(batch, hidden)).astype("float32")],
        non_sequences=[rng.normal(size=(3, hidden)).astype("float32"),
                       rng.normal(size=(hidden, hidden)).astype("float32") * 0.5],
        go_backwards=backwards)


def test_per_step_outputs_n_steps_and_shared_weights():
    rng = np.random.default_rng(0)
    V = sg.shared(rng.normal(size=(2, 2)).astype("float32"), name="V")

    def step(x_t, h):
        h_new = T.tanh(T.dot(h, V) + x_t)
        return h_new, (h_new ** 2).sum()

    check_scan_vs_unrolled(step, sequences=[rng.normal(size=(5, 2))],
                           outputs_info=[rng.normal(size=2), None], n_steps=3)


def test_a_step_with_python_side_state_is_caught():
    calls = []

    def step(x_t, h):  # scan traces the step once; unrolled, it is called per step
        calls.append(1)
        return h * len(calls) + x_t

    with pytest.raises(ScanMismatchError, match="scan vs unrolled: output 0 differs first "
                       "at step t=0"):
        check_scan_vs_unrolled(step, sequences=[np.ones((3, 2))], outputs_info=[np.ones(2)])
