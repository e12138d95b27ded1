"""What a lowering sees while a program is built (``ctx``), the lowering registry, and
the host fallback.

A *program* is a list of *steps*, plain callables ``step(env)`` that read and write the
list ``env`` (one slot per variable). Where a value lives is decided per variable when
the program is built (:meth:`LoweringContext.on_host`):

- on the host, as numpy arrays: 0-d values (kernels take them as scalar arguments) and
  shape vectors (``Shape``, ``MakeVector``); nodes computing only these from only these
  run their numpy ``perform`` (shape arithmetic);
- on the device, as C-contiguous device arrays: everything else.

A lowering is ``fn(op, node, ctx)`` registered with ``@lower.register(OpClass)``; it
appends steps with :meth:`LoweringContext.add`. Ops without a lowering run their
``perform`` on the host with their operands copied there, after a warning.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from symgraph.backends.cuda.memory import Site, to_device
from symgraph.backends.numba.emitter import describe_op, sanitize
from symgraph.graph import Apply, Constant, Variable
from symgraph.ops.shape import MakeVector, Shape


class ErrorFlag:
    """One device integer that kernels set when a check fails (an index out of range);
    the runner reads it once per call and then reruns the reference interpreter for the
    user-facing error."""

    def __init__(self) -> None:
        self.array = None

    def device(self):
        """The flag's device array (made on first use)."""
        if self.array is None:
            self.array = to_device(np.zeros(1, np.int32))
        return self.array

    def raised(self) -> bool:
        """Whether a kernel set the flag since the last check (and clear it)."""
        if self.array is None or not self.array.copy_to_host()[0]:
            return False
        self.array.copy_to_device(np.zeros(1, np.int32))
        return True


class LoweringContext:
    """Slots, placement, buffers and steps of one program (see the module docstring).

    ``virtual``: views that fused kernels read through (never materialised);
    ``clients[var]``: the nodes reading ``var`` (``"output"`` for a program output);
    ``transposed``: ``DimShuffle{1,0}`` outputs that matrix products read transposed.
    """

    def __init__(self, outputs, virtual: set, clients: dict, flag: ErrorFlag,
                 compile_inner) -> None:
        self.outputs = set(outputs)
        self.virtual = virtual
        self.clients = clients
        self.flag = flag
        self.compile_inner = compile_inner  # (inputs, outputs) -> program of a sub-graph
        self.transposed: set = set()
        self.slots: dict[Variable, int] = {}
        self.template: list = []
        self.steps: list = []
        self.labels: list[str] = []
        self.sites: dict[Variable, Site] = {}
        self.owned: set = set()

    # ---- placement and slots ----------------------------------------------------------
    @staticmethod
    def on_host(var: Variable) -> bool:
        """0-d values and shape vectors live on the host, everything else on the device."""
        return var.ndim == 0 or (var.owner is not None
                                 and isinstance(var.owner.op, Shape | MakeVector))

    def slot(self, var: Variable) -> int:
        """``var``'s index in ``env`` (constants are filled in when the program is built:
        host values for 0-d ones, device copies for arrays)."""
        if var not in self.slots:
            self.slots[var] = len(self.template)
            value = None
            if isinstance(var, Constant):
                value = var.value if self.on_host(var) else to_device(var.value)
            self.template.append(value)
        return self.slots[var]

    # ---- reading values ---------------------------------------------------------------
    def host_reader(self, var: Variable):
        """``env -> numpy value of var`` (device values are copied to the host)."""
        if isinstance(var, Constant):
            value = var.value
            return lambda env: value
        slot = self.slot(var)
        if self.on_host(var):
            return lambda env: env[slot]
        return lambda env: env[slot].copy_to_host()

    def device_reader(self, var: Variable):
        """``env -> device array of var`` (host arrays are uploaded; ``var`` has rank >= 1)."""
        slot = self.slot(var)
        if self.on_host(var) and not isinstance(var, Constant):
            return lambda env: to_device(env[slot])
        return lambda env: env[slot]

    def argument(self, var: Variable):
        """``env -> kernel argument for var``: a numpy scalar for 0-d values, else the
        device array."""
        if var.ndim:
            return self.device_reader(var)
        slot = self.slot(var)
        return lambda env: env[slot][()]

    # ---- writing values ---------------------------------------------------------------
    def new_site(self, var: Variable) -> Site:
        """The buffer site of ``var``, computed by the step being lowered into memory
        this program owns (so it may be overwritten in place or handed over)."""
        site = self.sites[var] = Site(var.dtype)
        self.owned.add(var)
        return site

    def reuse(self, out: Variable, var: Variable) -> None:
        """``out`` was computed in place in ``var``'s buffer."""
        if var in self.sites:
            self.sites[out] = self.sites[var]
        self.owned.add(out)

    def can_overwrite(self, var: Variable, node: Apply) -> bool:
        """True when ``node`` may write into ``var``'s buffer: this program owns it, and
        ``node`` is its only reader (once) and it is not an output."""
        return (var in self.owned and self.clients.get(var) == [node]
                and node.inputs.count(var) == 1 and var not in self.outputs)

    def add(self, step, node_or_label, kernel_source: str = "") -> None:
        """Append ``step``; the label (a node's op, sanitised) and the kernel source are
        kept for ``runner.source``."""
        label = node_or_label if isinstance(node_or_label, str) else describe_op(
            node_or_label.op)
        self.steps.append(step)
        self.labels.append(sanitize(label) + ("\n" + kernel_source if kernel_source else ""))


@functools.singledispatch
def lower(op, node: Apply, ctx: LoweringContext) -> None:
    """Default: :func:`fallback`."""
    fallback(node, ctx, f"no CUDA lowering for {type(op).__name__}")


def fallback(node: Apply, ctx: LoweringContext, reason: str) -> None:
    """Warn (``reason``, e.g. which op) and run ``node``'s numpy ``perform`` on the host,
    its operands copied there and its results back (:func:`host_perform`)."""
    warnings.warn(f"cuda backend: {reason}; it runs its numpy perform on the host, copying "
                  "its operands from and to the device", stacklevel=3)
    host_perform(node, ctx)


def has_lowering(op) -> bool:
    """True when ``op``'s type (or a base class other than object) has a lowering."""
    return lower.dispatch(type(op)) is not lower.dispatch(object)


def host_perform(node: Apply, ctx: LoweringContext) -> None:
    """A step running ``node.op.perform`` on host copies of the inputs; outputs placed on
    the device are uploaded."""
    readers = [ctx.host_reader(v) for v in node.inputs]
    outs = [(ctx.slot(o), ctx.on_host(o), o.dtype) for o in node.outputs]

    def step(env):
        results = node.op.perform(node, [read(env) for read in readers])
        for (slot, host, dtype), value in zip(outs, results):
            value = np.asarray(value, dtype=dtype)
            env[slot] = value if host else to_device(value)

    ctx.add(step, node)
