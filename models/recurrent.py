"""Masked recurrent layers (LSTM, GRU, vanilla tanh RNN) and a stack of them.

Shapes are time-major: inputs ``x`` (T, B, n_in), mask (T, B), states (B, H), outputs
(T, B, H). Every layer

1. projects the inputs of *all* steps at once, one GEMM before the loop:
   :math:`X_p = \\mathrm{reshape}(x, (T B, n_{in}))\\, W + b`, with the gates fused
   (``W`` is ``(n_in, G H)``, ``U`` is ``(H, G H)``, ``b`` is ``(G H,)`` for ``G`` gates);
2. scans over ``[mask, X_p]``; each step does one ``(B, H) x (H, G H)`` product
   :math:`z_t = X_{p,t} + h_{t-1} U` and the gate nonlinearities;
3. blends the new states with :func:`~symgraph.models.masks.masked_update`, so padded
   steps keep the state exactly and get exactly zero gradient.

Initial states are zeros, or given (truncated BPTT feeds a window's final states, as
numpy values, as the next window's initial states). Weights are drawn
``uniform(-s, s)``, ``s = init_scale`` or ``1/sqrt(H)`` (PyTorch's default).

Built only on the public API.
"""

from __future__ import annotations

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph import Variable
from symgraph.models.layers import Dropout, uniform_init
from symgraph.models.masks import masked_update

__all__ = ["RecurrentLayer", "LSTM", "GRU", "RNN", "StackedRNN", "CELLS", "make_cell"]


class RecurrentLayer:
    """Shared machinery of the masked recurrent layers; subclasses define :meth:`step`.

    Attributes
    ----------
    W, U, b : SharedVariable
        Fused input weights ``(n_in, G*H)``, recurrent weights ``(H, G*H)``, bias ``(G*H,)``.
    params : list of SharedVariable
        ``[W, U, b]``, named ``'<name>.W'`` etc.
    n_states : int
        States carried per step (2 for the LSTM's ``(h, c)``, else 1).
    """

    n_gates = 1
    n_states = 1

    def __init__(self, n_in: int, n_hidden: int, rng: np.random.Generator,
                 init_scale: float | None = None, name: str = "rnn", dtype=None) -> None:
        for key, value in (("n_in", n_in), ("n_hidden", n_hidden)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{type(self).__name__}: {key} must be a positive int, "
                                 f"got {value!r}")
        self.n_in, self.n_hidden, self.name = int(n_in), int(n_hidden), name
        scale = 1.0 / np.sqrt(n_hidden) if init_scale is None else init_scale
        width = self.n_gates * self.n_hidden
        self.W = sg.shared(uniform_init(rng, (n_in, width), scale, dtype), name=f"{name}.W")
        self.U = sg.shared(uniform_init(rng, (n_hidden, width), scale, dtype),
                           name=f"{name}.U")
        self.b = sg.shared(uniform_init(rng, (width,), scale, dtype), name=f"{name}.b")
        self.params = [self.W, self.U, self.b]

    # ---- pieces -------------------------------------------------------------------------
    def project(self, x) -> Variable:
        """:math:`x W + b` for every step at once; ``x`` (T, B, n_in) or (B, n_in)."""
        x = T.as_tensor_variable(x)
        if x.ndim == 2:
            return T.dot(x, self.W) + self.b
        if x.ndim != 3:
            raise ValueError(f"{self.name}: inputs must be (T, B, n_in), got {x.describe()}")
        steps, batch = x.shape[0], x.shape[1]
        flat = T.dot(x.reshape((-1, self.n_in)), self.W) + self.b
        return flat.reshape((steps, batch, self.n_gates * self.n_hidden))

    def gate(self, z, k: int) -> Variable:
        """Columns of gate ``k`` of a fused ``(B, G*H)`` pre-activation."""
        h = self.n_hidden
        return z[:, k * h:(k + 1) * h]

    def step(self, xp_t, *states) -> list[Variable]:
        """One step from the projected input ``xp_t`` (B, G*H); returns the new states."""
        raise NotImplementedError

    def zero_states(self, batch) -> list[Variable]:
        """Symbolic zero states for a batch of ``batch`` sequences."""
        dtype = self.W.dtype
        return [T.zeros((batch, self.n_hidden), dtype=dtype) for _ in range(self.n_states)]

    # ---- the layer ----------------------------------------------------------------------
    def __call__(self, x, mask=None, initial_states=None):
        """Run the layer over a batch.

        Parameters
        ----------
        x : Variable, shape (T, B, n_in)
        mask : Variable, shape (T, B), optional
            1.0 on real steps, 0.0 on padding; ``None`` means every step is real.
        initial_states : list of Variables, optional
            ``n_states`` tensors of shape (B, H); zeros by default.

        Returns
        -------
        (outputs, final_states)
            ``outputs`` (T, B, H) are the hidden states ``h_t``; ``final_states`` the list
            of states after the last step (each sequence's state at its last real step,
            since padding leaves states unchanged).
        """
        x = T.as_tensor_variable(x)
        xp = self.project(x)
        if initial_states is None:
            initial_states = self.zero_states(x.shape[1])
        initial_states = [T.as_tensor_variable(s) for s in initial_states]
        if len(initial_states) != self.n_states:
            raise ValueError(f"{self.name}: expected {self.n_states} initial states, got "
                             f"{len(initial_states)}")
        n = self.n_states
        if mask is None:
            def fn(xp_t, *rest):
                return self.step(xp_t, *rest[:n])
            sequences = [xp]
        else:
            def fn(m_t, xp_t, *rest):
                prev = rest[:n]
                new = self.step(xp_t, *prev)
                return [masked_update(m_t, s_new, s_old) for s_new, s_old in zip(new, prev)]
            sequences = [T.as_tensor_variable(mask), xp]
        result, _ = sg.scan(fn, sequences=sequences, outputs_info=initial_states,
                            name=self.name)
        histories = result if isinstance(result, list) else [result]
        return histories[0], [hist[-1] for hist in histories]


