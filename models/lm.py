"""The recurrent language model: assembly, compiled functions, generation, storage.

:class:`LanguageModel` stacks

.. math::
    e_t = \\mathrm{drop}(E[x_t]), \\quad
    h^{(k)}_t = \\mathrm{cell}_k(\\mathrm{drop}(h^{(k-1)}_t), h^{(k)}_{t-1}), \\quad
    z_t = \\mathrm{drop}(h^{(L)}_t) W_o + b_o, \\quad p(x_{t+1} \\mid x_{\\le t}) =
    \\mathrm{softmax}(z_t)

(dropout only in training, Zaremba et al. 2014) and is trained on the masked sequence
cross-entropy in nats per token. :func:`compile_lm` builds the three functions the job
needs from the *same* shared parameters: a training step (loss, gradients, optional
global-norm clipping, optimizer updates), an evaluation step (summed loss) and a
single-step function for generation. :func:`generate` samples text with the latter.

Built only on the public API.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.models.layers import Dropout, Embedding, LogisticRegression, n_params
from symgraph.models.masks import sequence_cross_entropy
from symgraph.models.optim import Updates, clip_global_norm, make_optimizer
from symgraph.models.recurrent import StackedRNN

__all__ = ["LanguageModel", "LMFunctions", "compile_lm", "generate"]


class LanguageModel:
    """Embedding, stacked masked recurrent layers and a softmax output layer.

    Parameters
    ----------
    vocab_size : int
    embed : int
        Embedding width.
    hidden : sequence of int
        Hidden size of each recurrent layer.
    cell : {'lstm', 'gru', 'rnn'}
    dropout : float
        Drop probability on the embeddings, between layers and before the output layer.
    init_scale : float, optional
        Every weight starts ``uniform(-init_scale, init_scale)``; ``None`` takes each
        layer's scaled default.
    forget_bias : float
        Added to the LSTM forget-gate biases.
    seed : int
        Seeds the weights (``numpy.random.default_rng(seed)``) and the dropout streams.
    """

    def __init__(self, vocab_size: int, embed: int = 64, hidden=(128,), cell: str = "lstm",
                 dropout: float = 0.0, init_scale: float | None = 0.1,
                 forget_bias: float = 1.0, seed: int = 0, dtype=None) -> None:
        rng = np.random.default_rng(seed)
        hidden = [int(h) for h in hidden]
        self.vocab_size, self.cell = int(vocab_size), cell
        self.streams = sg.RandomStreams(seed)
        self.embedding = Embedding(vocab_size, embed, rng, init_scale, name="embed",
                                   dtype=dtype)
        self.rnn = StackedRNN(cell, embed, hidden, rng, dropout, self.streams, init_scale,
                              forget_bias, dtype=dtype)
        self.output = LogisticRegression(hidden[-1], vocab_size, rng, init_scale,
                                         name="out", dtype=dtype)
        self.dropout = Dropout(dropout, self.streams)
        self.params = self.embedding.params + self.rnn.params + self.output.params
        self.dtype = self.embedding.W.dtype

    @property
    def n_params(self) -> int:
        """Number of trainable scalars."""
        return n_params(self.params)

    def zero_states(self, batch_size: int) -> list[np.ndarray]:
        """Numpy zero states (the flat list of every layer's states)."""
        return self.rnn.zero_states(batch_size, self.dtype)

    def forward(self, ids, mask=None, initial_states=None, train: bool = False):
        """Logits ``(T, B, V)`` for integer ``ids`` ``(T, B)``, and the final states."""
        x = self.dropout(self.embedding(ids), train)
        h, finals = self.rnn(x, mask, initial_states, train)
        return self.output.logits(self.dropout(h, train)), finals

    def loss(self, ids, targets, mask=None, initial_states=None, train: bool = False,
             normalize: str = "token"):
        """``(loss, final_states)``: the masked cross-entropy of predicting ``targets``
        (see :func:`~symgraph.models.masks.sequence_cross_entropy`)."""
        logits, finals = self.forward(ids, mask, initial_states, train)
        return sequence_cross_entropy(logits, targets, mask, normalize), finals

    # ---- storage ------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Parameter values keyed ``'params/<name>'`` (checkpoint layout)."""
        return {f"params/{p.name}": p.get_value() for p in self.params}

    def load_arrays(self, arrays, where: str = "checkpoint") -> None:
        """Set the parameters from :meth:`state_arrays`-style arrays (shapes checked)."""
        for p in self.params:
            key = f"params/{p.name}"
            if key not in arrays:
                raise ValueError(f"{where} has no parameter {p.name!r}")
            value = np.asarray(arrays[key])
            want = p.get_value(borrow=True)
            if value.shape != want.shape:
                raise ValueError(f"{where}: parameter {p.name!r} has shape {value.shape}, "
                                 f"the model expects {want.shape}")
            p.set_value(value.astype(want.dtype))


@dataclass
class LMFunctions:
    """Compiled functions of one model (they share its parameters).

    ``train(x, y[, mask], *states) -> [loss, *final_states]`` does one optimizer step
    (loss in nats per real token, before the step); ``evaluate(x, y[, mask], *states) ->
    [summed loss, *final_states]``; ``step(ids, *states, temperature) -> [probs,
    *new_states]`` advances generation by one token. ``mask`` is an input when the
    functions are ``masked``, ``states`` when they are ``stateful`` (truncated BPTT).
    """

    train: sg.Function | None
    evaluate: sg.Function | None
    step: sg.Function | None
    lr: sg.SharedVariable | None
    updates: Updates | None
    masked: bool
    stateful: bool
    compile_s: float


def compile_lm(model: LanguageModel, optimizer: str = "adam", lr: float = 0.01,
               clip: float | None = 5.0, mode=None, masked: bool = True,
               stateful: bool = False, normalize: str = "token",
               parts=("train", "evaluate", "step")) -> LMFunctions:
    """Build and compile the training, evaluation and generation functions.

    Parameters
    ----------
    optimizer : {'sgd', 'momentum', 'adagrad', 'adam'}
        The training function's optimizer (its state: ``functions.updates.state``).
    lr : float
        Initial value of the shared learning rate (``functions.lr``; set it to decay).
    clip : float, optional
        Global-norm clipping threshold; ``None`` or 0 disables clipping.
    mode : str, optional
        Backend; ``sg.config.mode`` by default.
    normalize : {'token', 'sequence', 'none'}
        Normalisation of the training loss.
    parts : sequence of str
        Which functions to build; the others are ``None``.
    masked : bool
        Padded sentence batches with a ``(T, B)`` mask input.
    stateful : bool
        The initial states are inputs and the final states outputs (truncated BPTT).
    """
    import time

    started = time.perf_counter()
    x, y = T.imatrix("x"), T.imatrix("y")
    mask = T.matrix("mask", dtype=model.dtype) if masked else None
    states = ([T.matrix(f"state{k}", dtype=model.dtype)
               for k in range(len(model.rnn.state_sizes))] if stateful else None)
    data_inputs = [x, y] + ([mask] if masked else []) + (states or [])

    train = evaluate = step = lr_var = updates = None
    if "train" in parts:
        loss, finals = model.loss(x, y, mask, states, train=True, normalize=normalize)
        grads = sg.grad(loss, model.params)
        if clip:
            grads = clip_global_norm(grads, clip)
        lr_var = sg.shared(np.array(lr, dtype=model.dtype), name="lr")
        updates = make_optimizer(optimizer, model.params, grads, lr_var)
        train = sg.function(data_inputs, [loss] + (finals if stateful else []),
                            updates=updates, mode=mode, name="train")
    if "evaluate" in parts:
        total, eval_finals = model.loss(x, y, mask, states, train=False, normalize="none")
        evaluate = sg.function(data_inputs, [total] + (eval_finals if stateful else []),
                               mode=mode, name="evaluate")
    if "step" in parts:
        ids = T.ivector("ids")
        step_states = [T.matrix(f"h{k}", dtype=model.dtype)
                       for k in range(len(model.rnn.state_sizes))]
        temperature = T.scalar("temperature", dtype=model.dtype)
        top, new_states = model.rnn.step(model.embedding(ids), step_states)
        probs = model.output.probabilities(top, temperature)
        step = sg.function([ids, *step_states, temperature], [probs, *new_states],
                           mode=mode, name="step")
    return LMFunctions(train, evaluate, step, lr_var, updates, masked, stateful,
                       time.perf_counter() - started)


def generate(step, model: LanguageModel, prime_ids, n: int, rng: np.random.Generator,
             temperature: float = 1.0, max_len: int = 100, stop_id: int | None = None,
             banned_ids=()) -> list[list[int]]:
    """Sample ``n`` continuations in parallel with the compiled single-step function.

    Every row is primed with ``prime_ids`` (e.g. ``[<eos>] + prefix``: the start marker
    the model was trained with, then the user's prefix), then tokens are drawn from
    :math:`\\mathrm{softmax}(z / \\tau)` until ``stop_id`` or ``max_len`` new tokens.

    Parameters
    ----------
    step : sg.Function
        ``LMFunctions.step``.
    prime_ids : sequence of int
        At least one id.
    temperature : float
        :math:`\\tau > 0`; below 1 sharpens, above 1 flattens the distribution.
    banned_ids : sequence of int
        Ids never sampled (``<pad>``).

    Returns
    -------
    list of n lists of int
        The sampled ids after the prime, without the stop id.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    prime_ids = [int(i) for i in prime_ids]
    if not prime_ids:
        raise ValueError("generation needs at least one priming id (the start marker)")
    tau = np.asarray(temperature, dtype=model.dtype)
    states = model.zero_states(n)
    probs = None
    for token in prime_ids:
        probs, *states = step(np.full(n, token, dtype=np.int32), *states, tau)
    out: list[list[int]] = [[] for _ in range(n)]
    done = np.zeros(n, dtype=bool)
    for _ in range(max_len):
        p = np.asarray(probs, dtype=np.float64)
        p[:, list(banned_ids)] = 0.0
        cdf = np.cumsum(p, axis=1)
        u = rng.random(n) * cdf[:, -1]
        tokens = np.minimum((cdf < u[:, None]).sum(axis=1), p.shape[1] - 1)
        for row, token in enumerate(tokens):
            if done[row]:
                continue
            if stop_id is not None and token == stop_id:
                done[row] = True
            else:
                out[row].append(int(token))
        if done.all():
            break
        probs, *states = step(tokens.astype(np.int32), *states, tau)
    return out
