"""Graph nodes: variables, constants, shared variables and applications of ops.

A graph is a DAG: each non-root :class:`Variable` has an ``owner``, the :class:`Apply`
node that computed it. Every variable remembers where in the user's code it was made
(``var.creation``: ``file:line``), so that errors can point there.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterable, Sequence
from types import SimpleNamespace

import numpy as np

from symgraph.types import TensorType, format_shape

#: Tensor operator functions (``add``, ``getitem``, ...) installed by ``symgraph.ops``,
#: so that the core never imports the ops (dependencies flow ops -> core).
OPERATORS = SimpleNamespace()

_PACKAGE_DIRS: tuple[str, ...] = ()
_ids = itertools.count()


def register_package_dir(path: str) -> None:
    """Frames from files under ``path`` are skipped when locating user code."""
    global _PACKAGE_DIRS
    _PACKAGE_DIRS = _PACKAGE_DIRS + (os.path.dirname(os.path.abspath(path)) + os.sep,)


register_package_dir(__file__)


def user_site() -> str:
    """``file:line`` of the innermost stack frame outside symgraph itself."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIRS) and "importlib" not in filename:
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


class Variable:
    """A symbolic tensor: a :class:`TensorType`, an optional owner and a name.

    Arithmetic, comparison (``<``, ``<=``, ``>``, ``>=``), indexing and the methods below
    build new graph nodes. ``==`` is identity (variables are dictionary keys); use
    ``T.eq`` for elementwise equality.
    """

    def __init__(self, type: TensorType, owner: Apply | None = None, index: int | None = None,
                 name: str | None = None) -> None:
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name
        self.creation = user_site()
        self.uid = next(_ids)

    # ---- type information -------------------------------------------------------
    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return self.type.ndim

    @property
    def static_shape(self) -> tuple:
        return self.type.shape

    @property
    def broadcastable(self) -> tuple[bool, ...]:
        return self.type.broadcastable

    def describe(self) -> str:
        """``'x' (float32, shape (?, 3), made at file.py:12)`` for error messages."""
        label = repr(self.name) if self.name else "an unnamed variable"
        shape = format_shape(self.type.shape)
        return f"{label} ({self.dtype}, shape {shape}, made at {self.creation})"

    def __repr__(self) -> str:
        if self.name:
            return self.name
        if self.owner is not None:
            op = self.owner.op
            return f"{op}.out" if len(self.owner.outputs) == 1 else f"{op}.{self.index}"
        return f"<{self.type}>"

    def clone(self) -> Variable:
        """A new root variable of the same type and name."""
        cp = Variable(self.type, name=self.name)
        cp.creation = self.creation
        return cp

    # ---- operators (implemented in symgraph.ops) -----------------------------------
    def __add__(self, other): return OPERATORS.add(self, other)
    def __radd__(self, other): return OPERATORS.add(other, self)
    def __sub__(self, other): return OPERATORS.sub(self, other)
    def __rsub__(self, other): return OPERATORS.sub(other, self)
    def __mul__(self, other): return OPERATORS.mul(self, other)
    def __rmul__(self, other): return OPERATORS.mul(other, self)
    def __truediv__(self, other): return OPERATORS.true_div(self, other)
    def __rtruediv__(self, other): return OPERATORS.true_div(other, self)
    def __floordiv__(self, other): return OPERATORS.int_div(self, other)
    def __rfloordiv__(self, other): return OPERATORS.int_div(other, self)
    def __mod__(self, other): return OPERATORS.mod(self, other)
    def __rmod__(self, other): return OPERATORS.mod(other, self)
    def __pow__(self, other): return OPERATORS.pow(self, other)
    def __rpow__(self, other): return OPERATORS.pow(other, self)
    def __neg__(self): return OPERATORS.neg(self)
    def __pos__(self): return self
    def __abs__(self): return OPERATORS.abs(self)
    def __lt__(self, other): return OPERATORS.lt(self, other)
    def __le__(self, other): return OPERATORS.le(self, other)
    def __gt__(self, other): return OPERATORS.gt(self, other)
    def __ge__(self, other): return OPERATORS.ge(self, other)
    def __and__(self, other): return OPERATORS.and_(self, other)
    def __or__(self, other): return OPERATORS.or_(self, other)
    def __invert__(self): return OPERATORS.invert(self)
    def __matmul__(self, other): return OPERATORS.dot(self, other)
    def __rmatmul__(self, other): return OPERATORS.dot(other, self)
    def __getitem__(self, key): return OPERATORS.getitem(self, key)

    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __bool__(self):
        raise TypeError("a symbolic variable has no truth value; use T.switch or T.eq")

    def __iter__(self):
        raise TypeError("a symbolic variable cannot be iterated; index it or use sg.scan")

    def __len__(self):
        raise TypeError("len() of a symbolic variable is unknown; use x.shape[0]")

    @property
    def shape(self): return OPERATORS.shape(self)
    @property
    def T(self): return OPERATORS.transpose(self)
    def transpose(self, *axes): return OPERATORS.transpose(self, *axes)
    def dimshuffle(self, *pattern): return OPERATORS.dimshuffle(self, *pattern)
    def reshape(self, shape, ndim=None): return OPERATORS.reshape(self, shape, ndim=ndim)
    def flatten(self, ndim=1): return OPERATORS.flatten(self, ndim)
    def astype(self, dtype): return OPERATORS.cast(self, dtype)
    def dot(self, other): return OPERATORS.dot(self, other)
    def sum(self, axis=None, keepdims=False): return OPERATORS.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return OPERATORS.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return OPERATORS.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return OPERATORS.min(self, axis, keepdims)
    def prod(self, axis=None, keepdims=False): return OPERATORS.prod(self, axis, keepdims)
    def argmax(self, axis=None, keepdims=False): return OPERATORS.argmax(self, axis, keepdims)
    def argmin(self, axis=None, keepdims=False): return OPERATORS.argmin(self, axis, keepdims)
    def norm(self, L=2, axis=None): return OPERATORS.norm(self, L, axis)
    def clip(self, lo, hi): return OPERATORS.clip(self, lo, hi)
    def exp(self): return OPERATORS.exp(self)
    def log(self): return OPERATORS.log(self)
    def tanh(self): return OPERATORS.tanh(self)
    def sqrt(self): return OPERATORS.sqrt(self)


