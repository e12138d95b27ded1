"""The user's tensor namespace, Theano style: ``import symgraph.tensor as T``.

A thin facade over ``symgraph.ops``: constructors, math, reductions, shape ops, indexing
helpers and ``T.nnet``.
"""

from symgraph.autodiff import grad  # noqa: F401,E402  (Theano's T.grad)
from symgraph.graph import Constant, SharedVariable, Variable  # noqa: F401,E402
from symgraph.ops.basic import *  # noqa: F401,F403
from symgraph.ops.blas import *  # noqa: F401,F403
from symgraph.ops.math import *  # noqa: F401,F403
from symgraph.ops.reduce import *  # noqa: F401,F403
from symgraph.ops.shape import *  # noqa: F401,F403
from symgraph.ops.subtensor import *  # noqa: F401,F403
from symgraph.tensor import nnet  # noqa: F401  (T.nnet, also importable as a module)
from symgraph.types import TensorType  # noqa: F401
