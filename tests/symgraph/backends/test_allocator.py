"""The numba backend keeps freed memory in the C heap: a step's large temporaries are
reused instead of being faulted in again on every call."""

import os
import subprocess
import sys

import pytest

PROBE = """
import resource
import numpy as np
from symgraph.backends.numba.allocator import keep_freed_memory
applied = keep_freed_memory()
def step():  # a training step's large temporaries: 8 arrays of 9.6 MB, then freed
    arrays = [np.ones(2_400_000, np.float32) for _ in range(8)]
    del arrays
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def probe(keep: str) -> tuple[bool, int]:
    env = dict(os.environ, SYMGRAPH_KEEP_FREED_MEMORY=keep)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_temporaries_are_not_faulted_in_again():
    kept, faults_kept = probe("1")
    released, faults_released = probe("0")
    assert kept and not released
    pages = 10 * 8 * 9_600_000 // 4096  # every page of every step's arrays
    assert faults_released > pages // 10  # the heap was trimmed and faulted in again
    assert faults_kept < pages // 100
