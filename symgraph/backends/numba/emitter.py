"""The source writer that lowerings talk to (``ctx``): names, literals, buffers, checks,
kernels and the object-mode fallback.

Generated identifiers are ``v<n>`` (values), ``k<n>`` (constant-array arguments) and
``k_<hash>`` (kernels); no user string (a variable name, a string prop) ever reaches the
source: node comments are built from class names and numeric props only, then filtered
through :func:`sanitize`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence

import numpy as np

from symgraph.graph import Apply, Constant, Variable

_SAFE_CHARS = re.compile(r"[^A-Za-z0-9_{}()\[\],.:=+\-*/<>!? ]")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,23}$")


def sanitize(text: str, limit: int = 200) -> str:
    """``text`` reduced to a safe character set (no quotes, ``#``, newlines or other
    control characters) and at most ``limit`` characters."""
    return _SAFE_CHARS.sub("", text)[:limit]


def render(value) -> str:
    """A prop for a comment: numbers, bools and None as they are, identifier-like short
    strings, tuples recursively; anything else by its type name."""
    if value is None or isinstance(value, bool | int | float | np.integer | np.floating):
        return repr(value)
    if isinstance(value, str):
        return value if _IDENT.match(value) else "?"
    if isinstance(value, tuple | list):
        return "(" + ",".join(render(v) for v in value) + ")"
    props = getattr(value, "__props__", None)
    if props is not None and not isinstance(value, type):
        inner = ",".join(render(getattr(value, p, None)) for p in props)
        return f"{type(value).__name__}{{{inner}}}" if inner else type(value).__name__
    return type(value).__name__


def describe_op(op) -> str:
    """``Elemwise{Mul}``, ``Reduce{sum,(0,),False}``: the class and its rendered props."""
    props = getattr(op, "__props__", ())
    if type(op).__name__ == "Elemwise":
        return f"Elemwise{{{render(op.scalar_op)}}}"
    if type(op).__name__ == "Scan":
        return (f"Scan{{seq={op.n_seq},carry={op.n_carry},nonseq={op.n_nonseq},"
                f"out={op.n_out}}}")
    inner = ",".join(render(getattr(op, p, None)) for p in props)
    return f"{type(op).__name__}{{{inner}}}" if inner else type(op).__name__


def dtype_expr(dtype: str) -> str:
    """The numba-visible constructor of a dtype: ``np.float32``, ``np.bool_``."""
    return "np.bool_" if dtype == "bool" else f"np.{dtype}"


def result_of(*variables: Variable) -> list[tuple[str, int]]:
    """``returns`` for :meth:`GraphEmitter.call`: the kernel returns these variables'
    arrays (C-contiguous)."""
    return [(v.dtype, v.ndim) for v in variables]


def result_type_source(dtype: str, ndim: int) -> str:
    """Source of the numba type of a scalar (``ndim`` 0) or a C-contiguous array:
    ``numba.types.float32``, ``numba.types.Array(numba.types.float32, 2, "C")``."""
    scalar = "numba.types." + ("boolean" if dtype == "bool" else str(np.dtype(dtype)))
    return f'numba.types.Array({scalar}, {int(ndim)}, "C")' if ndim else scalar


def literal(value, dtype: str) -> str:
    """A source literal of ``value`` as a scalar of ``dtype``."""
    value = np.asarray(value).reshape(())[()]
    if dtype == "bool":
        return "True" if bool(value) else "False"
    if np.dtype(dtype).kind == "f":
        f = float(value)
        text = ("np.nan" if math.isnan(f) else ("np.inf" if f > 0 else "-np.inf")
                if math.isinf(f) else repr(f))
        return f"np.{dtype}({text})"
    return f"np.{dtype}({int(value)})"


class ModuleState:
    """What all the graphs lowered into one generated function share: the name counter,
    kernels, dynamic globals, constant arguments and function-level declarations."""

    def __init__(self, declare: bool = True) -> None:
        self.declare_results = declare  # see GraphEmitter.call
        self.counter = itertools.count()
        self.node_tags = itertools.count()
        self.kernels: dict[str, str] = {}
        self.dynamic: dict[str, object] = {}
        self.preamble: list[str] = []
        self.const_args: list[tuple[str, np.ndarray]] = []
        self._const_names: dict[int, str] = {}
        self._dummies: dict[tuple, str] = {}
        self.profiled: list[tuple[int, str]] = []  # (loop depth, description) per counter
        self.sites: list[str] = []
        self.functions: list[tuple[str, str]] = []  # (name, source): fallbacks
        self.declared: dict[str, str] = {}  # type source -> its global (``_rt<n>``)

    def profile_slot(self, step, depth: int) -> int:
        """A counter index for ``step`` (a node or a fused group, ``depth`` loops deep)
        in profiling mode."""
        nodes = getattr(step, "members", [step])
        self.profiled.append((depth, sanitize(" + ".join(describe_op(n.op) for n in nodes),
                                              120)))
        return len(self.profiled) - 1

    def declare(self, type_source: str) -> str:
        """The global holding the numba type written ``type_source`` (see ``call``)."""
        return self.declared.setdefault(type_source, f"_rt{len(self.declared)}")

    def dummy(self, ndim: int, dtype: str) -> str:
        """An empty array of this rank and dtype, declared once per function."""
        key = (ndim, dtype)
        if key not in self._dummies:
            name = f"_e{ndim}_{dtype}"
            self.preamble.append(f"{name} = sg_empty({(0,) * ndim}, {dtype_expr(dtype)})")
            self._dummies[key] = name
        return self._dummies[key]

    def constant(self, const: Constant) -> str:
        """The argument name carrying a constant array (one per constant)."""
        key = id(const)
        if key not in self._const_names:
            name = f"k{len(self.const_args)}"
            self.const_args.append((name, np.array(const.value, order="C")))
            self._const_names[key] = name
        return self._const_names[key]


class GraphEmitter:
    """Writes the lines of one graph (the function body, or a scan's loop body)."""

    def __init__(self, state: ModuleState, lines: list[str], indent: int = 1,
                 loop_depth: int = 0) -> None:
        self.state, self.lines = state, lines
        self.indent, self.loop_depth = indent, loop_depth
        self.names: dict[Variable, str] = {}
        self.layouts: dict[Variable, str] = {}
        self.owned: dict[Variable, bool] = {}
        self.virtual: set[Variable] = set()
        self.precomputed: set[Variable] = set()  # computed early, with another node
        self.clients: dict = {}
        self.sinks: dict[Variable, str] = {}  # where a loop wants a value written
        self.sunk: set[Variable] = set()  # values a kernel was asked to write there
        # the row of the profile counters: 0 in the calling thread, 1 in other row parts
        self.profile_bank = "0"

    def child(self, extra_indent: int = 1) -> GraphEmitter:
        """An emitter for a loop body nested in this one (same function, new names)."""
        child = GraphEmitter(self.state, self.lines, self.indent + extra_indent,
                             self.loop_depth + 1)
        child.profile_bank = self.profile_bank
        return child

    # ---- lines ---------------------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def check(self, condition: str) -> None:
        """Raise SGRuntimeError at run time when ``condition`` holds."""
        self.emit(f"sg_fail_if({condition})")

    def comment(self, node: Apply, note: str = "") -> None:
        """``# [n7] v12, v13 = Op{props}(v3, v9)``: one comment line per node."""
        outs = ", ".join(self.name_for(o) for o in node.outputs)
        ins = ", ".join(self._input_label(v) for v in node.inputs)
        tag = next(self.state.node_tags)
        text = sanitize(f"[n{tag}] {outs} = {describe_op(node.op)}({ins}){note}", 400)
        self.emit("# " + text)

    def _input_label(self, var: Variable) -> str:
        if var in self.names:
            return self.names[var]
        if isinstance(var, Constant):
            return "const"
        return "?"

    # ---- values --------------------------------------------------------------------------
    def name_for(self, var: Variable) -> str:
        if var not in self.names:
            self.names[var] = f"v{next(self.state.counter)}"
        return self.names[var]

    def ref(self, var: Variable) -> str:
        """The expression of a computed variable, an input or a constant."""
        if var in self.names and var not in self.virtual:
            return self.names[var]
        if isinstance(var, Constant):
            if var.ndim == 0:
                return literal(var.value, var.dtype)
            name = self.state.constant(var)
            self.names[var], self.layouts[var], self.owned[var] = name, "C", False
            return name
        raise KeyError(f"internal: {var!r} used before it is computed")

    def is_scalar(self, var: Variable) -> bool:
        return var.ndim == 0

    def layout(self, var: Variable) -> str:
        """'C', 'F' or 'A' (as numba will type the array; 'A' when unsure)."""
        return self.layouts.get(var, "C")

    def bind(self, var: Variable, expr: str, layout: str = "C", owned: bool = True) -> str:
        """Emit ``name = expr`` for ``var``."""
        name = self.name_for(var)
        self.emit(f"{name} = {expr}")
        self.note(var, layout, owned)
        return name

    def bind_many(self, variables: Sequence[Variable], expr: str, layout: str = "C",
                  owned: bool = True) -> None:
        names = [self.name_for(v) for v in variables]
        self.emit(f"{', '.join(names)}{',' if len(names) == 1 else ''} = {expr}")
        for v in variables:
            self.note(v, layout, owned)

    def note(self, var: Variable, layout: str = "C", owned: bool = True) -> None:
        self.layouts[var], self.owned[var] = layout, owned

    def alias(self, var: Variable, expr: str, layout: str, owned: bool = False) -> None:
        """``var`` is ``expr`` (a view or the same value): no line of its own."""
        self.names[var] = expr
        self.note(var, layout, owned)

    def can_overwrite(self, var: Variable, node: Apply) -> bool:
        """True when ``node`` may write into ``var``'s array: an array this function
        allocated, used by ``node`` alone (once) and not returned."""
        return (self.owned.get(var, False) and self.clients.get(var) == [node]
                and node.inputs.count(var) == 1 and var not in self.virtual)

    def buffer(self, var: Variable) -> str:
        """The ``out`` argument for a kernel computing ``var``: inside a compiled loop the
        variable's own name, declared empty before the loop, so each step reuses the
        previous step's array, or the loop's *sink* for it (the slot of the history or
        stack the step's result goes to, see ``lower_scan``); elsewhere an empty
        placeholder (the kernel allocates)."""
        if self.loop_depth == 0:
            return self.state.dummy(var.ndim, var.dtype)
        name = self.name_for(var)
        dummy = self.state.dummy(var.ndim, var.dtype)
        self.state.preamble.append(f"{name} = {dummy}")
        if var in self.sinks:
            self.sunk.add(var)
            return self.sinks[var]
        return name

    def call(self, kernel: str, args, returns: Sequence[tuple[str, int]] = ()) -> str:
        """The expression calling the compiled kernel ``kernel`` (a name from
        ``kernels`` or a generated one) on ``args``, through its address (see
        ``glue.sg_call``). ``returns``: ``(dtype, ndim)`` of what a generated kernel
        returns (a scalar for ndim 0, else a C-contiguous array; a tuple when several),
        declared so that the graph function can be typed before the kernel is compiled
        (``glue.sg_call_as``)."""
        site = self.new_site(kernel)
        passed = "".join(f", {a}" for a in args)
        if not returns or not self.state.declare_results:
            return f"sg_call({kernel}, {site}, _kp{passed})"
        results = [result_type_source(dtype, ndim) for dtype, ndim in returns]
        declared = (results[0] if len(results) == 1
                    else f"numba.types.Tuple(({', '.join(results)},))")
        return f"sg_call_as({kernel}, {site}, _kp, {self.state.declare(declared)}{passed})"

    def new_site(self, kernel: str) -> int:
        """A new call site of ``kernel``: its index in the addresses table ``_kp``."""
        self.state.sites.append(kernel)
        return len(self.state.sites) - 1

    def kernel(self, name: str, source: str) -> str:
        """Register a generated kernel (``source`` defines ``name``)."""
        self.state.kernels[name] = source
        return name

    def dynamic(self, prefix: str, obj) -> str:
        """A global holding a Python object (makes the function uncacheable on disk)."""
        name = f"_{prefix}{len(self.state.dynamic)}"
        self.state.dynamic[name] = obj
        return name

    # ---- the fallback --------------------------------------------------------------------
    def fallback(self, node: Apply) -> None:
        """Run ``node.op.perform`` in numba's object mode, inside a small function of
        its own (object-mode blocks inside compiled loops tripped a numba bug). The node
        is found through a process-local registry, so the graph function is not cached
        on disk."""
        key = len(_FALLBACK_NODES)
        _FALLBACK_NODES[key] = node
        self.dynamic("fallback", node)
        outs = []
        for j, out in enumerate(node.outputs):
            base = {"bool": "boolean"}.get(out.dtype, out.dtype)
            dims = ", ".join([":"] * (out.ndim - 1) + ["::1"])
            outs.append((f"o{j}", base if out.ndim == 0 else f"{base}[{dims}]"))
        params = [f"a{j}" for j in range(len(node.inputs))]
        name = f"sg_fallback_{key}"
        self.state.functions.append((name, "\n".join([
            f"def {name}({', '.join(params)}):",
            f"    with numba.objmode({', '.join(f'{o}={t!r}' for o, t in outs)}):",
            f"        {', '.join(o for o, _ in outs)}, = sg_perform({key}"
            f"{''.join(', ' + p for p in params)})",
            f"    return {', '.join(o for o, _ in outs)}", ""])))
        call = self.call(name, [self.ref(v) for v in node.inputs])
        if len(node.outputs) == 1:
            self.bind(node.outputs[0], call, "C", owned=False)
        else:
            self.bind_many(node.outputs, call, "C", owned=False)


_FALLBACK_NODES: dict[int, Apply] = {}


def sg_perform(key: int, *args):
    """``perform`` of the registered node ``key`` on the values numba hands to object
    mode; returns C arrays (numpy scalars for 0-d outputs) of the declared dtypes."""
    node = _FALLBACK_NODES[key]
    values = [np.asarray(a, dtype=v.dtype) if v.ndim == 0 else a
              for a, v in zip(args, node.inputs)]
    results = node.op.perform(node, values)
    out = []
    for var, r in zip(node.outputs, results):
        r = np.asarray(r, dtype=var.dtype)
        out.append(r[()] if var.ndim == 0 else np.require(r, requirements=["C", "W"]))
    return tuple(out)
