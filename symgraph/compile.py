"""``function``: check the user's graph, copy it into a FunctionGraph, rewrite it, hand
it to a backend, and wrap the result in a callable that validates inputs and applies
updates."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from symgraph.config import config
from symgraph.errors import GraphError, InputError
from symgraph.fgraph import FunctionGraph
from symgraph.graph import (
    HELD,
    Constant,
    SharedVariable,
    Variable,
    as_variable,
    graph_inputs,
    rebuild,
)
from symgraph.rewriting import rewrite


class Mode:
    """A backend name plus the rewrites to add (``include``) or skip (``exclude``).

    >>> Mode('numba', exclude=['merge_gemm'])
    """

    def __init__(self, backend: str | None = None, include: Sequence[str] = (),
                 exclude: Sequence[str] = ()) -> None:
        self.backend = backend or config.mode
        self.include, self.exclude = tuple(include), tuple(exclude)

    def __repr__(self) -> str:
        return f"Mode({self.backend!r}, include={self.include}, exclude={self.exclude})"


def as_mode(mode) -> Mode:
    if mode is None:
        return Mode()
    if isinstance(mode, Mode):
        return mode
    if isinstance(mode, str):
        return Mode(mode)
    raise TypeError(f"mode must be a backend name or a Mode, got {mode!r}")


def function(inputs, outputs, updates=None, givens=None, mode=None, name: str | None = None,
             on_unused_input: str = "raise", no_default_updates: bool = False) -> Function:
    """Compile a callable computing ``outputs`` from ``inputs``.

    Parameters
    ----------
    inputs : list of Variables
        Root variables given positionally (or by name) at call time.
    outputs : Variable or list of Variables
        A single variable gives a single array; a list gives a list.
    updates : list of (SharedVariable, expression) pairs or a dict
        Computed from the values before the call and assigned together after it.
    givens : list of (Variable, expression) pairs or a dict
        Substitutions made in the graph before compiling.
    mode : {'numpy', 'numba', 'cuda'} or Mode, optional
        Backend (default ``config.mode``) and rewrite selection.
    on_unused_input : {'raise', 'warn', 'ignore'}
    no_default_updates : bool
        A shared variable with a ``default_update`` attribute (an expression, e.g. the
        advanced state of a random stream) that the graph uses and ``updates`` does not
        name is updated with that expression after each call, as in Theano; pass True
        to skip these default updates.
    """
    mode = as_mode(mode)
    single = isinstance(outputs, Variable)
    outputs = [outputs] if single else [as_variable(o) for o in (outputs or [])]
    inputs = _check_inputs(inputs)
    update_pairs = _check_updates(updates)
    if not no_default_updates:
        update_pairs += _default_updates(outputs, update_pairs)
    exprs = outputs + [expr for _, expr in update_pairs]
    if givens:
        exprs = _apply_givens(exprs, givens)
    shared = _check_roots(exprs, inputs, on_unused_input)
    fgraph = FunctionGraph(inputs + shared, exprs)
    started = time.perf_counter()
    rewrite(fgraph, mode.include, mode.exclude)
    from symgraph.backends import get_backend

    runner = get_backend(mode.backend).compile(fgraph, n_inputs=len(inputs))
    return Function(inputs, shared, outputs, [s for s, _ in update_pairs], fgraph, runner,
                    single, mode, name, time.perf_counter() - started)


class Function:
    """A compiled graph. Call it with the input values (positionally or by name)."""

    def __init__(self, inputs, shared, outputs, updated, fgraph, runner, single, mode, name,
                 compile_s):
        self.inputs, self.shared, self.outputs = inputs, shared, outputs
        self.updated = updated
        self.fgraph, self.runner, self.single = fgraph, runner, single
        self.mode, self.name = mode, name
        self.compile_s = compile_s  # rewrite + backend build; numba adds its first call
        self.n_outputs = len(outputs)
        self._labels = [_label(v, i) for i, v in enumerate(inputs)]
        by_name = {v.name: i for i, v in enumerate(inputs) if v.name}
        self._by_name = by_name

    def __call__(self, *args, **kwargs):
        """Run the graph. A runner may keep shared values itself (``runner.holder``, see
        ``SharedVariable.hold``): it then gets ``HELD`` for the values its holder has,
        may return array-likes (copied to the host here), and an update value with an
        ``assign_to(shared)`` method stores itself."""
        values = self._bind(args, kwargs)
        holder = getattr(self.runner, "holder", None)
        state = [HELD if holder is not None and s.holder is holder else s.get_value(borrow=True)
                 for s in self.shared]
        results = self.runner(values + state)
        outs = results[: self.n_outputs]
        aliases = {id(v) for v in values + state}
        outs = [np.array(o) if id(o) in aliases else np.asarray(o) for o in outs]
        for var, value in zip(self.updated, results[self.n_outputs:]):
            if hasattr(value, "assign_to"):
                value.assign_to(var)
            else:
                var._value, var.holder = np.asarray(value), None
        return outs[0] if self.single else outs

    def _bind(self, args, kwargs) -> list[np.ndarray]:
        if len(args) > len(self.inputs):
            raise InputError(f"function takes {len(self.inputs)} inputs, got {len(args)}")
        slots: list = list(args) + [_MISSING] * (len(self.inputs) - len(args))
        for key, value in kwargs.items():
            if key not in self._by_name:
                raise InputError(f"function has no input named {key!r}; inputs: "
                                 f"{', '.join(self._labels)}")
            i = self._by_name[key]
            if slots[i] is not _MISSING:
                raise InputError(f"input {key!r} given twice")
            slots[i] = value
        missing = [self._labels[i] for i, v in enumerate(slots) if v is _MISSING]
        if missing:
            raise InputError(f"missing value for input(s) {', '.join(missing)}")
        return [var.type.filter(value, name=f"input {label}")
                for var, value, label in zip(self.inputs, slots, self._labels)]

    @property
    def __source__(self) -> str | None:
        return getattr(self.runner, "source", None)

    def __repr__(self) -> str:
        return f"<symgraph Function {self.name or ''} ({self.mode.backend})>"


_MISSING = object()


def _label(var: Variable, i: int) -> str:
    where = f" made at {var.creation}"
    return f"{var.name!r}{where}" if var.name else f"#{i} (unnamed,{where})"


def _check_inputs(inputs) -> list[Variable]:
    if isinstance(inputs, Variable):
        raise GraphError("function: inputs must be a list of variables, e.g. [x]")
    inputs = list(inputs or [])
    seen = set()
    for i, v in enumerate(inputs):
        if not isinstance(v, Variable):
            raise GraphError(f"function: input {i} is a {type(v).__name__}, not a Variable")
        if isinstance(v, SharedVariable | Constant):
            kind = "shared variable" if isinstance(v, SharedVariable) else "constant"
            raise GraphError(f"function: input {i} is a {kind} ({v.describe()}); "
                             "shared variables and constants are used implicitly")
        if v.owner is not None:
            raise GraphError(f"function: input {i} ({v.describe()}) is computed by "
                             f"{v.owner.op}; inputs must be root variables (use givens)")
        if v in seen:
            raise GraphError(f"function: input {v.describe()} is listed twice")
        seen.add(v)
    return inputs


def _pairs(mapping, what: str) -> list[tuple]:
    if mapping is None:
        return []
    items = list(mapping.items()) if isinstance(mapping, dict) else list(mapping)
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise GraphError(f"function: {what} must be (variable, expression) pairs or a "
                             f"dict, got {item!r}")
    return [tuple(item) for item in items]


def _check_updates(updates) -> list[tuple[SharedVariable, Variable]]:
    pairs, seen = [], set()
    for var, expr in _pairs(updates, "updates"):
        if not isinstance(var, SharedVariable):
            what = var.describe() if isinstance(var, Variable) else repr(var)
            raise GraphError(f"function: updates can only target shared variables; got {what}")
        if var in seen:
            raise GraphError(f"function: {var.describe()} is updated twice")
        seen.add(var)
        expr = as_variable(expr)
        if expr.ndim != var.ndim or expr.dtype != var.dtype:
            raise GraphError(
                f"function: the update of {var.describe()} has type {expr.type} (expression "
                f"made at {expr.creation}); it must keep dtype {var.dtype} and rank "
                f"{var.ndim} (cast it with .astype({var.dtype!r}))")
        pairs.append((var, expr))
    return pairs


def _default_updates(outputs, update_pairs) -> list[tuple[SharedVariable, Variable]]:
    """``(shared, shared.default_update)`` for every shared variable that the outputs or
    updates use (transitively, through default updates too) and that is not updated
    explicitly."""
    updated = {var for var, _ in update_pairs}
    found: list = []
    pending = outputs + [expr for _, expr in update_pairs]
    while pending:
        new = []
        for v in graph_inputs(pending):
            expr = getattr(v, "default_update", None)
            if isinstance(v, SharedVariable) and expr is not None and v not in updated:
                updated.add(v)
                new.append((v, expr))
        found += _check_updates(new)
        pending = [expr for _, expr in new]
    return found


def _apply_givens(exprs, givens) -> list[Variable]:
    replace = {}
    for var, new in _pairs(givens, "givens"):
        new = as_variable(new)
        if not isinstance(var, Variable):
            raise GraphError(f"function: givens keys must be variables, got {var!r}")
        if new.ndim != var.ndim or new.dtype != var.dtype:
            raise GraphError(f"function: givens replaces {var.describe()} by an expression "
                             f"of type {new.type} (made at {new.creation}); dtype and rank "
                             "must match")
        replace[var] = new
    return rebuild(exprs, replace)[0]


def _check_roots(exprs, inputs, on_unused_input) -> list[SharedVariable]:
    roots = graph_inputs(exprs)
    given = set(inputs)
    for v in roots:
        if v not in given and not isinstance(v, Constant | SharedVariable):
            raise GraphError(
                f"function: missing input {v.describe()}: an output depends on it but it is "
                "not in the inputs list")
    used = set(roots)
    unused = [v for v in inputs if v not in used]
    if unused and on_unused_input != "ignore":
        msg = ("function: input(s) " + ", ".join(v.describe() for v in unused) +
               " are not used by any output (pass on_unused_input='ignore' to allow)")
        if on_unused_input == "raise":
            raise GraphError(msg)
        import warnings

        warnings.warn(msg, stacklevel=3)
    return [v for v in roots if isinstance(v, SharedVariable)]
