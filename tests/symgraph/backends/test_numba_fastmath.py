"""The vectorisable float32 exp / tanh / sigmoid of the numba backend, against float64
references: within a few ulp where the result is a normal float32, NaN and infinities
as numpy."""

import numba
import numpy as np
import pytest
import scipy.special

from symgraph.backends.numba.prelude import sg_exp32, sg_sigmoid32, sg_tanh32

FUNCS = {
    "exp": (sg_exp32, np.exp, 1.0),
    "tanh": (sg_tanh32, np.tanh, 7.0),
    "sigmoid": (sg_sigmoid32, scipy.special.expit, 3.0),
}


@numba.njit(error_model="numpy")
def _apply(kind, x, out):
    for i in range(x.size):
        if kind == 0:
            out[i] = sg_exp32(x[i])
        elif kind == 1:
            out[i] = sg_tanh32(x[i])
        else:
            out[i] = sg_sigmoid32(x[i])


def _run(name, x):
    out = np.empty_like(x)
    _apply(list(FUNCS).index(name), x, out)
    return out


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_accuracy_in_ulp(name):
    _, ref, max_ulp = FUNCS[name]
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-100, 90, 200_000), rng.uniform(-10, 10, 200_000),
                        rng.uniform(-1e-3, 1e-3, 50_000), [0.0, -0.0, 1e-30, 88.7, -87.3]])
    x = x.astype(np.float32)
    got = _run(name, x).astype(np.float64)
    want = ref(x.astype(np.float64))
    info = np.finfo(np.float32)
    normal = (np.abs(want) >= info.tiny) & (np.abs(want) < float(info.max) * (1 - 2**-24))
    ulp = np.spacing(np.abs(want[normal]).astype(np.float32)).astype(np.float64)
    err = np.abs(got[normal] - want[normal]) / ulp
    assert err.max() <= max_ulp, (name, err.max(), x[normal][err.argmax()])
    tiny = np.abs(want) < info.tiny  # denormal results: off by less than the smallest
    assert np.all(np.abs(got[tiny] - want[tiny]) < info.tiny)  # normal float32
    assert np.all(np.isinf(got[want > float(info.max)]))


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_special_values(name):
    _, ref, _ = FUNCS[name]
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4], np.float32)
    with np.errstate(all="ignore"):
        want = ref(x).astype(np.float32)
    got = _run(name, x)
    np.testing.assert_array_equal(got, want)
    assert np.signbit(got[4]) == np.signbit(want[4])
