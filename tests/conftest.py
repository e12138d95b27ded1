"""Test configuration: hypothesis profiles ('ci' is derandomized and bounded), the
float64 default for gradient checks, numba-cuda's simulator for the CUDA backend, and the
numba backend's strict check of declared kernel result types."""

import os

from hypothesis import HealthCheck, settings

# The CUDA backend's tests run in numba-cuda's simulator unless NUMBA_ENABLE_CUDASIM is
# set (to 0 on a machine with a GPU); numba.cuda reads it once, when first imported.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
# A kernel result type declared wrongly by the numba backend's generators is an error in
# the tests (users get a silent rebuild without declarations instead).
os.environ.setdefault("SYMGRAPH_NUMBA_STRICT", "1")

settings.register_profile(
    "ci", derandomize=True, max_examples=25, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "thorough", max_examples=300, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI")
                                     else "dev"))
