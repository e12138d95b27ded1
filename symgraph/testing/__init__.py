"""``symgraph.testing``: property-based gradient testing of your own models.

A complete test (ten lines) of the gradients and the mask contract of a masked RNN
written with ``sg.scan``, with float32 weights::

    import numpy as np, symgraph as sg, symgraph.tensor as T
    from hypothesis import given
    from symgraph.testing import check_grads, check_mask_invariance, padded_batches
    E, U = (sg.shared(np.random.rand(*s).astype("float32")) for s in [(7, 4), (4, 4)])
    def step(m, x, h):  # a masked tanh RNN step: padded steps keep the state
        return T.switch(m[:, None] > 0, T.tanh(x + T.dot(h, U)), h)
    @given(batch=padded_batches(vocab=7, max_len=5, max_batch=3))
    def test_rnn(batch):  # rnn(ids, mask): the final states (B, 4)
        rnn = lambda ids, m: sg.scan(step, [m, E[ids]], T.zeros((ids.shape[1], 4)))[0][-1]
        check_grads(rnn, at=batch, wrt=[E, U]), check_mask_invariance(rnn, *batch)

What is here:

- **Strategies** (:mod:`symgraph.testing.strategies`, needs hypothesis):
  :func:`shapes` (size-1 and broadcastable dims), :func:`tensors` (values in an op's
  safe domain: ``domain=(0.1, 3)``, ``'positive'``, ``'unit'``, ...),
  :func:`padded_batches` (time-major ids and a 0/1 mask), :func:`lengths`.
- **Checks** (:mod:`symgraph.testing.checks`): :func:`check_grads` rebuilds the graph
  in float64 whatever ``floatX`` is, takes the finite-difference step from the dtype,
  runs the dot-product test :math:`\\langle \\mathrm{pullback}(u), v\\rangle \\approx
  \\langle u, J v\\rangle` with seeded directions, keeps clear of kinks (``relu``,
  ``abs``, ``max`` ties, ``clip``, ``switch``) by nudging the point, and on failure
  names the ops whose pullback disagrees, node by node, and by how much.
  :func:`check_mask_invariance` checks that extra padding, other content at padded
  positions and reordering the batch change no per-sequence output, cost or gradient,
  and that padded positions get exactly zero, finite gradients.
  :func:`check_scan_vs_unrolled` compares ``sg.scan`` with the step unrolled in Python.
- **A pytest plugin** (:mod:`symgraph.testing.pytest_plugin`):
  ``pytest_plugins = ["symgraph.testing.pytest_plugin"]`` in the root ``conftest.py``
  gives the fixtures ``check_grads``, ``check_mask_invariance`` and ``gradient_rng``
  and the hypothesis profiles ``symgraph-ci`` (derandomized, bounded) and
  ``symgraph-dev``, chosen by ``SYMGRAPH_HYPOTHESIS_PROFILE`` or ``CI``.

All checks raise ``AssertionError`` subclasses: :class:`GradientCheckError`,
:class:`MaskContractError` (messages start ``mask contract violated``) and
:class:`ScanMismatchError`.
"""

from symgraph.testing.checks import (
    GradientCheckError,
    MaskContractError,
    ScanMismatchError,
    check_grads,
    check_mask_invariance,
    check_scan_vs_unrolled,
    default_eps,
    default_rtol,
)

__all__ = [
    "DOMAINS", "GradientCheckError", "MaskContractError", "ScanMismatchError",
    "check_grads", "check_mask_invariance", "check_scan_vs_unrolled", "default_eps",
    "default_rtol", "lengths", "padded_batches", "shapes", "tensors",
]

# The strategies need hypothesis, a test-only dependency, while the checks (and
# ``symgraph.gradient.verify_grad``, built on them) must import without it: the
# strategies are loaded on first use.
_STRATEGIES = ("DOMAINS", "lengths", "padded_batches", "shapes", "tensors")


def __getattr__(name: str):
    if name in _STRATEGIES:
        from symgraph.testing import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'symgraph.testing' has no attribute {name!r}")
