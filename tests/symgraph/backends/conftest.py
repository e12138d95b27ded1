"""Fixtures of the backend tests."""

import sys

import pytest


@pytest.fixture(scope="module")
def fast_simulator():
    """numba-cuda's simulator runs a block's threads as Python threads that its block
    manager polls under the GIL: with the default 5 ms switch interval every
    ``cuda.syncthreads()`` costs milliseconds; 0.1 ms makes the CUDA tests several times
    faster."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old)
