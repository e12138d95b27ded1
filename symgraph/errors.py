"""Exception types raised to users. Each message says what was expected and what came."""


class SymgraphError(Exception):
    """Base class of errors raised by symgraph."""


class InputError(SymgraphError, TypeError):
    """A value given to a compiled function does not match its input's type."""


class ShapeError(SymgraphError, ValueError):
    """Shapes that cannot work together, found at graph-build or run time."""


class GraphError(SymgraphError, ValueError):
    """A graph that cannot be compiled: missing or duplicated inputs, bad updates."""


class GradientError(SymgraphError, TypeError):
    """A gradient that cannot be computed: disconnected or not implemented."""
