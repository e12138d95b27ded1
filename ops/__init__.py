"""Every user-facing tensor op. Importing this package installs the tensor operators
(``+``, indexing, ``.sum()`` ...) on ``symgraph.graph.Variable``."""

from symgraph.graph import OPERATORS, register_package_dir
from symgraph.ops import basic, blas, math, nnet, random, reduce, shape, subtensor  # noqa: F401  (imported for users: symgraph.ops.nnet)
from symgraph.ops import lookup_rewrites as _lookup_rewrites  # noqa: F401  (registers)
from symgraph.ops import reduction_rewrites as _reduction_rewrites  # noqa: F401  (registers)
from symgraph.ops import rewrites as _rewrites  # noqa: F401  (registers the op rewrites)
from symgraph.ops import scan_gather_rewrites as _scan_gather  # noqa: F401  (registers)
from symgraph.ops import scan_rewrites as _scan_rewrites  # noqa: F401  (registers passes)
from symgraph.ops import shape_rewrites as _shape_rewrites  # noqa: F401  (registers)

register_package_dir(__file__)


def _install_operators() -> None:
    ops = {
        "add": math.add, "sub": math.sub, "mul": math.mul, "true_div": math.true_div,
        "int_div": math.int_div, "mod": math.mod, "pow": math.pow, "neg": math.neg,
        "abs": math.abs, "lt": math.lt, "le": math.le, "gt": math.gt, "ge": math.ge,
        "and_": math.and_, "or_": math.or_, "invert": math.invert, "clip": math.clip,
        "exp": math.exp, "log": math.log, "tanh": math.tanh, "sqrt": math.sqrt,
        "dot": blas.dot, "getitem": subtensor.getitem, "shape": shape.shape,
        "transpose": shape.transpose, "dimshuffle": shape.dimshuffle,
        "reshape": shape.reshape, "flatten": shape.flatten, "cast": basic.cast,
        "sum": reduce.sum, "mean": reduce.mean, "max": reduce.max, "min": reduce.min,
        "prod": reduce.prod, "argmax": reduce.argmax, "argmin": reduce.argmin,
        "norm": reduce.norm, "zeros_like": shape.zeros_like,
    }
    for name, fn in ops.items():
        setattr(OPERATORS, name, fn)


_install_operators()
