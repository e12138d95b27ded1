"""Scan on the GPU: the loop over time runs on the host and launches the kernels of the
inner graph, compiled once into its own program, at every step::

    n = n_steps                               # checked against the sequence lengths
    H = device buffer (n,) + carry shape      # where the carries' new values go
    for t in range(n):
        point the inner output buffers at H[t] and Y[t] ("sinks")
        run the inner program on (seq[t], c, nonseqs)   # kernels write H[t], Y[t]
        copy what did not land in its slot   # e.g. a carry passed through unchanged
        c = H[t]

So a step costs the launches of its own kernels: each new carry is written by the
fused kernel that computes it straight into its slot, and every other inner value
reuses the same buffer from step to step (the inner program's sites). Where the new
values of a carry go depends on what the scan returns:

- ``history``: the stacked carries, ``H[t]``;
- ``pair``: only the last carry: two buffers used in turn, ``B[t % 2]``;
- ``shifted``: a step output is the carry *before* the step (the forward pass of a
  gradient saves it): one buffer ``P`` of ``n + 1`` rows, ``P[0]`` the initial carry,
  step ``t`` writing ``P[t + 1]``; the stacked previous carries are ``P[:n]`` and the
  history ``P[1:]``, both views.

A step output that is a sequence slice is the sequence itself. Sequence slices
``seq[t]`` are views; 0-d carries and slices stay on the host like every 0-d value.
"""

from __future__ import annotations

import numpy as np

from symgraph.backends.cuda import launcher
from symgraph.backends.cuda.context import LoweringContext, lower
from symgraph.backends.cuda.graphs import LoopGraphs
from symgraph.backends.cuda.memory import Site, row, to_device
from symgraph.errors import ShapeError
from symgraph.scan.op import Scan, _check_lengths


def _reader(var, ctx: LoweringContext):
    return ctx.host_reader(var) if ctx.on_host(var) else ctx.device_reader(var)


def _on_device(value):
    """A stacked result on the device (0-d steps were collected on the host)."""
    return to_device(value) if isinstance(value, np.ndarray) else value


def _store(dest, value, what: str) -> None:
    """Copy the device array ``value`` into ``dest`` unless it is already there."""
    if value is dest:
        return
    if value.shape != dest.shape:
        raise ShapeError(f"scan: {what} has shape {value.shape}, expected {dest.shape}")
    if value.size:
        launcher.copy(dest, value)


