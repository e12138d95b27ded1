"""The numba backend's helper process (``helper``): kernels queued while the graph
function is typed are sent to a forked child, which compiles them into the disk cache
while this process goes on, then takes what is left from the back of the queue;
declared result types are checked against the compiled kernels before anything runs."""

import os
import pickle
import subprocess
import sys
import textwrap
import time
import uuid

import numba
import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numba import compiler, diskcache, emitter, helper

pytestmark = pytest.mark.skipif(not helper.available(), reason="the helper needs fork (Linux)")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty disk cache for this test only."""
    monkeypatch.setattr(diskcache, "_dir", tmp_path)
    return tmp_path


def _kernels(n):
    """``n`` new kernels (unique names: nothing compiled or cached yet)."""
    found = []
    for k in range(n):
        name = f"k_test_{uuid.uuid4().hex[:12]}"
        diskcache.define_kernel(name, f"def {name}(x):\n    return x * {k + 2}.0\n")
        found.append(diskcache.load_kernel(name))
    return found


def test_the_child_compiles_what_it_is_sent_into_the_disk_cache(fresh_cache):
    """Kernels queued before and after the fork reach the child; it compiles them in
    order, the parent takes what is left from the back, and every kernel is then in
    this process or in the disk cache, all specialisations of one kernel in one place."""
    kernels = _kernels(4)
    f32 = (numba.types.Array(numba.types.float32, 1, "C"),)
    f64 = (numba.types.Array(numba.types.float64, 1, "C"),)
    with helper.deferring():
        assert all(helper.defer(k, f32) for k in kernels[:2])
        assert helper.defer(kernels[0], f32) and len(helper._queue) == 2  # once each
        helper.start()
        assert all(helper.defer(k, f32) for k in kernels[2:])  # sent after the fork
        assert helper.defer(kernels[0], f64) and len(helper._queue) == 4
        deadline = time.monotonic() + 60
        while not helper._claims[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert helper._claims[0] == helper._CHILD, "the child never claimed the first kernel"
        helper.finish()
        claims = list(helper._claims[:4])
    assert helper._child is None
    for kernel, who in zip(kernels, claims):
        signatures = [f32, f64] if kernel is kernels[0] else [f32]
        if who == helper._PARENT:
            assert all(s in kernel.overloads for s in signatures)
            continue
        assert who == helper._CHILD and not any(s in kernel.overloads for s in signatures)
        for s in signatures:
            kernel.compile(s)
        assert sum(kernel.stats.cache_hits.values()) == len(signatures)  # from its disk cache


def test_the_child_saves_helpers_only_once_the_parent_is_idle(fresh_cache, monkeypatch):
    """The child saves the kernels it claimed at once, and the helpers they call (kept
    back) only after the parent stops compiling (two processes adding entries to one
    index file can corrupt it)."""
    from numba.core import caching

    from symgraph.backends.numba import prelude

    (kernel,) = _kernels(1)
    saved = []
    monkeypatch.setattr(caching.Cache, "save_overload",
                        lambda self, sig, data: saved.append(self._py_func.__name__))
    later: list = []
    save = helper._save_only({id(kernel.py_func)}, later)  # as in the child
    caching.Cache.save_overload(kernel._cache, None, None)
    caching.Cache.save_overload(prelude.sg_exp32._cache, None, None)
    assert saved == [kernel.py_func.__name__]
    assert [c._py_func.__name__ for c, _, _ in later] == ["sg_exp32"]
    with helper.deferring():
        assert helper._parent_idle.value == 0
        helper._save_when_parent_idle(save, later, parent=os.getpid() + 1)  # parent gone
        assert saved == [kernel.py_func.__name__]
        helper._parent_idle.value = 1
        helper._save_when_parent_idle(save, later, parent=os.getppid())
    assert saved == [kernel.py_func.__name__, "sg_exp32"]


def test_kernels_compiled_here_are_not_queued(fresh_cache):
    (kernel,) = _kernels(1)
    argtypes = (numba.types.Array(numba.types.float64, 1, "C"),)
    kernel.compile(argtypes)
    with helper.deferring():
        assert not helper.defer(kernel, argtypes)
    assert not helper.defer(_kernels(1)[0], argtypes)  # not deferring: compile now


def test_a_cold_build_with_the_helper_gives_the_reference_results(tmp_path):
    """A masked LSTM training step, built in a new process with an empty cache: the
    typing queues its kernels, a helper starts, and the step matches ``mode='numpy'``."""
    script = textwrap.dedent("""
        import numpy as np, symgraph as sg, symgraph.tensor as T, symgraph.models as M
        from symgraph.backends.numba import helper
        rng = np.random.default_rng(0)
        ids, mask = T.imatrix("ids"), T.fmatrix("mask")
        embed = M.Embedding(7, 5, rng, dtype="float32")
        rnn = M.StackedRNN("lstm", 5, (6,), rng, dtype="float32")
        out = M.LogisticRegression(6, 7, rng, dtype="float32")
        hs, _ = rnn(embed(ids), mask, None)
        cost = M.sequence_cross_entropy(out.logits(hs), ids, mask, normalize="token")
        params = embed.params + rnn.params + out.params
        grads = sg.grad(cost, params)
        fns = [sg.function([ids, mask], [cost] + grads, mode=m) for m in ("numba", "numpy")]
        x = rng.integers(0, 7, (4, 3)).astype("int32")
        m = np.ones((4, 3), "float32"); m[2:, 1] = 0
        got, want = fns[0](x, m), fns[1](x, m)
        assert all(np.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(got, want))
        print("queued", helper.STATS["queued"], "helpers", helper.STATS["helpers"])
    """)
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path), SYMGRAPH_NUMBA_STRICT="1")
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    words = run.stdout.split()
    assert int(words[words.index("queued") + 1]) >= 5
    assert int(words[words.index("helpers") + 1]) >= 1


def _wrongly_declared(dtype, ndim):
    """``emitter.result_type_source`` gone wrong: float64 where float32 is returned."""
    return emitter_source(dtype.replace("float32", "float64"), ndim)


emitter_source = emitter.result_type_source


def test_a_wrong_declaration_is_rebuilt_without_declarations(fresh_cache, monkeypatch):
    monkeypatch.setattr(emitter, "result_type_source", _wrongly_declared)
    monkeypatch.setattr(compiler, "STRICT", False)
    before = compiler.STATS["wrong_declarations"]
    x = T.fmatrix("x")
    f = sg.function([x], T.tanh(x * 1.234567) + 0.5, mode="numba")
    assert compiler.STATS["wrong_declarations"] == before + 1
    assert "sg_call_as" not in f.__source__  # rebuilt with plain calls
    value = np.linspace(-2, 2, 6, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(f(value), np.tanh(value * np.float32(1.234567)) + 0.5,
                               rtol=1e-6)
    kept = list(fresh_cache.glob("g_*.py"))  # the wrongly typed function was forgotten
    assert kept and all("sg_call_as" not in path.read_text() for path in kept)


def test_a_wrong_declaration_is_an_error_when_strict(fresh_cache, monkeypatch):
    monkeypatch.setattr(emitter, "result_type_source", _wrongly_declared)
    monkeypatch.setattr(compiler, "STRICT", True)
    x = T.fmatrix("x")
    with pytest.raises(compiler.WrongDeclaration, match="typed with"):
        sg.function([x], T.tanh(x * 2.345678) - 0.5, mode="numba")


def test_cached_call_sites_without_a_kernel_are_rebuilt_not_called(fresh_cache, monkeypatch):
    """A cached graph function whose saved call sites miss a kernel (a stale entry) is
    never run with a null address: the build forgets it and compiles again."""
    x = T.fmatrix("x")
    sg.function([x], T.tanh(x * 5.6789) + 0.25, mode="numba")
    [sites] = fresh_cache.glob("g_*.sites")
    sites.write_bytes(pickle.dumps([]))
    monkeypatch.setattr(compiler, "_MEMORY", {})  # as in a new process: load from disk
    monkeypatch.setattr(compiler, "STRICT", False)
    before = compiler.STATS["wrong_declarations"]
    f = sg.function([x], T.tanh(x * 5.6789) + 0.25, mode="numba")
    assert compiler.STATS["wrong_declarations"] == before + 1
    value = np.linspace(-2, 2, 6, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(f(value), np.tanh(value * np.float32(5.6789)) + 0.25,
                               rtol=1e-6)


@pytest.mark.parametrize("failure", ["dies", "hangs"])
def test_a_child_that_dies_or_hangs_costs_only_time(fresh_cache, monkeypatch, failure):
    """The child only warms the disk cache: if it exits at once, or hangs until the
    parent gives up on it and kills it, the parent compiles everything itself."""
    def broken(mine, later):
        if failure == "hangs":
            time.sleep(600)
        raise RuntimeError("the child fails before compiling anything")

    monkeypatch.setattr(helper, "_save_only", broken)  # first thing in the child
    monkeypatch.setattr(helper, "PATIENCE_S", 0.5)
    helpers = helper.STATS["helpers"]
    x = T.fmatrix("x")
    scale = {"dies": 3.4567, "hangs": 4.5678}[failure]  # kernels new to this process
    started = time.monotonic()
    f = sg.function([x], [T.tanh(x * scale) + 1.0, (x * x).sum(axis=0)], mode="numba")
    assert helper.STATS["helpers"] == helpers + 1
    assert time.monotonic() - started < 60
    value = np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3)
    got = f(value)
    want = np.tanh(value * np.float32(scale)) + 1
    np.testing.assert_allclose(got[0], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[1], (value * value).sum(axis=0), rtol=1e-6)


def test_one_job_compiles_declared_kernels_in_this_process(fresh_cache, monkeypatch):
    """``SYMGRAPH_NUMBA_JOBS=1``: nothing is queued, no helper starts, and a declared
    kernel is compiled while the graph function is typed (its own result type used)."""
    monkeypatch.setattr(helper, "JOBS", 1)
    before = dict(helper.STATS)
    x = T.fmatrix("x")
    f = sg.function([x], T.nnet.sigmoid(x * 5.6789) - 0.25, mode="numba")
    assert "sg_call_as" in f.__source__
    assert helper.STATS == before
    value = np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3)
    want = 1 / (1 + np.exp(-value * np.float32(5.6789))) - 0.25
    np.testing.assert_allclose(f(value), want, rtol=1e-6, atol=1e-6)


def test_compiling_a_queued_kernel_here_claims_it_or_waits_for_the_child(fresh_cache):
    """A call site without a declared type compiles its kernel in this process: first
    it takes the kernel's queue entry (the child then skips it) or, if the child has it,
    waits for the child to finish."""
    first, second = _kernels(2)
    f32 = (numba.types.Array(numba.types.float32, 1, "C"),)
    with helper.deferring():
        assert helper.defer(first, f32)
        helper.compiling_here(first)  # no child yet: nothing to do
        assert helper._claims[0] == 0
        helper.start()
        assert helper.defer(second, f32)
        deadline = time.monotonic() + 60
        while not (helper._claims[0] and helper._claims[1]) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert helper._claims[0] == helper._claims[1] == helper._CHILD
        helper.compiling_here(second)  # the child has it: wait for the child
        assert helper._child is None
        assert helper.defer(_kernels(1)[0], f32)  # still queued, compiled at the end
    first.compile(f32)
    second.compile(f32)
    assert sum(first.stats.cache_hits.values()) == sum(second.stats.cache_hits.values()) == 1
