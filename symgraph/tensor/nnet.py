"""``symgraph.tensor.nnet`` (Theano's ``theano.tensor.nnet``): neural-network ops."""

from symgraph.ops.nnet import *  # noqa: F401,F403
from symgraph.ops.nnet import __all__  # noqa: F401