class LSTM(RecurrentLayer):
    """Masked LSTM; gates in PyTorch's order ``i, f, g, o`` in the fused columns:

    .. math::
        z_t &= x_t W + b + h_{t-1} U \\\\
        i_t = \\sigma(z^{i}_t),\\; f_t &= \\sigma(z^{f}_t),\\; g_t = \\tanh(z^{g}_t),\\;
        o_t = \\sigma(z^{o}_t) \\\\
        c_t &= f_t \\odot c_{t-1} + i_t \\odot g_t, \\qquad h_t = o_t \\odot \\tanh(c_t)

    States ``(h, c)``. ``forget_bias`` (default 1.0, as Gers et al. and Jozefowicz et al.
    recommend, so the cell remembers from the start) is *added* to the forget-gate slice
    of ``b`` after the uniform draw; pass 0.0 to have every parameter uniform (the PTB
    recipe and PyTorch's init).
    """

    n_gates = 4
    n_states = 2

    def __init__(self, n_in: int, n_hidden: int, rng: np.random.Generator,
                 init_scale: float | None = None, forget_bias: float = 1.0,
                 name: str = "lstm", dtype=None) -> None:
        super().__init__(n_in, n_hidden, rng, init_scale, name, dtype)
        self.forget_bias = float(forget_bias)
        if self.forget_bias:
            b = self.b.get_value()
            b[n_hidden:2 * n_hidden] += self.forget_bias
            self.b.set_value(b)

    def step(self, xp_t, h, c) -> list[Variable]:
        """:math:`(h_t, c_t)` from the projected input and :math:`(h_{t-1}, c_{t-1})`."""
        z = xp_t + T.dot(h, self.U)
        i = T.nnet.sigmoid(self.gate(z, 0))
        f = T.nnet.sigmoid(self.gate(z, 1))
        g = T.tanh(self.gate(z, 2))
        o = T.nnet.sigmoid(self.gate(z, 3))
        c_new = f * c + i * g
        return [o * T.tanh(c_new), c_new]


class GRU(RecurrentLayer):
    """Masked GRU; gates ``r, z, n`` (PyTorch's order and update convention):

    .. math::
        a_t &= x_t W + b, \\qquad u_t = h_{t-1} U \\\\
        r_t &= \\sigma(a^{r}_t + u^{r}_t), \\qquad z_t = \\sigma(a^{z}_t + u^{z}_t) \\\\
        n_t &= \\tanh(a^{n}_t + r_t \\odot u^{n}_t), \\qquad
        h_t = (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}

    (one bias: PyTorch's separate hidden bias ``b_hn`` inside ``r_t * (...)`` is not
    there).
    """

    n_gates = 3
    n_states = 1

    def step(self, xp_t, h) -> list[Variable]:
        """:math:`h_t` from the projected input and :math:`h_{t-1}`."""
        u = T.dot(h, self.U)
        r = T.nnet.sigmoid(self.gate(xp_t, 0) + self.gate(u, 0))
        z = T.nnet.sigmoid(self.gate(xp_t, 1) + self.gate(u, 1))
        n = T.tanh(self.gate(xp_t, 2) + r * self.gate(u, 2))
        return [(1.0 - z) * n + z * h]