class ScanStep:
    """The step running one Scan node (see the module docstring)."""

    def __init__(self, op: Scan, node, ctx: LoweringContext) -> None:
        self.op, self.node = op, node
        self.inner = ctx.compile_inner(op.inner.inputs, op.inner.outputs)
        n_steps, seqs, inits, nonseqs = op.split_inputs(list(node.inputs))
        self.read_n = ctx.host_reader(n_steps)
        self.read_seqs = [(ctx.device_reader(s), s.ndim == 1) for s in seqs]
        self.read_inits = [_reader(v, ctx) for v in inits]
        self.read_nonseqs = [_reader(v, ctx) for v in nonseqs]
        self.out_slots = [ctx.slot(v) for v in node.outputs]
        # a step output that is an inner input: a sequence slice or a carry before the step
        inputs, steps = op.inner.inputs, op.inner.outputs[op.n_carry:]
        readable = inputs[:op.n_seq] + [v for v in inputs[op.n_seq:op.n_seq + op.n_carry]
                                         if v.ndim]
        self.from_input = [inputs.index(v) if v in readable else None for v in steps]
        previous = {i - op.n_seq for i in self.from_input if i is not None and i >= op.n_seq}
        self.kinds = ["host" if v.ndim == 0 else "shifted" if k in previous
                      else "history" if keep else "pair"
                      for k, (v, keep) in enumerate(zip(inits, op.keep_history))]
        self.carry_sites = [ctx.new_site(node.outputs[k]) if kind == "history"
                            else Site(v.dtype) if kind != "host" else None
                            for k, (v, kind) in enumerate(zip(inits, self.kinds))]
        self.out_sites = [ctx.new_site(v) if v.ndim > 1 and i is None else None
                          for v, i in zip(node.outputs[op.n_carry:], self.from_input)]
        self.sinks = self._sink_sites()
        self.graphs = LoopGraphs()
        # 0-d carries and step outputs are kept on the host by the Python loop itself
        self.capturable = "host" not in self.kinds and all(
            site is not None or i is not None for site, i in zip(self.out_sites, self.from_input))

    def _sink_sites(self) -> list:
        """For each inner output, the inner site to point at its slot (None when the
        output has no site of its own or an earlier output already claimed it)."""
        found, claimed = [], set()
        for var in self.op.inner.outputs:
            site = self.inner.sites.get(var)
            if site is not None and id(site) in claimed:
                site = None
            found.append(site)
            claimed.add(id(site))
        return found

    def __call__(self, env) -> None:
        op = self.op
        n = int(self.read_n(env))
        seqs = [(read(env), scalar) for read, scalar in self.read_seqs]
        _check_lengths(self.node, n, [s for s, _ in seqs], op.exact_length)
        scalars = [scalar for _, scalar in seqs]
        seqs = [s.copy_to_host() if scalar else s for s, scalar in seqs]
        carries = [read(env) for read in self.read_inits]
        nonseqs = [read(env) for read in self.read_nonseqs]
        slots = [self._carry_slots(k, c, n) for k, c in enumerate(carries)]
        parts = ([n, *seqs, *carries, *nonseqs, *slots]
                 if self.capturable and n and not any(scalars) else None)
        carries, stacked = self.graphs.run(
            parts, lambda: self._loop(n, seqs, scalars, carries, nonseqs, slots), self._owned)
        self._finish(env, seqs, slots, carries, stacked, n, nonseqs)

    def _loop(self, n: int, seqs, scalars, carries, nonseqs, slots) -> tuple:
        """Run the steps; the last carries and the stacked step outputs."""
        op = self.op
        stacked: list = [None] * op.n_out
        try:
            for t in range(n):
                dests = [self._slot(k, slots[k], t) for k in range(op.n_carry)]
                rows = [row(stacked[j], t) if self.out_sites[j] is not None
                        and stacked[j] is not None else None for j in range(op.n_out)]
                for site, dest in zip(self.sinks, dests + rows):
                    if site is not None:
                        site.sink = dest
                slices = [s[t] if scalar else row(s, t) for s, scalar in zip(seqs, scalars)]
                results = self.inner.run(slices + carries + nonseqs)
                carries = self._advance(slots, dests, results[:op.n_carry], t)
                for j, value in enumerate(results[op.n_carry:]):
                    if self.from_input[j] is None:
                        stacked[j] = self._stack(j, stacked[j], rows[j], value, n, t)
        finally:
            for site in self.sinks:
                if site is not None:
                    site.sink = None
        return carries, stacked

    def _owned(self, results) -> list:
        """The stacked outputs' ``(site, buffer)`` pairs (a replay needs them unchanged)."""
        return [(site, array) for site, array in zip(self.out_sites, results[1])
                if site is not None and array is not None]

    def _carry_slots(self, k: int, init, n: int):
        """The buffer taking carry ``k``'s new values (see the module docstring): a
        device array, or for a 0-d carry a host history (None when none is kept)."""
        kind, site = self.kinds[k], self.carry_sites[k]
        if kind == "host":
            return np.empty(n, init.dtype) if self.op.keep_history[k] else None
        if kind == "shifted":
            slots = site.get((n + 1,) + init.shape)
            _store(row(slots, 0), init, f"carry {k}")
            return slots
        return site.get(((n,) if kind == "history" else (2,)) + init.shape)

    def _slot(self, k: int, slots, t: int):
        """The device array taking carry ``k``'s value of step ``t`` (None on the host)."""
        kind = self.kinds[k]
        if kind == "host":
            return None
        if kind == "shifted":
            return row(slots, t + 1)
        return row(slots, t if kind == "history" else t % 2)

    def _advance(self, slots, dests, new, t: int) -> list:
        """Store step ``t``'s new carries; the carries of step ``t + 1``."""
        carries = []
        for k, (dest, value) in enumerate(zip(dests, new)):
            if dest is None:  # 0-d, on the host
                if slots[k] is not None:
                    slots[k][t] = value
                carries.append(value)
                continue
            _store(dest, value, f"carry {k} at step {t}")
            carries.append(dest)
        return carries

    def _stack(self, j: int, stacked, dest, value, n: int, t: int):
        """Put step ``t``'s output ``j`` in row ``t`` (``dest``) of its stacked output."""
        site = self.out_sites[j]
        if site is None:  # 0-d values, collected on the host
            stacked = np.empty(n, value.dtype) if stacked is None else stacked
            stacked[t] = value
            return stacked
        if stacked is None:
            stacked = site.get((n,) + value.shape)
            dest = row(stacked, t)
        _store(dest, value, f"output {j} at step {t}")
        return stacked

    def _finish(self, env, seqs, slots, carries, stacked, n: int, nonseqs) -> None:
        op, outs = self.op, self.node.outputs
        shapes = (op.step_shapes(self.node, seqs, *[[_on_host(v) for v in vs]
                                                     for vs in (carries, nonseqs)])
                  if n == 0 and None in stacked else None)
        for k in range(op.n_carry):
            if not op.keep_history[k]:
                value = carries[k]
            elif self.kinds[k] == "shifted":
                value = slots[k][1:]
            else:
                value = _on_device(slots[k])
            env[self.out_slots[k]] = value
        for j, value in enumerate(stacked):
            i = self.from_input[j]
            if i is not None and i < op.n_seq:
                value = seqs[i][:n]
            elif i is not None:
                value = slots[i - op.n_seq][:n]
            elif value is None:  # no steps
                var = outs[op.n_carry + j]
                value = (self.out_sites[j] or Site(var.dtype)).get((0,) + shapes[j])
            env[self.out_slots[op.n_carry + j]] = _on_device(value)


def _on_host(value):
    return value.copy_to_host() if hasattr(value, "copy_to_host") else value


@lower.register(Scan)
def _scan(op, node, ctx: LoweringContext) -> None:
    step = ScanStep(op, node, ctx)
    ctx.add(step, node, step.inner.listing())
