"""C-contiguous copies of transposed matrices in SIMD blocks (``transpose.py``): exact
copies for every shape around the block size (rows and columns left over), both float
dtypes, sources with gaps between their columns, destinations that are row slices, the
block sizes of other machines, and ``sg_copy`` of every kind of transposed view."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symgraph.backends.numba.kernels import sg_copy
from symgraph.backends.numba.transpose import block_lanes, copier, sg_copy_columns

COPIERS = {16: copier(16), 32: copier(32), 64: copier(64)}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 70), st.integers(0, 70), st.sampled_from([np.float32, np.float64]),
       st.sampled_from(sorted(COPIERS)), st.booleans(), st.integers(0, 2**31 - 1))
def test_blocks_copy_every_element_exactly(m, n, dtype, vector_bytes, gaps, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, m + 5 * gaps)).astype(dtype)[:, :m].T  # columns contiguous
    wide = np.full((m, n + 3), -7.0, dtype)
    out = wide[:, 1:n + 1]  # rows contiguous, not the whole array
    COPIERS[vector_bytes](x, out)
    np.testing.assert_array_equal(out, x)
    assert (wide[:, 0] == -7).all() and (wide[:, n + 1:] == -7).all()  # nothing beyond


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_block_is_one_vector_register_square(dtype):
    from symgraph.backends.numba.tiles import VECTOR_BYTES

    side = block_lanes(VECTOR_BYTES, np.dtype(dtype).itemsize)
    x = np.arange(side * side, dtype=dtype).reshape(side, side)
    out = np.empty_like(x)
    sg_copy_columns(x.T, out)  # one whole block, nothing left over
    np.testing.assert_array_equal(out, x.T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("view", ["transposed", "rows strided", "columns strided",
                                  "reversed", "both reversed"])
def test_sg_copy_of_any_view_is_a_c_contiguous_copy(dtype, view):
    w = (np.random.default_rng(1).standard_normal((37, 21)) * 100).astype(dtype)
    x = {"transposed": w.T, "rows strided": w[::2].T, "columns strided": w[:, ::3].T,
         "reversed": w[::-1].T, "both reversed": w.T[::-1, ::-1]}[view]
    out = sg_copy(x, np.empty((0, 0), dtype))
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, x)
