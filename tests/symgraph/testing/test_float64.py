"""The checks' float64 copy of a float32 graph: roots, constants, casts, dtype-carrying
ops, shared variables and scan steps all become float64; the model is untouched."""

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph import SharedVariable, graph_inputs, toposort
from symgraph.testing._float64 import to_float64


def test_a_float32_model_is_rebuilt_in_float64_with_the_same_values():
    rng = np.random.default_rng(0)
    W = sg.shared(rng.normal(size=(3, 3)).astype("float32"), name="W")
    xs = T.ftensor3("xs")
    h0 = T.zeros((xs.shape[1], 3), dtype="float32")
    hs, _ = sg.scan(lambda x, h: T.tanh(T.dot(x, W) + h * 0.5), sequences=xs,
                    outputs_info=h0)
    out = T.cast(hs.sum(axis=0), "float32") + T.arange(0.0, 3.0, dtype="float32") * T.constant(0.1)
    g = to_float64([out])
    (new,) = g.outputs
    assert out.dtype == "float32" and new.dtype == "float64"
    assert all(v.dtype != "float32" for node in toposort([new]) for v in node.outputs)
    assert not any(isinstance(r, SharedVariable) for r in graph_inputs([new]))
    w64 = g[W]
    assert g.shared[w64].dtype == np.float64 and W.dtype == "float32"
    assert g[xs].dtype == "float64" and g[xs].name == "xs"
    x = rng.normal(size=(4, 2, 3))
    want = sg.function([xs], out, mode="numpy")(x.astype("float32"))
    got = sg.function([g[xs], w64], new, mode="numpy")(x, g.shared[w64])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_integer_and_float64_parts_are_kept():
    ids, x = T.lvector("ids"), T.dvector("x")
    out = x[ids] * 2
    g = to_float64([out])
    assert g[ids] is ids and g[x] is x and g.outputs[0] is out
