"""The CUDA kernels that share memory inside a block stay right when the simulator's
threads interleave at the worst moment.

numba-cuda's simulator makes a static shared array (``cuda.shared.array(shape, ...)``)
when the first thread of a block asks for it: a lookup, then a store. Two threads that
ask at once can each make their own array, and the block stops sharing it. That made a
training step's first call differ from the reference now and then (the race window is
widest on the first launch in a process). The backend's kernels therefore use only the
dynamic shared array (``jit.shared_buffer``). These tests hold the window open on every
launch, show that it breaks a kernel with a static array, and run every kernel family
that shares memory (GEMM tiles, tree reductions, softmax rows) against numpy through it.
"""

import sys
import threading
import time

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from tests.helpers import require_cuda_backend, same_as_numpy

require_cuda_backend()

from numba import cuda  # noqa: E402  (numba-cuda is installed: checked above)


@pytest.fixture
def racy_static_shared(monkeypatch):
    """Yield the GIL between the simulator's lookup and store of a static shared array,
    so that every thread of a block makes its own (the race, made certain)."""
    from numba.cuda.simulator import kernelapi

    from symgraph.backends.cuda.device import simulator_enabled

    if not simulator_enabled():  # the module imports on a GPU too, but is not used
        pytest.skip("kernels run on a real GPU: the race is the simulator's")
    dynamic = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):
        if shape == 0:
            return dynamic(self, shape, dtype, alignment)
        caller = sys._getframe(1).f_code.co_filename, sys._getframe(1).f_lineno
        made = self._allocations.get(caller)
        if made is None:
            time.sleep(0.05)  # long enough for every thread of the block to get here
            made = self._allocations[caller] = np.zeros(shape, dtype)
        return made

    monkeypatch.setattr(kernelapi.FakeCUDAShared, "array", array)
    monkeypatch.setattr("symgraph.backends.cuda.jit.SERIAL_ROW", 0)  # rows by blocks


def test_the_open_window_breaks_a_kernel_with_a_static_shared_array(racy_static_shared):
    @cuda.jit
    def block_sum(x, out):
        buf = cuda.shared.array(8, np.float32)
        buf[cuda.threadIdx.x] = x[cuda.threadIdx.x]
        cuda.syncthreads()
        if cuda.threadIdx.x == 0:
            total = np.float32(0.0)
            for j in range(8):
                total += buf[j]
            out[0] = total

    x, out = np.arange(1, 9, dtype=np.float32), np.zeros(1, np.float32)
    block_sum[1, 8](x, out)
    assert out[0] != x.sum()  # thread 0 saw only its own array


def test_kernels_sharing_memory_match_numpy_through_the_open_window(racy_static_shared):
    rng = np.random.default_rng(0)
    a, b, x, ids = T.fmatrix("a"), T.fmatrix("b"), T.fmatrix("x"), T.ivector("ids")
    xent = T.nnet.categorical_crossentropy(T.nnet.softmax(x), ids)
    outs = [T.dot(a, b), T.dot(a.T, a), x.sum(axis=1), x.max(axis=0), T.nnet.softmax(x),
            T.nnet.log_softmax(x), xent, sg.grad(xent.sum(), x)]
    same_as_numpy([a, b, x, ids], outs, rng.standard_normal((17, 9), np.float32),
                  rng.standard_normal((9, 18), np.float32),
                  rng.standard_normal((3, 40), np.float32),
                  rng.integers(0, 40, 3).astype(np.int32), rtol=1e-4)
    assert threading.active_count() < 50  # the simulator's threads all finished
