"""The symgraph systems of the benchmark: ``symgraph-numpy``, ``symgraph-numba`` and
``symgraph-cuda``, built from ``symgraph.models`` exactly as a user would write them.

The model is the workload's: embedding -> stacked LSTM (masked for padded batches; state
carried between contiguous batches) -> linear -> softmax cross-entropy averaged over the
real target tokens; gradients clipped by global norm when the workload says so; SGD.
Parameters start uniform in +-0.1 with no forget-gate offset, as the peers.
"""

from __future__ import annotations

import numpy as np

from benchmarks.harness import Factory, SystemUnavailable

__all__ = ["register_systems"]


class SymgraphTrainer:
    """One compiled training step; carries the recurrent state for contiguous workloads."""

    def __init__(self, workload, data, mode: str) -> None:
        import symgraph as sg
        import symgraph.models as M
        import symgraph.tensor as T

        rng = np.random.default_rng(workload.seed)
        ids, targets = T.imatrix("ids"), T.imatrix("targets")
        mask = T.fmatrix("mask")
        embed = M.Embedding(data.vocab_size, workload.embed, rng, init_scale=0.1, dtype="float32")
        self.rnn = M.StackedRNN(
            "lstm",
            workload.embed,
            workload.hidden,
            rng,
            init_scale=0.1,
            forget_bias=0.0,
            dtype="float32",
        )
        out = M.LogisticRegression(
            workload.hidden[-1], data.vocab_size, rng, init_scale=0.1, dtype="float32"
        )
        self.masked = workload.layout == "masked"
        states = [T.fmatrix(f"state{k}") for k in range(len(self.rnn.state_sizes))]
        hs, finals = self.rnn(
            embed(ids), mask if self.masked else None, None if self.masked else states
        )
        cost = M.sequence_cross_entropy(out.logits(hs), targets, mask, normalize="token")
        params = embed.params + self.rnn.params + out.params
        grads = sg.grad(cost, params)
        if workload.clip:
            grads = M.clip_global_norm(grads, workload.clip)
        updates = M.sgd(params, grads, workload.lr)
        inputs = [ids, targets, mask] + ([] if self.masked else states)
        outputs = [cost] + ([] if self.masked else finals)
        self.fn = sg.function(inputs, outputs, updates=updates, mode=mode, on_unused_input="ignore")
        self.compile_s = self.fn.compile_s  # rewrites + code generation + numba (or disk cache)
        self.states = None

    def step(self, batch):
        if self.masked:
            (loss,) = self.fn(batch.inputs, batch.targets, batch.mask)
            return loss
        if batch.reset or self.states is None:
            self.states = self.rnn.zero_states(batch.inputs.shape[1], "float32")
        loss, *self.states = self.fn(batch.inputs, batch.targets, batch.mask, *self.states)
        return loss


def _factory(mode: str) -> Factory:
    def factory(workload, data):
        if mode == "cuda":
            try:
                from numba import cuda

                if not cuda.is_available():
                    raise SystemUnavailable("no CUDA device (numba.cuda.is_available() is False)")
            except ImportError as exc:
                raise SystemUnavailable(f"numba-cuda is not installed ({exc})") from exc
        return SymgraphTrainer(workload, data, mode)

    return factory


def register_systems(systems: dict[str, Factory]) -> None:
    """Add ``symgraph-numpy``, ``symgraph-numba`` and ``symgraph-cuda`` to ``systems``."""
    for mode in ("numpy", "numba", "cuda"):
        systems[f"symgraph-{mode}"] = _factory(mode)