class RNN(RecurrentLayer):
    """Masked vanilla (Elman) RNN: :math:`h_t = \\tanh(x_t W + b + h_{t-1} U)`."""

    n_gates = 1
    n_states = 1

    def step(self, xp_t, h) -> list[Variable]:
        """:math:`h_t` from the projected input and :math:`h_{t-1}`."""
        return [T.tanh(xp_t + T.dot(h, self.U))]


CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def make_cell(cell: str, n_in: int, n_hidden: int, rng: np.random.Generator,
              init_scale: float | None = None, forget_bias: float = 1.0, name: str | None = None,
              dtype=None) -> RecurrentLayer:
    """A recurrent layer by name: ``'lstm'``, ``'gru'`` or ``'rnn'``."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; choose one of {sorted(CELLS)}")
    kwargs = {"forget_bias": forget_bias} if cell == "lstm" else {}
    return CELLS[cell](n_in, n_hidden, rng, init_scale=init_scale, name=name or cell,
                       dtype=dtype, **kwargs)


class StackedRNN:
    """Recurrent layers on top of each other, with dropout between them.

    Layer ``k`` (named ``'<cell><k>'``, e.g. ``'lstm0'``) reads the hidden states of layer
    ``k - 1``; in training those pass through :class:`~symgraph.models.layers.Dropout`
    first (never inside the recurrence). States are handled as one flat list: for each
    layer its ``n_states`` states, bottom layer first.

    Parameters
    ----------
    cell : {'lstm', 'gru', 'rnn'}
    n_in : int
    hidden_sizes : sequence of int
        One hidden size per layer.
    rng : numpy.random.Generator
    dropout : float
        Drop probability between layers.
    streams : sg.RandomStreams, optional
        Needed when ``dropout > 0``.
    """

    def __init__(self, cell: str, n_in: int, hidden_sizes, rng: np.random.Generator,
                 dropout: float = 0.0, streams: sg.RandomStreams | None = None,
                 init_scale: float | None = None, forget_bias: float = 1.0,
                 dtype=None) -> None:
        hidden_sizes = [int(h) for h in hidden_sizes]
        if not hidden_sizes:
            raise ValueError("StackedRNN needs at least one layer")
        sizes = [n_in] + hidden_sizes
        self.layers = [make_cell(cell, sizes[k], sizes[k + 1], rng, init_scale, forget_bias,
                                 name=f"{cell}{k}", dtype=dtype)
                       for k in range(len(hidden_sizes))]
        self.dropout = Dropout(dropout, streams)
        self.hidden_sizes = hidden_sizes
        self.params = [p for layer in self.layers for p in layer.params]

    @property
    def state_sizes(self) -> list[int]:
        """The width of every state in the flat state list."""
        return [layer.n_hidden for layer in self.layers for _ in range(layer.n_states)]

    def zero_states(self, batch_size: int, dtype=None) -> list[np.ndarray]:
        """Numpy zero states for the flat state list (initial values of truncated BPTT)."""
        dtype = dtype or self.layers[0].W.dtype
        return [np.zeros((batch_size, h), dtype=dtype) for h in self.state_sizes]

    def _split(self, states) -> list[list]:
        if states is None:
            return [None] * len(self.layers)
        states = list(states)
        if len(states) != len(self.state_sizes):
            raise ValueError(f"expected {len(self.state_sizes)} states, got {len(states)}")
        out, k = [], 0
        for layer in self.layers:
            out.append(states[k:k + layer.n_states])
            k += layer.n_states
        return out

    def __call__(self, x, mask=None, initial_states=None, train: bool = False):
        """Run every layer over the batch; returns ``(top outputs (T, B, H), final states)``
        with the final states as one flat list."""
        finals = []
        for k, (layer, init) in enumerate(zip(self.layers, self._split(initial_states))):
            if k > 0:
                x = self.dropout(x, train)
            x, last = layer(x, mask, init)
            finals.extend(last)
        return x, finals

    def step(self, x_t, states) -> tuple[Variable, list[Variable]]:
        """One time step of the whole stack without dropout (for generation):
        ``x_t`` (B, n_in) and the flat states give ``(h_top (B, H), new flat states)``."""
        new = []
        for layer, prev in zip(self.layers, self._split(states)):
            out = layer.step(layer.project(x_t), *prev)
            new.extend(out)
            x_t = out[0]
        return x_t, new
