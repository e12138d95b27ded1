"""The user's graph, rebuilt in float64 for checking.

Gradient and contract checks compare numbers that differ by rounding only when the
model is right; in float32 that rounding (about :math:`10^{-7}` relative, amplified by a
finite-difference step to :math:`10^{-4}` or worse) hides real bugs and makes checks
flaky. So the checks clone the graph with every low-precision float replaced by float64,
whatever ``config.floatX`` is:

- float16/float32 root variables become float64 roots of the same static shape;
- shared variables (float16/32/64) become float64 *root variables* fed with copies of
  their values, so the check never touches the model's state and can vary them;
- float16/float32 constants become float64 constants;
- ops that carry a dtype (``cast(x, 'float32')``, ``arange``/``MakeVector`` of floats,
  random draws) are recreated with ``float64``;
- a ``Scan`` gets a float64 copy of its step graph (recursively).

Every other node is re-made through ``op.make_node`` (as :func:`symgraph.graph.rebuild`
does), so types are re-inferred and each new variable keeps the name and the user's
``file:line`` of the one it replaces.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from symgraph.fgraph import FunctionGraph
from symgraph.graph import Constant, SharedVariable, Variable, graph_inputs, toposort
from symgraph.types import TensorType

__all__ = ["Float64Graph", "to_float64"]

LOW_FLOATS = ("float16", "float32")


class Float64Graph:
    """The result of :func:`to_float64`.

    Attributes
    ----------
    outputs : list of Variable
        The float64 outputs.
    memo : dict
        Old variable -> new variable, for every root and node output of the old graph.
    shared : dict
        New root variable -> float64 copy of the value of the shared variable it replaces.
    """

    def __init__(self, outputs, memo, shared) -> None:
        self.outputs, self.memo, self.shared = outputs, memo, shared

    def __getitem__(self, old: Variable) -> Variable:
        return self.memo.get(old, old)


def to_float64(outputs: Sequence[Variable], enabled: bool = True) -> Float64Graph:
    """Clone the graph behind ``outputs`` in float64 (see the module docstring).

    With ``enabled=False`` the graph keeps its dtypes, but shared variables still become
    root variables fed with copies of their values (the checks vary them).
    """
    memo: dict = {}
    shared: dict = {}
    for root in graph_inputs(outputs):
        memo[root] = _root(root, shared, enabled)
    new = _walk(outputs, memo, {}, enabled)
    return Float64Graph(new, memo, shared)


def _root(var: Variable, shared: dict, enabled: bool) -> Variable:
    if isinstance(var, Constant):
        if enabled and var.dtype in LOW_FLOATS:
            new = Constant(var.value.astype("float64"), name=var.name)
            new.creation = var.creation
            return new
        return var
    if isinstance(var, SharedVariable):
        if not var.type.is_float:
            return var
        dtype = "float64" if enabled else var.dtype
        new = _like(var, dtype)
        shared[new] = var.get_value().astype(dtype)
        return new
    if enabled and var.dtype in LOW_FLOATS:
        return _like(var, "float64")
    return var


def _like(var: Variable, dtype: str) -> Variable:
    new = Variable(TensorType(dtype, var.type.shape), name=var.name)
    new.creation = var.creation
    return new


def _walk(outputs, memo: dict, op_cache: dict, enabled: bool) -> list[Variable]:
    for node in toposort(outputs, blockers=list(memo)):
        inputs = [memo.get(v, v) for v in node.inputs]
        op = _convert_op(node.op, op_cache, enabled)
        if op is node.op and all(a is b for a, b in zip(inputs, node.inputs)):
            new_outputs = node.outputs
        else:
            new_outputs = op.make_node(*inputs).outputs
            for old, new in zip(node.outputs, new_outputs):
                new.name, new.creation = old.name, old.creation
        for old, new in zip(node.outputs, new_outputs):
            memo.setdefault(old, new)
    return [memo.get(v, v) for v in outputs]


def _convert_op(op, cache: dict, enabled: bool):
    if not enabled:
        return op
    if id(op) in cache:
        return cache[id(op)][1]
    from symgraph.ops.elemwise import Elemwise
    from symgraph.ops.scalar import Cast
    from symgraph.scan.op import Scan

    new = op
    if isinstance(op, Elemwise) and isinstance(op.scalar_op, Cast):
        if op.scalar_op.dtype in LOW_FLOATS:
            new = Elemwise(Cast("float64"))
    elif isinstance(op, Scan):
        new = Scan(_inner_float64(op.inner, cache), op.n_seq, op.n_carry, op.n_nonseq,
                   op.keep_history, op.truncate_gradient, op.exact_length, op.name)
    elif "dtype" in getattr(op, "__props__", ()) and str(op.dtype) in LOW_FLOATS:
        new = copy.copy(op)
        new.__dict__["dtype"] = "float64"
    cache[id(op)] = (op, new)  # keep ``op`` alive so that its id stays unique
    return new


def _inner_float64(inner: FunctionGraph, cache: dict) -> FunctionGraph:
    """A float64 copy of a scan's step graph (its inputs stay in order)."""
    memo: dict = {}
    for v in inner.inputs:
        memo[v] = _like(v, "float64") if v.dtype in LOW_FLOATS else _like(v, v.dtype)
    for root in graph_inputs(inner.outputs, blockers=inner.inputs):
        if root not in memo:
            memo[root] = _root(root, {}, True) if isinstance(root, Constant) else root
    outputs = _walk(inner.outputs, memo, cache, True)
    return FunctionGraph([memo[v] for v in inner.inputs], outputs)


def float64_values(values, enabled: bool = True) -> list[np.ndarray]:
    """Arrays converted like their variables: low-precision floats to float64."""
    out = []
    for v in values:
        arr = np.asarray(v)
        if enabled and arr.dtype.kind == "f" and arr.dtype.itemsize < 8:
            arr = arr.astype("float64")
        out.append(arr)
    return out
