"""Helpers shared by the tests: numeric gradient checks and shape checks."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import symgraph as sg
from symgraph.testing import check_grads

MODES = ["numpy"]


def check_grad(fn, *points, mode="numpy", n_tests=2, eps=None, tol=None, seed=0):
    """``symgraph.testing.check_grads`` at float64 ``points``: the dot-product test, with
    kinks avoided; raises naming the op on mismatch."""
    pts = [np.asarray(p, dtype="float64") for p in points]
    check_grads(fn, at=pts, n_tests=n_tests, seed=seed, eps=eps, rtol=tol, atol=tol,
                mode=mode)


def check_infer_shape(inputs, output, values, mode="numpy"):
    """``infer_shape`` of ``output``'s node, evaluated, equals the computed shape."""
    node = output.owner
    shapes = [tuple(v.shape[i] for i in range(v.ndim)) for v in node.inputs]
    inferred = node.op.infer_shape(node, shapes)[output.index]
    import symgraph.tensor as T

    dims = [T.cast(d, "int64") for d in inferred]
    f = sg.function(inputs, [output] + dims, mode=mode, on_unused_input="ignore")
    out, *got = f(*values)
    assert tuple(int(g) for g in got) == np.shape(out), (tuple(int(g) for g in got),
                                                          np.shape(out))


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Hypothesis strategy: shapes with small sides (1 included)."""
    return st.lists(st.integers(min_side, max_side), min_size=min_dims,
                    max_size=max_dims).map(tuple)


def arrays(shape, low=-2.0, high=2.0, seed=0, dtype="float64"):
    """Seeded uniform array."""
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=shape).astype(dtype)


# ---- the CUDA backend ------------------------------------------------------------------

def require_cuda_backend() -> None:
    """Skip the calling test module unless ``mode='cuda'`` can run: numba-cuda must be
    installed, and kernels need a GPU or numba-cuda's simulator (tests/conftest.py
    turns it on unless NUMBA_ENABLE_CUDASIM is set)."""
    import pytest

    from symgraph.backends.cuda.device import CudaUnavailableError, require_cuda

    try:
        require_cuda()
    except CudaUnavailableError as exc:
        pytest.skip(f"the CUDA backend cannot run here: {exc}", allow_module_level=True)


def assert_same(got, want, rtol=1e-5, atol=1e-6, what=""):
    """Equal dtypes and shapes, values to tolerance (exact for ints and bools)."""
    got = got if isinstance(got, list) else [got]
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        label = f"{what} output {k}"
        assert g.dtype == w.dtype, f"{label}: dtype {g.dtype} != {w.dtype}"
        assert g.shape == w.shape, f"{label}: shape {g.shape} != {w.shape}"
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=label)
        else:
            np.testing.assert_array_equal(g, w, err_msg=label)


def same_as_numpy(inputs, outputs, *values, rtol=1e-5, atol=1e-6):
    """Compile ``outputs`` with ``mode='cuda'`` and with the numpy reference, check that
    they agree on ``values``, and return the CUDA function."""
    fast = sg.function(inputs, outputs, mode="cuda")
    reference = sg.function(inputs, outputs, mode="numpy")
    assert_same(fast(*values), reference(*values), rtol=rtol, atol=atol)
    return fast
