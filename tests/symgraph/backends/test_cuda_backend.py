"""The CUDA backend against the numpy reference, op by op, on tiny shapes (in numba-cuda's
simulator when there is no GPU: see tests/conftest.py)."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.subtensor import IndexOutOfRangeError
from tests.helpers import assert_same, require_cuda_backend, same_as_numpy

require_cuda_backend()


def values(shape, dtype="float32", seed=0, low=-2.0, high=2.0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(int(low), int(high) + 1, shape).astype(dtype)
    return rng.uniform(low, high, shape).astype(dtype)


def kernels(f) -> int:
    """How many generated kernels the compiled function's steps launch."""
    return f.__source__.count("def KERNEL(")


@pytest.fixture
def tree_rows(monkeypatch):
    """Reduce even short rows with a block of threads and a shared-memory tree."""
    monkeypatch.setattr("symgraph.backends.cuda.jit.SERIAL_ROW", 0)


# ---- elementwise ---------------------------------------------------------------------------

def test_elementwise_chains_with_broadcasting_and_mixed_dtypes_are_one_kernel_per_domain():
    x, y, i = T.fmatrix("x"), T.dvector("y"), T.ivector("i")
    out = T.tanh(x) * y + i - T.exp(-x) / (1 + T.sqr(y))  # float64 (float32 * float64)
    f = same_as_numpy([x, y, i], out, values((2, 3)), values(3, "float64", 1),
                      values(3, "int32", 2, -3, 3))
    assert kernels(f) == 2  # 1 + y**2 over (3,), the rest over (2, 3)


def test_elementwise_outputs_of_every_kind():
    x, n = T.fmatrix("x"), T.imatrix("n")
    outs = [T.switch(x > 0, x, 0.5 * x), T.gt(x, 0.25), T.cast(x * 3, "int32"), n // 2,
            n % 3, T.maximum(x, n), T.nnet.sigmoid(x), T.nnet.softplus(x), T.sgn(x),
            T.clip(x, -0.5, 0.5), abs(n), T.log1p(T.abs(x)), x ** 2, T.invert(x > 0),
            T.round(x * 2)]
    same_as_numpy([x, n], outs, values((3, 2)), values((3, 2), "int32", 1, -5, 5))


def test_fused_kernels_read_views_in_place():
    x, b = T.fmatrix("x"), T.fvector("b")
    out = x.T * 2 + x.sum(axis=1, keepdims=True).T + b.dimshuffle(0, "x")
    same_as_numpy([x, b], [out, x[:, 1:3] * x[:, 0:2]], values((3, 4)), values(4))


# ---- matrix products ---------------------------------------------------------------------

@pytest.fixture
def split_inner(monkeypatch):
    """Products as small as the tests' cut their inner dimension into chunks of 4-8."""
    monkeypatch.setattr("symgraph.backends.cuda.gemm.MIN_CHUNK", 4)
    monkeypatch.setattr("symgraph.backends.cuda.gemm.TARGET_BLOCKS", 1000)


@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
def test_gemm_with_transposed_operands_and_shapes_off_the_tile(dtype, trans_a, trans_b,
                                                               split, request):
    if split:
        request.getfixturevalue("split_inner")
    a, b = T.matrix("a", dtype=dtype), T.matrix("b", dtype=dtype)
    av, bv = values((3, 9), dtype), values((9, 5), dtype, 1)  # 4x4 tiles, k = 9
    if trans_a:
        a_op, av = a.T, av.T.copy()
    else:
        a_op = a
    if trans_b:
        b_op, bv = b.T, bv.T.copy()
    else:
        b_op = b
    f = same_as_numpy([a, b], T.dot(a_op, b_op), av, bv, rtol=1e-5)
    assert "DimShuffle" not in f.__source__  # transposes are read in place


def test_gemm_on_larger_tiles_and_with_vectors():
    a, b, v, w = T.fmatrix("a"), T.fmatrix("b"), T.fvector("v"), T.fvector("w")
    same_as_numpy([a, b, v, w], [T.dot(a, b), T.dot(a, v), T.dot(w, b.T), T.dot(v, v)],
                  values((6, 5)), values((5, 7), seed=1), values(5, seed=2), values(7, seed=3))
    same_as_numpy([a, b], T.dot(a, b), values((10, 3)), values((3, 9), seed=3))  # 16x16


def test_split_products_add_every_chunk_once(split_inner):
    from symgraph.backends.cuda.gemm import split_for

    assert split_for(1, 9, 4) == (2, 8) and split_for(1, 17, 4) == (3, 8)  # last one short
    a, b, c = T.fmatrix("a"), T.fmatrix("b"), T.fmatrix("c")
    for k in (1, 4, 8, 9, 13, 17):  # no split, exact chunks, a short last chunk
        same_as_numpy([a, b, c], [T.dot(a, b), T.dot(c.T, b.T.T)], values((3, k), seed=k),
                      values((k, 5), seed=k + 1), values((k, 3), seed=k + 2), rtol=1e-5)


def test_split_sizes_for_a_large_gpu():
    from symgraph.backends.cuda.gemm import split_for

    assert split_for(64, 2048, 16) == (4, 512)  # a recurrent step's dgates @ U^T
    assert split_for(256, 512, 16) == (1, 512)  # enough blocks already
    assert split_for(4, 300, 16) == (1, 300)  # too short to cut
    assert split_for(1, 1000, 16) == (3, 336)  # chunks of whole tiles


# ---- reductions --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["serial", "tree"])
def test_reductions_over_axes(path, request):
    if path == "tree":
        request.getfixturevalue("tree_rows")
    x, n = T.ftensor3("x"), T.imatrix("n")
    outs = [x.sum(), x.sum(axis=(0, 2)), x.max(axis=1), x.min(axis=(0, 1), keepdims=True),
            x.mean(axis=2), x.prod(axis=0), n.sum(axis=0), T.max(n), (x > 0).sum(axis=1)]
    same_as_numpy([x, n], outs, values((2, 3, 4)), values((3, 2), "int32", 1, -4, 4))


