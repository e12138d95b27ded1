"""JAX peer: the whole training step (forward, backward, clipping, SGD) in one ``jax.jit``.

Same model and math as the PyTorch peer: embedding -> LSTM layers (input projection of
all steps hoisted into one GEMM, the recurrence in ``lax.scan``) -> linear -> log-softmax
cross-entropy averaged over real target tokens -> global-norm clipping (torch's rule:
scale ``min(1, clip / (norm + 1e-6))``) -> SGD. float32; every parameter
uniform(-0.1, 0.1). Gate order i, f, g, o; one bias per layer (torch has two, which is the
same function).

Masked workload: the loss is masked (weight 0 on padding). Padding is only at the end of
each column, so padded steps never reach a real position's state, and a masked loss gives
exactly the loss and gradients of a masked state blend; the final state is unused.
``jit`` specializes on shapes, so each distinct padded length compiles once (the harness
warm-up covers them all). Parameters are donated so the update is in place.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks.data import Batch, Dataset
from benchmarks.workloads import Workload

__all__ = ["init_params", "loss_fn", "make_step", "JaxTrainer", "build"]


def init_params(key, vocab: int, embed: int, hidden: tuple[int, ...]) -> dict:
    """Parameters, each uniform(-0.1, 0.1)."""
    sizes = (embed, *hidden)
    keys = iter(jax.random.split(key, 3 + 3 * len(hidden)))

    def u(shape):
        return jax.random.uniform(next(keys), shape, jnp.float32, -0.1, 0.1)

    layers = [
        {"wx": u((sizes[i], 4 * h)), "wh": u((h, 4 * h)), "b": u((4 * h,))}
        for i, h in enumerate(hidden)
    ]
    return {
        "emb": u((vocab, embed)),
        "layers": layers,
        "w_out": u((hidden[-1], vocab)),
        "b_out": u((vocab,)),
    }


def lstm_layer(p: dict, x, h0, c0):
    """One LSTM layer over ``x`` (T, B, in); returns (T, B, H) outputs and final (h, c)."""
    xp = x @ p["wx"] + p["b"]

    def cell(carry, xt):
        h, c = carry
        i, f, g, o = jnp.split(xt + h @ p["wh"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    (h, c), hs = lax.scan(cell, (h0, c0), xp)
    return hs, (h, c)


def loss_fn(params: dict, x, y, mask, state):
    """Mean cross-entropy over real tokens, and the final per-layer states."""
    h = params["emb"][x]
    new_state = []
    for p, (h0, c0) in zip(params["layers"], state):
        h, s = lstm_layer(p, h, h0, c0)
        new_state.append(s)
    logits = h @ params["w_out"] + params["b_out"]
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    return jnp.sum(nll * mask) / jnp.sum(mask), new_state


def make_step(lr: float, clip: float | None):
    """The jitted ``step(params, x, y, mask, state) -> (params, state, loss)``."""

    @partial(jax.jit, donate_argnums=(0,))
    def step(params, x, y, mask, state):
        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, x, y, mask, state
        )
        if clip is not None:
            leaves = jax.tree_util.tree_leaves(grads)
            norm = jnp.sqrt(sum(jnp.sum(g * g) for g in leaves))
            scale = jnp.minimum(1.0, clip / (norm + 1e-6))
            grads = jax.tree_util.tree_map(lambda g: g * scale, grads)
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
        return params, new_state, loss

    return step


class JaxTrainer:
    """Holds parameters and carried state; one jitted step per call."""

    def __init__(self, workload: Workload, data: Dataset) -> None:
        self.workload = workload
        self.params = init_params(
            jax.random.PRNGKey(workload.seed), data.vocab_size, workload.embed, workload.hidden
        )
        self._step = make_step(workload.lr, workload.clip)
        self._zeros: dict[int, list] = {}
        self.state = None
        self._cache: dict[int, tuple] = {}

    def _zero_state(self, b: int) -> list:
        z = self._zeros.get(b)
        if z is None:
            z = [(jnp.zeros((b, h), jnp.float32),) * 2 for h in self.workload.hidden]
            self._zeros[b] = z
        return z

    def _arrays(self, batch: Batch) -> tuple:
        t = self._cache.get(batch.index)
        if t is None:
            t = tuple(
                jax.device_put(np.asarray(a)) for a in (batch.inputs, batch.targets, batch.mask)
            )
            self._cache[batch.index] = t
        return t

    def step(self, batch: Batch):
        """One step; returns the loss (a 0-d jax array; ``float`` waits for it)."""
        x, y, mask = self._arrays(batch)
        if batch.reset or self.state is None:
            self.state = self._zero_state(batch.shape[1])
        self.params, state, loss = self._step(self.params, x, y, mask, self.state)
        self.state = None if self.workload.masked else state
        return loss


def build(workload: Workload, data: Dataset) -> JaxTrainer:
    """The harness factory."""
    return JaxTrainer(workload, data)
