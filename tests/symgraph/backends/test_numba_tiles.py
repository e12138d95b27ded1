"""Register-tiled products (``backends/numba/tiles.py``) against float64 numpy products:
every tile shape's edge cases (rows and columns left over, masked last vectors, no inner
length), strided and reversed operands, row ranges, and the vector widths of other
machines (AVX and SSE tiles compile and run here too)."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symgraph.backends.numba.tiles import VECTOR_BYTES, sg_tiles, tile_shape, tiled_product

OTHER_WIDTHS = {16: tiled_product(16), 32: tiled_product(32), 64: tiled_product(64)}


def tolerance(dtype, k):
    return (3e-6 if dtype == np.float32 else 1e-13) * max(k, 1)


def check(product, a, b, out, lo, hi, beta):
    before = out.copy()
    want = before.astype(np.float64)
    want[lo:hi] = beta * want[lo:hi] + a[lo:hi].astype(np.float64) @ b.astype(np.float64)
    product(a, b, out, lo, hi, beta)
    scale = np.abs(a).max(initial=1) * np.abs(b).max(initial=1) + 1
    np.testing.assert_allclose(out, want, rtol=0, atol=tolerance(a.dtype, a.shape[1]) * scale)
    np.testing.assert_array_equal(out[:lo], before[:lo])
    np.testing.assert_array_equal(out[hi:], before[hi:])


shapes = st.tuples(st.integers(1, 13), st.integers(0, 40), st.integers(1, 150))


@settings(max_examples=60, deadline=None)
@given(shapes, st.sampled_from([np.float32, np.float64]), st.sampled_from([0.0, 1.0]),
       st.sampled_from(["C", "F", "rows-strided", "reversed"]), st.integers(0, 2**31 - 1))
def test_tiles_match_the_float64_product(shape, dtype, beta, layout, seed):
    m, k, n = shape
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(dtype)
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "rows-strided":
        a = np.repeat(a, 2, axis=0)[::2]
    elif layout == "reversed":
        a = np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    b = rng.standard_normal((k, n + 3)).astype(dtype)[:, :n]  # rows contiguous, not the array
    out = rng.standard_normal((m, n)).astype(dtype)
    lo = int(rng.integers(0, m))
    hi = int(rng.integers(lo + 1, m + 1))
    check(sg_tiles, a, b, out, lo, hi, beta)


@pytest.mark.parametrize("vector_bytes", sorted(OTHER_WIDTHS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (4, 3, 5), (9, 17, 33), (13, 64, 131)])
def test_tiles_of_every_vector_width(vector_bytes, dtype, m, k, n):
    rng = np.random.default_rng(m * 1000 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    for beta in (0.0, 1.0):
        check(OTHER_WIDTHS[vector_bytes], a, b, rng.standard_normal((m, n)).astype(dtype),
              0, m, beta)


def test_no_inner_length_gives_beta_times_out():
    out = np.arange(12, dtype=np.float32).reshape(3, 4)
    a, b = np.empty((3, 0), np.float32), np.empty((0, 4), np.float32)
    kept = out.copy()
    sg_tiles(a, b, out, 0, 3, 1.0)
    np.testing.assert_array_equal(out, kept)
    sg_tiles(a, b, out, 0, 3, 0.0)
    np.testing.assert_array_equal(out, 0)


def test_beta_zero_ignores_what_out_held():
    a = np.ones((5, 3), np.float32)
    b = np.ones((3, 21), np.float32)
    out = np.full((5, 21), np.nan, np.float32)
    sg_tiles(a, b, out, 0, 5, 0.0)
    np.testing.assert_array_equal(out, 3)


def test_masked_columns_leave_the_columns_beyond_alone():
    """The last vector's masked store writes only ``n`` columns of a row that goes on
    (``out`` a view of a wider array)."""
    wide = np.full((6, 40), 7.0, np.float32)
    out = wide[:, :19]
    a = np.ones((6, 2), np.float32)
    b = np.ones((2, 19), np.float32)
    sg_tiles(a, b, out, 0, 6, 0.0)
    np.testing.assert_array_equal(wide[:, :19], 2)
    np.testing.assert_array_equal(wide[:, 19:], 7)


def test_tile_shapes_fit_the_registers():
    for vector_bytes, registers in ((16, 16), (32, 16), (64, 32)):
        rows, vectors = tile_shape(vector_bytes)
        assert rows * vectors + vectors + 1 <= registers
    assert VECTOR_BYTES in (16, 32, 64)


def test_products_of_compiled_graphs_take_tiles_or_blas_by_layout():
    """``sg_gemm`` on ``b`` with contiguous rows (tiles) and on a transposed ``b`` (BLAS)
    give the same product."""
    from symgraph.backends.numba.products import sg_gemm, sg_gemm_add

    rng = np.random.default_rng(3)
    a = rng.standard_normal((33, 70)).astype(np.float32)
    b = rng.standard_normal((70, 45)).astype(np.float32)
    c = rng.standard_normal((1, 45)).astype(np.float32)
    want = a.astype(np.float64) @ b
    empty = np.empty((0, 0), np.float32)
    for right in (b, np.asfortranarray(b)):
        np.testing.assert_allclose(sg_gemm(a, right, empty), want, atol=1e-4)
        np.testing.assert_allclose(sg_gemm_add(a, right, c, True, False, empty), want + c,
                                   atol=1e-4)


def test_tiles_run_inside_other_compiled_code():
    @numba.njit
    def twice(a, b, out):
        sg_tiles(a, b, out, 0, a.shape[0], 0.0)
        sg_tiles(a, b, out, 0, a.shape[0], 1.0)

    a = np.eye(5, dtype=np.float64)
    b = np.arange(35, dtype=np.float64).reshape(5, 7)
    out = np.empty((5, 7))
    twice(a, b, out)
    np.testing.assert_array_equal(out, 2 * b)