def test_max_propagates_nan_like_numpy():
    x = T.fmatrix("x")
    xv = values((2, 3))
    xv[1, 2] = np.nan
    same_as_numpy([x], [x.max(axis=1), x.min()], xv)


# ---- softmax family ---------------------------------------------------------------------

@pytest.mark.parametrize("path", ["serial", "tree"])
def test_softmax_log_softmax_and_cross_entropy(path, request):
    if path == "tree":
        request.getfixturevalue("tree_rows")
    x, ids = T.ftensor3("x"), T.imatrix("ids")
    logits = values((2, 3, 5), low=-4, high=4)
    xent = T.nnet.categorical_crossentropy(T.nnet.softmax(x), ids)
    outs = [T.nnet.softmax(x), T.nnet.log_softmax(x, axis=1), xent,
            sg.grad(xent.sum(), x), T.nnet.categorical_crossentropy(T.nnet.sigmoid(x), ids)]
    same_as_numpy([x, ids], outs, logits, values((2, 3), "int32", 1, 0, 4))


# ---- indexing ----------------------------------------------------------------------------

def test_gather_and_scatter_add_with_repeated_and_negative_ids():
    W, ids, g = T.fmatrix("W"), T.imatrix("ids"), T.ftensor3("g")
    picked = W[ids]
    grad_w = sg.grad((picked * g).sum(), W)  # scatter-add: repeats accumulate
    idv = np.array([[0, 2, 2], [-1, 0, 2]], "int32")
    same_as_numpy([W, ids, g], [picked, grad_w, T.set_subtensor(W[ids[0, :2]], 1.5)],
                  values((4, 3)), idv, values((2, 3, 3), seed=1))


def test_basic_indexing_inc_subtensor_join_and_alloc():
    x, y, k = T.fmatrix("x"), T.fvector("y"), T.lscalar("k")
    outs = [x[1], x[k, 1:], x[::-1, ::2], x[:, None, 1], x[-1, -1],
            T.inc_subtensor(x[:, 1], y[:3]), T.set_subtensor(x[1:, ::2], 7.0),
            T.concatenate([x, x * 2], axis=1), T.stack([y, y + 1]),
            T.alloc(y, 2, 4), T.zeros((k, 2)) + 1]
    same_as_numpy([x, y, k], outs, values((3, 4)), values(4, seed=1), 2)


# ---- scan ---------------------------------------------------------------------------------

def test_scan_with_history_go_backwards_and_a_scalar_carry():
    xs, h0 = T.ftensor3("xs"), T.fmatrix("h0")
    (hs, count), _ = sg.scan(lambda x, h, c: [T.tanh(h + x), c + 1], sequences=[xs],
                             outputs_info=[h0, T.constant(np.int64(0))])
    back, _ = sg.scan(lambda x, h: h * 0.5 + x, sequences=[xs], outputs_info=[h0],
                      go_backwards=True)
    same_as_numpy([xs, h0], [hs, count, back[-1]], values((3, 2, 2)), values((2, 2), seed=1))


def test_scan_over_scalars_and_with_no_steps():
    v = T.fvector("v")
    sums, _ = sg.scan(lambda a, s: s + a, sequences=[v],
                      outputs_info=[T.constant(np.float32(0))])
    same_as_numpy([v], sums, values(4))
    same_as_numpy([v], sums, values(0))
    xs, h0 = T.ftensor3("xs"), T.fmatrix("h0")
    hs, _ = sg.scan(lambda x, h: h + x, sequences=[xs], outputs_info=[h0])
    same_as_numpy([xs, h0], [hs, hs.sum()], values((0, 2, 3)), values((2, 3), seed=1))


def test_scan_gradient():
    xs, h0, W = T.ftensor3("xs"), T.fmatrix("h0"), T.fmatrix("W")
    hs, _ = sg.scan(lambda x, h: T.tanh(T.dot(h, W) + x), sequences=[xs], outputs_info=[h0])
    cost = (hs ** 2).sum()
    outs = [cost] + sg.grad(cost, [xs, h0, W])
    for steps in (3, 0):  # no steps: empty outputs of the right shape, zero gradients
        same_as_numpy([xs, h0, W], outs, values((steps, 2, 2)), values((2, 2), seed=1),
                      values((2, 2), seed=2))


# ---- fallbacks and errors --------------------------------------------------------------------

def test_an_op_without_a_cuda_lowering_runs_on_the_host_with_a_warning():
    x = T.fmatrix("x")
    with pytest.warns(UserWarning, match="no CUDA lowering for Argmax"):
        f = sg.function([x], T.argmax(x * 2, axis=1) + 1, mode="cuda")
    xv = values((3, 4))
    np.testing.assert_array_equal(f(xv), np.argmax(xv * 2, axis=1) + 1)


def test_run_time_errors_are_the_reference_errors():
    W, ids, x, y = T.fmatrix("W"), T.ivector("ids"), T.fmatrix("x"), T.fmatrix("y")
    gather = sg.function([W, ids], W[ids] * 2, mode="cuda")
    with pytest.raises(IndexOutOfRangeError, match="index 5 is out of range"):
        gather(values((4, 2)), np.array([1, 5], "int32"))
    assert_same(gather(values((4, 2)), np.array([1, 3], "int32")), values((4, 2))[[1, 3]] * 2)
    add = sg.function([x, y], x + y, mode="cuda")
    with pytest.raises(sg.ShapeError):
        add(values((2, 3)), values((3, 2)))
