"""RandomStreams: reproducible counter-based draws, default updates that advance the
streams, symbolic sizes, distributions' statistics and errors."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.random import RandomVariable
from tests.helpers import check_infer_shape


def draws(seed, calls=2):
    rs = sg.RandomStreams(seed)
    f = sg.function([], [rs.uniform((2, 3)), rs.normal((4,), dtype="float64"),
                         rs.binomial((5,), p=0.5)], mode="numpy")
    return [f() for _ in range(calls)]


def test_same_seed_same_draws_across_objects_and_functions():
    first, second = draws(1234), draws(1234)
    for a, b in zip(first, second):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


def test_calls_advance_and_seeds_differ():
    (u1, n1, b1), (u2, n2, b2) = draws(7)
    assert not np.array_equal(u1, u2) and not np.array_equal(n1, n2)
    (v1, m1, _), _ = draws(8)
    assert not np.array_equal(u1, v1) and not np.array_equal(n1, m1)


def test_two_draws_in_one_graph_differ_and_one_draw_reused_is_equal():
    rs = sg.RandomStreams(3)
    a, b = rs.uniform((50,)), rs.uniform((50,))
    f = sg.function([], [a, b, a - a], mode="numpy")
    av, bv, zero = f()
    assert not np.array_equal(av, bv)
    np.testing.assert_array_equal(zero, 0)
    assert RandomVariable.mergeable is False and RandomVariable.foldable is False


def test_seed_resets_every_stream():
    rs = sg.RandomStreams(5)
    f = sg.function([], [rs.uniform((3,)), rs.normal((3,))], mode="numpy")
    first = f()
    f()
    rs.seed(5)
    again = f()
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    rs.seed(6)
    assert not np.array_equal(f()[0], first[0])


def test_default_updates_and_explicit_updates():
    rs = sg.RandomStreams(11)
    u = rs.uniform((4,))
    frozen = sg.function([], u, mode="numpy", no_default_updates=True)
    np.testing.assert_array_equal(frozen(), frozen())
    explicit = sg.function([], u, updates=rs.updates(), mode="numpy", no_default_updates=True)
    assert not np.array_equal(explicit(), explicit())
    (state, advanced), = rs.updates()
    assert state.get_value().tolist() == [11, 0, 2]
    assert advanced.dtype == "uint64"


def test_symbolic_size_and_infer_shape():
    rs = sg.RandomStreams(0)
    x = T.dmatrix("x")
    xv = np.zeros((3, 5))
    for sample in (rs.uniform(x.shape), rs.normal((x.shape[1], 2)),
                   rs.binomial((x.shape[0],), p=0.2)):
        check_infer_shape([x], sample, [xv])
    out = sg.function([x], rs.uniform(x.shape, dtype="float64") + x, mode="numpy")(xv)
    assert out.shape == (3, 5) and out.dtype == np.float64
    assert rs.uniform((2, 3)).type.shape == (2, 3)


def test_uniform_and_normal_statistics():
    rs = sg.RandomStreams(2024)
    u = rs.uniform((20000,), low=-2.0, high=3.0, dtype="float64")
    n = rs.normal((20000,), avg=1.5, std=0.5, dtype="float64")
    uv, nv = sg.function([], [u, n], mode="numpy")()
    assert uv.min() >= -2.0 and uv.max() < 3.0
    assert abs(uv.mean() - 0.5) < 0.05
    assert abs(nv.mean() - 1.5) < 0.02 and abs(nv.std() - 0.5) < 0.02
    assert rs.uniform((2,)).dtype == sg.config.floatX


def test_uniform_with_tensor_bounds_broadcasts():
    rs = sg.RandomStreams(9)
    low = T.dvector("low")
    u = rs.uniform((1000, 3), low=low, high=low + 1, dtype="float64")
    uv = sg.function([low], u, mode="numpy")(np.array([0.0, 10.0, -10.0]))
    assert np.all((uv >= [0, 10, -10]) & (uv < [1, 11, -9]))


def test_dropout_mask_mean_is_close_to_p():
    rs = sg.RandomStreams(42)
    h = T.dmatrix("h")
    mask = rs.binomial(h.shape, p=0.8, dtype="float64")
    f = sg.function([h], [mask, sg.grad((h * mask).sum(), h)], mode="numpy")
    hv = np.ones((100, 50))
    means = []
    for _ in range(20):
        m, g = f(hv)
        assert set(np.unique(m)) <= {0.0, 1.0}
        np.testing.assert_array_equal(g, m)  # the gradient sees the same draw
        means.append(m.mean())
    # 100k Bernoulli(0.8) draws: standard error 0.0013, tolerance ~8 standard errors
    assert abs(np.mean(means) - 0.8) < 0.01
    assert np.std(means) > 0  # each call draws a new mask


def test_binomial_counts():
    rs = sg.RandomStreams(1)
    b = sg.function([], rs.binomial((10000,), n=10, p=0.3), mode="numpy")()
    assert b.dtype == np.int64 and b.min() >= 0 and b.max() <= 10
    assert abs(b.mean() - 3.0) < 0.1


def test_no_gradient_for_parameters():
    rs = sg.RandomStreams(1)
    low = T.dscalar("low")
    u = rs.uniform((3,), low=low, high=1.0, dtype="float64")
    with pytest.raises(sg.GradientError, match="not differentiable in their parameters"):
        sg.grad(u.sum(), low)


def test_errors():
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*64\)"):
        sg.RandomStreams(-1)
    rs = sg.RandomStreams(0)
    with pytest.raises(sg.ShapeError, match="does not broadcast to the size"):
        rs.uniform((2, 3), low=T.tensor("float32", (4,), name="low"))
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        rs.normal((2,), dtype="int32")
    n = T.lscalar("n")
    f = sg.function([n], rs.uniform((n,)), mode="numpy")
    with pytest.raises(sg.ShapeError, match="negative size"):
        f(-1)
    with pytest.raises(sg.ShapeError, match="binomial needs"):
        sg.function([], rs.binomial((2,), p=1.5), mode="numpy")()


def test_seed_none_is_random_but_usable():
    out = sg.function([], sg.RandomStreams().uniform((3,)), mode="numpy")()
    assert out.shape == (3,)
