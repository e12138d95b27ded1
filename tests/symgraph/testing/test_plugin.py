"""The pytest plugin: fixtures in a user's test session, and the hypothesis profile
chosen from the environment."""

import os
import subprocess
import sys
import textwrap

from hypothesis import settings

from symgraph.testing.pytest_plugin import PROFILES, profile_name

USER_TEST = '''
import numpy as np
import symgraph.tensor as T
from hypothesis import given, settings
from symgraph.testing import tensors

def test_fixtures(check_grads, check_mask_invariance, gradient_rng):
    check_grads(lambda x: T.tanh(x), [gradient_rng.normal(size=3)])
    check_mask_invariance(lambda x, m: (x * m).sum(axis=0), np.ones((2, 2)), np.ones((2, 2)))

@given(x=tensors("float32", (2,)))
def test_given_with_the_session_fixture(check_grads, x):
    check_grads(lambda v: v ** 2, [x])

def test_profile():
    print("PROFILE", settings.get_current_profile_name(), settings().derandomize)
'''


def run_user_session(tmp_path, **env):
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["symgraph.testing.pytest_plugin"]\n')
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TEST))
    environ = {k: v for k, v in os.environ.items()
               if k not in ("CI", "SYMGRAPH_HYPOTHESIS_PROFILE", "HYPOTHESIS_PROFILE")}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s",
                           "-q", str(tmp_path)], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=120)


def test_a_user_session_gets_fixtures_and_the_ci_profile(tmp_path):
    result = run_user_session(tmp_path, CI="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PROFILE symgraph-ci True" in result.stdout
    assert "3 passed" in result.stdout


def test_profile_choice():
    assert profile_name({}) is None
    assert profile_name({"CI": "true"}) == "symgraph-ci"
    assert profile_name({"CI": "1", "SYMGRAPH_HYPOTHESIS_PROFILE": "symgraph-dev"}) == (
        "symgraph-dev")
    ci = settings.get_profile("symgraph-ci")
    assert ci.derandomize and ci.deadline is None and ci.max_examples == 25
    assert set(PROFILES) == {"symgraph-ci", "symgraph-dev"}
