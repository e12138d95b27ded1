"""Programs and the runner.

:class:`Program` lowers the graph between some inputs and outputs into steps: it takes
the elementwise groups and absorbed views of the numba backend's fusion plan, decides
which transposes matrix products read in place, and hands every other node to its
lowering (``context.lower``). A scan's inner graph is a Program of its own.

:class:`Runner` is what ``mode='cuda'`` returns to ``Function``: it uploads the inputs
(into buffers kept per input and shape, so that a loop reading them meets the same
addresses from call to call: :mod:`~symgraph.backends.cuda.graphs`),
takes shared variables from their resident device copies (``memory.RESIDENT``), runs
the program, checks the error flag, and returns device results lazily
(:class:`~symgraph.backends.cuda.memory.DeviceResult`): outputs are copied to the host by
``Function``, updates stay on the device. When anything fails it reruns the graph with
the reference interpreter, so the user gets the reference's error.
"""

from __future__ import annotations

import numpy as np

from symgraph.backends.cuda import (  # noqa: F401  (register their lowerings)
    gemm,
    nnet,
    reduce,
    regions,
    rows,
    scan,
    shapes,
)
from symgraph.backends.cuda.context import ErrorFlag, LoweringContext, host_perform, lower
from symgraph.backends.cuda.elementwise import lower_group
from symgraph.backends.cuda.memory import RESIDENT, DeviceResult, Site, upload
from symgraph.backends.numba import fusion
from symgraph.fgraph import FunctionGraph
from symgraph.graph import HELD, toposort


class Program:
    """The steps computing ``outputs`` from ``inputs`` (see the module docstring)."""

    def __init__(self, inputs, outputs, flag: ErrorFlag) -> None:
        nodes = toposort(outputs, blockers=inputs)
        clients = fusion.client_map(nodes, outputs)
        plan, virtual = fusion.plan(nodes, clients, set(outputs))
        ctx = LoweringContext(outputs, virtual, clients, flag,
                              lambda i, o: Program(i, o, flag))
        ctx.transposed = gemm.absorbed_transposes(nodes, clients, set(outputs), virtual)
        self.input_slots = [ctx.slot(v) for v in inputs]
        for step in plan:
            if isinstance(step, fusion.Group):
                lower_group(step, ctx)
            elif all(v in virtual or v in ctx.transposed for v in step.outputs):
                continue
            elif all(ctx.on_host(v) for v in step.inputs + step.outputs):
                host_perform(step, ctx)  # shape arithmetic
            else:
                lower(step.op, step, ctx)
        self.output_slots = [ctx.slot(v) for v in outputs]
        self.steps, self.template, self.labels = ctx.steps, ctx.template, ctx.labels
        self.sites = ctx.sites
        self.on_host = [ctx.on_host(v) for v in outputs]

    def run(self, values: list) -> list:
        """The outputs for the input ``values`` (host values for host-placed inputs,
        device arrays for the others)."""
        env = list(self.template)
        for slot, value in zip(self.input_slots, values):
            env[slot] = value
        for step in self.steps:
            step(env)
        return [env[slot] for slot in self.output_slots]

    def listing(self) -> str:
        """One line per step (its node, or the nodes of a fused kernel), followed by the
        source of the kernel it launches, if generated."""
        return "\n".join(self.labels)


class Runner:
    """``runner(values) -> results`` for ``Function`` (see the module docstring)."""

    holder = RESIDENT

    def __init__(self, fgraph: FunctionGraph, n_inputs: int) -> None:
        self.fgraph = fgraph
        self.flag = ErrorFlag()
        self.program = Program(fgraph.inputs, fgraph.outputs, self.flag)
        self.inputs = [(var, LoweringContext.on_host(var), k >= n_inputs)
                       for k, var in enumerate(fgraph.inputs)]
        self.input_sites = [Site(var.dtype) for var in fgraph.inputs]
        self.result_sites = [self.program.sites.get(v) for v in fgraph.outputs]
        self.source = self.program.listing()

    def __call__(self, values: list) -> list:
        args = []
        for (var, host, shared), site, value in zip(self.inputs, self.input_sites, values):
            if host:
                args.append(np.asarray(value))
            elif shared:
                args.append(RESIDENT.device_value(var, value))
            else:
                args.append(upload(site, value))
        try:
            results = self.program.run(args)
            if self.flag.raised():
                raise IndexError("a kernel found an index out of range")
        except Exception as exc:  # the reference gives the user-facing error
            self._reproduce(values, exc)
        return [value if host else DeviceResult(value, site)
                for value, host, site in zip(results, self.program.on_host, self.result_sites)]

    def _reproduce(self, values: list, exc: Exception):
        from symgraph.backends.numpy_backend import Interpreter

        host = [RESIDENT.fetch(var) if value is HELD else value
                for (var, _, _), value in zip(self.inputs, values)]
        Interpreter(self.fgraph)(host)
        raise RuntimeError(f"cuda backend: the compiled function failed ({type(exc).__name__}: "
                           f"{exc}) where the reference interpreter did not") from exc