class Constant(Variable):
    """A variable with a fixed value (a read-only numpy array)."""

    def __init__(self, value, dtype=None, name: str | None = None) -> None:
        arr = np.array(value, dtype=dtype)
        arr.setflags(write=False)
        super().__init__(TensorType(arr.dtype, arr.shape), name=name)
        self.value = arr

    def clone(self) -> Constant:
        return self

    def signature(self) -> tuple:
        """Hashable identity of the value, for merging equal constants."""
        return (self.dtype, self.value.shape, self.value.tobytes())

    def __repr__(self) -> str:
        if self.name:
            return self.name
        if self.value.size <= 4:
            return f"Constant{{{np.array2string(self.value, separator=',')}}}"
        return f"Constant{{{self.dtype}{self.value.shape}}}"


class _Held:
    """The type of :data:`HELD`."""

    def __repr__(self) -> str:
        return "HELD"


#: Passed to a backend's runner instead of a shared variable's value when the runner's
#: own ``holder`` keeps the current value (see :meth:`SharedVariable.hold`).
HELD = _Held()


class SharedVariable(Variable):
    """A variable whose value persists between calls of compiled functions.

    Its type has every dimension unknown, so ``set_value`` may change the shape
    (but not the rank or dtype).

    A backend may keep the current value elsewhere (the CUDA backend keeps it on the
    GPU): it calls :meth:`hold`, and ``get_value`` then fetches the value from it.
    """

    def __init__(self, value, name: str | None = None, borrow: bool = False) -> None:
        arr = np.array(value, copy=not borrow)
        if arr.dtype == object:
            raise TypeError(f"shared: cannot store a value of type {type(value).__name__}")
        super().__init__(TensorType(arr.dtype, (None,) * arr.ndim), name=name)
        self._value = arr
        self.holder = None

    def get_value(self, borrow: bool = False) -> np.ndarray:
        if self.holder is not None:
            self._value, self.holder = self.holder.fetch(self), None
        return self._value if borrow else self._value.copy()

    def set_value(self, value, borrow: bool = False) -> None:
        arr = np.array(value, copy=not borrow)
        label = repr(self.name) if self.name else "shared variable"
        self._value = self.type.filter(arr, name=f"set_value of {label}")
        self.holder = None
        for listener in getattr(self, "_listeners", ()):
            listener(self)

    def hold(self, holder) -> None:
        """``holder`` keeps the current value from now on: ``get_value`` fetches it with
        ``holder.fetch(self)`` (a numpy array), once; ``set_value`` ends the hold."""
        self.holder = holder

    def clone(self) -> SharedVariable:
        return self


