"""symgraph: a small, fast, Theano-style symbolic autodiff framework.

>>> import symgraph as sg, symgraph.tensor as T
>>> x = T.vector('x'); f = sg.function([x], sg.grad((x ** 2).sum(), x))
"""

from symgraph import basic_rewrites as _basic_rewrites  # noqa: F401  (registers passes)
from symgraph import gradient, printing, tensor  # noqa: F401
from symgraph import ops as _ops  # noqa: F401  (installs tensor operators)
from symgraph.autodiff import grad
from symgraph.compile import Function, Mode, function
from symgraph.config import config
from symgraph.errors import GradientError, GraphError, InputError, ShapeError, SymgraphError
from symgraph.graph import Apply, Constant, SharedVariable, Variable
from symgraph.ops.basic import shared
from symgraph.ops.random import RandomStreams
from symgraph.scan import scan
from symgraph.types import TensorType

__all__ = [
    "Apply", "Constant", "Function", "GradientError", "GraphError", "InputError", "Mode",
    "RandomStreams", "ShapeError", "SharedVariable", "SymgraphError", "TensorType",
    "Variable", "config", "function", "grad", "gradient", "printing", "scan", "shared",
    "tensor",
]
__version__ = "0.1.0"
