"""pytest plugin: fixtures and hypothesis profiles for testing symgraph models.

Enable it in the root ``conftest.py`` of your tests::

    pytest_plugins = ["symgraph.testing.pytest_plugin"]

Fixtures
--------
``check_grads``, ``check_mask_invariance`` (session scope, so usable in ``@given``
tests)
    The checks of :mod:`symgraph.testing.checks`, run on the backend chosen with
    ``--symgraph-mode`` (default ``numpy``, the reference interpreter).
``gradient_rng``
    A ``numpy.random.Generator`` seeded from the test's id (and ``--symgraph-seed``):
    the same numbers on every run of that test. Function scope: use it in plain tests;
    in ``@given`` tests draw seeds with hypothesis instead.

Hypothesis profiles
-------------------
``symgraph-ci``
    Derandomized (the same examples on every run), 25 examples, no deadline (the
    first call compiles), no example database, failing examples printed as blobs.
``symgraph-dev``
    Random, 25 examples, no deadline.

The profile loaded is named by ``SYMGRAPH_HYPOTHESIS_PROFILE``; else ``symgraph-ci``
when ``CI`` is set; else ``symgraph-dev`` unless the project's conftest already loaded
a profile of its own.
"""

from __future__ import annotations

import functools
import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from symgraph.testing import checks

__all__ = ["PROFILES", "current_profile", "profile_name"]

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]

#: the registered profiles and their settings
PROFILES = {
    "symgraph-ci": dict(derandomize=True, max_examples=25, deadline=None, database=None,
                        print_blob=True, suppress_health_check=_SLOW),
    "symgraph-dev": dict(max_examples=25, deadline=None, suppress_health_check=_SLOW),
}
for _name, _kwargs in PROFILES.items():
    settings.register_profile(_name, **_kwargs)


def profile_name(environ=None) -> str | None:
    """The profile the environment asks for: ``SYMGRAPH_HYPOTHESIS_PROFILE``, else
    ``'symgraph-ci'`` when ``CI`` is set, else None."""
    environ = os.environ if environ is None else environ
    if environ.get("SYMGRAPH_HYPOTHESIS_PROFILE"):
        return environ["SYMGRAPH_HYPOTHESIS_PROFILE"]
    if environ.get("CI"):
        return "symgraph-ci"
    return None


def pytest_addoption(parser) -> None:
    group = parser.getgroup("symgraph")
    group.addoption("--symgraph-mode", default="numpy",
                    help="backend of the symgraph check fixtures (default: numpy)")
    group.addoption("--symgraph-seed", type=int, default=0,
                    help="extra seed mixed into the gradient_rng fixture")


def current_profile() -> str:
    """The name of the hypothesis profile loaded now."""
    getter = getattr(settings, "get_current_profile_name", None)  # not in old hypothesis
    return getter() if getter else getattr(settings, "_current_profile", None) or "default"


def pytest_configure(config) -> None:
    name = profile_name()
    if name is None and current_profile() == "default":
        name = "symgraph-dev"
    if name is not None:
        settings.load_profile(name)


def pytest_report_header(config) -> str:
    return (f"symgraph: hypothesis profile {current_profile()!r}, checks on "
            f"{_option(config, '--symgraph-mode', 'numpy')!r}")


def _option(config, name, default):
    try:
        return config.getoption(name)
    except ValueError:  # the plugin was loaded after option parsing
        return default


@pytest.fixture(scope="session")
def check_grads(request):
    """:func:`symgraph.testing.check_grads` on the ``--symgraph-mode`` backend."""
    return functools.partial(checks.check_grads,
                             mode=_option(request.config, "--symgraph-mode", "numpy"))


@pytest.fixture(scope="session")
def check_mask_invariance(request):
    """:func:`symgraph.testing.check_mask_invariance` on the ``--symgraph-mode`` backend."""
    return functools.partial(checks.check_mask_invariance,
                             mode=_option(request.config, "--symgraph-mode", "numpy"))


@pytest.fixture
def gradient_rng(request) -> np.random.Generator:
    """A generator seeded by the test's id: reproducible, different per test."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng([seed, _option(request.config, "--symgraph-seed", 0)])
