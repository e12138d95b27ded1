"""``mode='cuda'`` where it cannot run: one clear error saying what is missing."""

import os
import subprocess
import sys
import textwrap

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
