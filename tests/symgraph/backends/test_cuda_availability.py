"""``mode='cuda'`` where it cannot run: one clear error saying what is missing."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.cuda import device
from symgraph.backends.cuda.device import CudaUnavailableError


def test_numba_cuda_missing_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(device, "numba_cuda_installed", lambda: False)
    x = T.fvector("x")
    with pytest.raises(CudaUnavailableError, match=r'numba-cuda.*pip install -e "\.\[cuda\]"'):
        sg.function([x], x * 2, mode="cuda")


@pytest.mark.skipif(not device.numba_cuda_installed(), reason="numba-cuda is not installed")
def test_no_gpu_and_no_simulator_is_one_clear_error():
    script = textwrap.dedent("""
        import symgraph as sg, symgraph.tensor as T
        from numba import cuda
        if cuda.is_available():
            print("HAS-GPU")
        else:
            x = T.fvector("x")
            try:
                sg.function([x], x * 2, mode="cuda")
            except sg.SymgraphError as exc:
                print(type(exc).__name__, exc)
    """)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    if "HAS-GPU" in run.stdout:
        pytest.skip("this machine has a GPU")
    expected = ("CudaUnavailableError mode='cuda' needs an NVIDIA GPU with a working driver, "
                "or NUMBA_ENABLE_CUDASIM=1")
    assert run.stdout.startswith(expected), run.stdout + run.stderr
    assert "numba-cuda says:" in run.stdout


@pytest.mark.skipif(not device.numba_cuda_installed(), reason="numba-cuda is not installed")
def test_numba_cuda_compiles_kernels_with_a_numpy_that_has_no_row_stack():
    # numpy 2.5 removed np.row_stack, which numba-cuda 0.30.4's array support (loaded by the
    # kernel compiler) registers at import: its first kernel compile failed with AttributeError.
    script = textwrap.dedent("""
        import importlib, json
        import numpy as np
        import symgraph as sg, symgraph.tensor as T
        if hasattr(np, "row_stack"):
            del np.row_stack  # as in numpy >= 2.5
        x = T.fvector("x")
        f = sg.function([x], T.tanh(x) * 2, mode="cuda")
        out = f(np.arange(3, dtype="float32"))
        importlib.import_module("numba.cuda.np.arrayobj")  # what the GPU's compiler loads
        print(json.dumps([np.asarray(out).tolist(), hasattr(np, "row_stack")]))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"})
    assert run.returncode == 0, run.stderr
    values, alias_left = json.loads(run.stdout)
    assert np.allclose(values, 2 * np.tanh(np.arange(3)))
    assert alias_left is False