class Apply:
    """One application of an op: ``outputs = op(*inputs)``."""

    def __init__(self, op, inputs: Sequence[Variable], output_types: Sequence[TensorType]) -> None:
        self.op = op
        self.inputs = list(inputs)
        self.outputs = [Variable(t, owner=self, index=i) for i, t in enumerate(output_types)]
        site = user_site()
        for out in self.outputs:
            out.creation = site

    @property
    def out(self) -> Variable:
        (single,) = self.outputs
        return single

    def __repr__(self) -> str:
        return f"{self.op}({', '.join(map(repr, self.inputs))})"


def as_variable(x) -> Variable:
    if isinstance(x, Variable):
        return x
    return Constant(x)


def ancestors(outputs: Iterable[Variable], blockers: Iterable[Variable] = ()) -> list[Variable]:
    """Every variable that ``outputs`` depend on (including themselves), stopping at
    ``blockers``."""
    seen, order = set(blockers), []
    stack = list(outputs)
    blocked = set(blockers)
    while stack:
        var = stack.pop()
        if var in seen and var not in blocked:
            continue
        if var in blocked:
            if var not in order:
                order.append(var)
            continue
        seen.add(var)
        order.append(var)
        if var.owner is not None:
            stack.extend(var.owner.inputs)
    return order


def graph_inputs(outputs: Iterable[Variable], blockers: Iterable[Variable] = ()) -> list[Variable]:
    """Root variables (no owner, or in ``blockers``) that ``outputs`` depend on."""
    blocked = set(blockers)
    return [v for v in ancestors(outputs, blocked) if v.owner is None or v in blocked]


def toposort(outputs: Iterable[Variable], blockers: Iterable[Variable] = ()) -> list[Apply]:
    """Apply nodes between ``blockers`` (or the roots) and ``outputs``, each after the
    nodes computing its inputs. Iterative, so deep graphs do not hit the recursion limit."""
    blocked = set(blockers)
    order: list[Apply] = []
    done: set[int] = set()
    for out in outputs:
        if out in blocked or out.owner is None or id(out.owner) in done:
            continue
        stack = [(out.owner, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in done:
                continue
            if expanded:
                done.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            for inp in reversed(node.inputs):
                if inp.owner is not None and inp not in blocked and id(inp.owner) not in done:
                    stack.append((inp.owner, False))
    return order


def rebuild(outputs: Sequence[Variable], replace: dict | None = None,
            blockers: Iterable[Variable] = ()) -> tuple[list[Variable], dict]:
    """Rebuild the graph behind ``outputs`` with ``replace`` substituted (old -> new).

    Nodes whose inputs do not change are shared with the original graph; the others are
    rebuilt through ``op.make_node``, so types are re-inferred. Returns the new outputs and
    the old -> new memo.
    """
    memo: dict = dict(replace or {})
    for node in toposort(outputs, blockers=list(memo) + list(blockers)):
        new_inputs = [memo.get(v, v) for v in node.inputs]
        if all(a is b for a, b in zip(new_inputs, node.inputs)):
            new_node = node
        else:
            new_node = node.op.make_node(*new_inputs)
            for old, new in zip(node.outputs, new_node.outputs):
                new.name = old.name
                new.creation = old.creation
        for old, new in zip(node.outputs, new_node.outputs):
            if old not in memo:
                memo[old] = new
    return [memo.get(v, v) for v in outputs], memo


def copy_graph(outputs: Sequence[Variable], inputs: Sequence[Variable] = ()
               ) -> tuple[list[Variable], dict]:
    """A private copy of every node between ``inputs`` and ``outputs`` (same ops and
    types, new Apply and Variable objects); constants and shared variables are kept.
    Listed ``inputs`` are copied too. Returns the new outputs and the old -> new memo."""
    memo: dict = {v: v.clone() for v in inputs}
    for node in toposort(outputs, blockers=inputs):
        new_node = Apply.__new__(Apply)
        new_node.op = node.op
        new_node.inputs = [memo.get(v, v) for v in node.inputs]
        new_node.outputs = []
        for old in node.outputs:
            new = Variable.__new__(Variable)
            new.__dict__.update(old.__dict__)
            new.owner, new.uid = new_node, next(_ids)
            new_node.outputs.append(new)
            memo[old] = new
    return [memo.get(v, v) for v in outputs], memo
