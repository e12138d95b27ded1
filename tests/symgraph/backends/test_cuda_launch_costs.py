"""What the CUDA backend does to keep numba-cuda's host costs out of a step: buffers kept
per shape, views made once per buffer, and kernels launched past numba-cuda's dispatch
(on a real GPU) with the same results."""

import ctypes
import gc

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from tests.helpers import require_cuda_backend

require_cuda_backend()

from numba import cuda  # noqa: E402  (numba-cuda is installed: checked above)
from numba.cuda import types  # noqa: E402

from symgraph.backends.cuda import launcher, memory  # noqa: E402
from symgraph.backends.cuda.device import simulator_enabled  # noqa: E402


def test_a_row_view_is_made_once_and_reads_the_row():
    array = cuda.to_device(np.arange(12, dtype="float32").reshape(3, 4))
    first = memory.row(array, 1)
    assert memory.row(array, 1) is first
    np.testing.assert_array_equal(first.copy_to_host(), [4, 5, 6, 7])
    first.copy_to_device(np.zeros(4, "float32"))  # a view: writes land in the array
    np.testing.assert_array_equal(array.copy_to_host()[1], 0)


def test_a_reshaped_view_is_made_once_and_the_array_is_its_own_shape():
    array = cuda.to_device(np.arange(6, dtype="float32").reshape(2, 3))
    assert memory.reshaped(array, (2, 3)) is array
    vector = memory.flat(array)
    assert vector.shape == (6,) and memory.flat(array) is vector
    np.testing.assert_array_equal(memory.reshaped(array, (3, 2)).copy_to_host(),
                                  np.arange(6).reshape(3, 2))


def test_views_are_forgotten_with_their_array():
    array = cuda.to_device(np.zeros((2, 2), "float32"))
    memory.row(array, 0)
    key = id(array)
    assert key in memory._VIEWS
    del array
    gc.collect()
    assert key not in memory._VIEWS


def test_a_site_keeps_buffers_of_recent_shapes():
    site = memory.Site("float32")
    a = site.get((2, 3))
    b = site.get((4, 3))
    assert a is not b and site.get((2, 3)) is a and site.get((4, 3)) is b
    for k in range(memory.Site.SPARE + 1):  # more other shapes than it keeps
        site.get((5 + k,))
    assert site.get((2, 3)) is not a  # the least recently used went first
    assert len(site.spare) <= memory.Site.SPARE


def test_a_scan_over_changing_lengths_reuses_its_buffers_correctly():
    x, h0 = T.fmatrix("x"), T.fvector("h0")
    w = sg.shared(np.random.default_rng(0).normal(size=(3, 3)).astype("float32"), name="w")
    hs, _ = sg.scan(lambda x_t, h: T.tanh(x_t + T.dot(h, w)), sequences=[x], outputs_info=[h0])
    cost = hs.sum()
    args = [x, h0], [hs, cost, sg.grad(cost, w)]
    fast, reference = sg.function(*args, mode="cuda"), sg.function(*args, mode="numpy")
    rng = np.random.default_rng(1)
    for n in (3, 5, 3, 1, 5, 3):  # lengths come back: buffers and views are reused
        values = rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=3).astype("float32")
        for got, want in zip(fast(*values), reference(*values)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_scalars_are_marshalled_with_numba_cudas_ctypes():
    assert launcher._scalar_packer(types.float32) is ctypes.c_float
    assert launcher._scalar_packer(types.float64) is ctypes.c_double
    assert launcher._scalar_packer(types.int64) is ctypes.c_int64
    assert launcher._scalar_packer(types.uint8) is ctypes.c_uint8
    assert launcher._scalar_packer(types.boolean) is bool
    assert launcher._scalar_packer(types.complex64) is None  # not copied: ordinary launch
    assert launcher._arg_type(3) == types.int64
    assert launcher._arg_type(np.float32(1)) == types.float32
    assert launcher._arg_type(np.int32(1)) == types.int32


def _function_and_values():
    x, y = T.fmatrix("x"), T.fmatrix("y")
    out = [T.tanh(x) * 2 + y, T.dot(x, y.T), x.sum(axis=1)]
    rng = np.random.default_rng(2)
    values = [rng.normal(size=(5, 7)).astype("float32") for _ in range(2)]
    return sg.function([x, y], out, mode="cuda"), sg.function([x, y], out, mode="numpy"), values


@pytest.mark.skipif(not simulator_enabled(), reason="on a real GPU the direct path is taken")
def test_the_simulator_launches_the_ordinary_way():
    fast, reference, values = _function_and_values()
    before = launcher.direct_launches()
    for got, want in zip(fast(*values), reference(*values)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert launcher.direct_launches() == before


@pytest.mark.skipif(simulator_enabled(), reason="the direct path needs a real GPU")
def test_launches_past_the_dispatch_give_the_reference_results():
    fast, reference, values = _function_and_values()
    fast(*values)  # the first launches compile, the ordinary way
    before = launcher.direct_launches()
    for _ in range(2):
        for got, want in zip(fast(*values), reference(*values)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert launcher.direct_launches() >= before + 6  # three kernels, twice


def test_cached_views_of_reused_buffers_read_each_call_s_values():
    x = T.fmatrix("x")
    doubled = x * 2  # computed into a buffer the function keeps between calls
    outs = [doubled[1:3] * 3, doubled[1] + 1, doubled[2, 1] * 5, doubled[:, 1:].sum(axis=0)]
    fast, reference = sg.function([x], outs, mode="cuda"), sg.function([x], outs, mode="numpy")
    rng = np.random.default_rng(3)
    for _ in range(3):
        value = rng.normal(size=(4, 3)).astype("float32")
        for got, want in zip(fast(value), reference(value)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_graphs_are_off_in_the_simulator_and_when_turned_off(monkeypatch):
    from symgraph.backends.cuda import graphs

    if simulator_enabled():
        assert not graphs.enabled() and graphs.LoopGraphs().broken
    monkeypatch.setenv("SYMGRAPH_CUDA_GRAPHS", "0")
    assert not graphs.enabled()
    calls = []
    loops = graphs.LoopGraphs()
    for _ in range(3):  # would be captured by the second run, replayed by the third
        assert loops.run([3], lambda: calls.append(1) or "done", lambda r: []) == "done"
    assert len(calls) == 3 and not loops.replays


def _train_with_alternating_lengths():
    """A masked LSTM LM trained on batches of two lengths in turn, in CUDA and numpy
    mode: losses and parameters must agree; returns the graph counts it added."""
    import symgraph.models as M
    from symgraph.backends.cuda import graphs

    def build(mode):
        rng = np.random.default_rng(0)
        ids, targets, mask = T.imatrix("ids"), T.imatrix("targets"), T.fmatrix("mask")
        embed = M.Embedding(7, 4, rng, init_scale=0.1, dtype="float32")
        rnn = M.StackedRNN("lstm", 4, [3], rng, init_scale=0.1, dtype="float32")
        out = M.LogisticRegression(3, 7, rng, init_scale=0.1, dtype="float32")
        hs, _ = rnn(embed(ids), mask)
        cost = M.sequence_cross_entropy(out.logits(hs), targets, mask, normalize="token")
        params = embed.params + rnn.params + out.params
        updates = M.sgd(params, sg.grad(cost, params), 0.5)
        return sg.function([ids, targets, mask], cost, updates=updates, mode=mode), params

    rng = np.random.default_rng(4)
    batches = []
    for n in (2, 2, 3) * 4:  # keys recur (weights in either buffer): captured, replayed
        mask = np.ones((n, 3), "float32")
        mask[n - 1:, 1] = 0.0
        batches.append((rng.integers(0, 7, (n, 3)).astype("int32"),
                        rng.integers(0, 7, (n, 3)).astype("int32"), mask))
    (fast, fast_params), (reference, ref_params) = build("cuda"), build("numpy")
    before = dict(graphs.STATS)
    for batch in batches:
        np.testing.assert_allclose(fast(*batch), reference(*batch), rtol=1e-4)
    for got, want in zip(fast_params, ref_params):
        np.testing.assert_allclose(got.get_value(), want.get_value(), rtol=1e-3, atol=1e-5)
    return {k: graphs.STATS[k] - before[k] for k in before}


@pytest.mark.skipif(simulator_enabled(), reason="CUDA graphs need a real GPU")
def test_scan_loops_replayed_as_graphs_train_like_the_reference():
    added = _train_with_alternating_lengths()
    assert added["failed"] == 0 and added["replayed"] > 0


class _RecordedReplay:
    """A CUDA graph emulated: the launches and copies a loop issued while it was
    'captured' (nothing ran), issued again in order by ``launch``."""

    def __init__(self, issued, results, owned, launch, copy):
        self.issued, self.results, self.owned = issued, results, owned
        self.real = {"launch": launch, "copy": copy}

    def valid(self):
        return all(site.get(array.shape) is array for site, array in self.owned)

    def launch(self):
        for kind, args in self.issued:
            self.real[kind](*args)


@pytest.fixture
def recorded_capture(monkeypatch):
    """Graphs emulated in the simulator: a capture records the launches and copies a
    loop issues (running none of them, as a CUDA capture runs nothing) and a replay
    issues them again, without running any of the loop's Python."""
    from symgraph.backends.cuda import graphs, launcher

    def capture(loop, owned):
        issued = []
        real_launch, real_copy = launcher.launch, launcher.copy
        monkeypatch.setattr(launcher, "launch", lambda *a: issued.append(("launch", a)))
        monkeypatch.setattr(launcher, "copy", lambda *a: issued.append(("copy", a)))
        graphs._STATE["capturing"] = True
        try:
            results = loop()
        finally:
            graphs._STATE["capturing"] = False
            monkeypatch.setattr(launcher, "launch", real_launch)
            monkeypatch.setattr(launcher, "copy", real_copy)
        return _RecordedReplay(issued, results, owned(results), real_launch, real_copy)

    if not simulator_enabled():
        pytest.skip("on a GPU the real graphs are tested")
    monkeypatch.setattr(graphs, "_capture", capture)
    monkeypatch.setattr(graphs, "enabled", lambda: True)


def test_loops_replayed_from_their_recorded_launches_train_like_the_reference(
        recorded_capture):
    """What graphs assume, checked in the simulator: a loop is its launches and copies,
    so a replay that runs none of its Python trains the LSTM like the reference."""
    added = _train_with_alternating_lengths()
    assert added["failed"] == 0 and added["captured"] >= 4 and added["replayed"] >= 4


def test_replays_read_a_shared_weight_from_whichever_buffer_holds_it(recorded_capture):
    """An update leaves a shared weight in one of two buffers in turn: a loop reading it
    is keyed by its address, so no replay reads the stale one."""
    from symgraph.backends.cuda import graphs

    def build(mode):
        x, h0 = T.fmatrix("x"), T.fvector("h0")
        w = sg.shared(np.random.default_rng(0).normal(size=(3, 3)).astype("float32") * 0.5)
        hs, _ = sg.scan(lambda x_t, h: T.tanh(x_t + T.dot(h, w)), sequences=[x],
                        outputs_info=[h0])
        cost = hs.sum()
        return sg.function([x, h0], cost, updates=[(w, w - 0.1 * sg.grad(cost, w))],
                           mode=mode), w

    (fast, w_fast), (reference, w_ref) = build("cuda"), build("numpy")
    rng = np.random.default_rng(5)
    before = dict(graphs.STATS)
    for n in (2, 2, 3) * 3:  # a length meets the weight in either buffer
        values = rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=3).astype("float32")
        np.testing.assert_allclose(fast(*values), reference(*values), rtol=1e-5)
    np.testing.assert_allclose(w_fast.get_value(), w_ref.get_value(), rtol=1e-5, atol=1e-6)
    assert graphs.STATS["replayed"] > before["replayed"]


class _FakeReplay:
    """Stands in for a captured graph: ``launch`` counts, ``valid`` asks the sites."""

    def __init__(self, results, owned):
        self.results, self.owned, self.launches = results, owned, 0

    def valid(self):
        return all(site.get(array.shape) is array for site, array in self.owned)

    def launch(self):
        self.launches += 1


@pytest.fixture
def fake_capture(monkeypatch):
    """Loops 'captured' by running them once (no GPU needed); graphs turned on."""
    from symgraph.backends.cuda import graphs

    captured = []

    def capture(loop, owned):
        results = loop()
        captured.append(_FakeReplay(results, owned(results)))
        return captured[-1]

    monkeypatch.setattr(graphs, "_capture", capture)
    monkeypatch.setattr(graphs, "enabled", lambda: True)
    return captured


def test_a_loop_is_captured_on_its_second_sighting_and_replayed_after(fake_capture):
    from symgraph.backends.cuda import graphs

    site = memory.Site("float32")
    runs = []

    def loop():
        runs.append(1)
        return "carries", [site.get((2, 3))]

    def owned(results):
        return [(site, results[1][0])]

    loops = graphs.LoopGraphs()
    for _ in range(4):  # run, capture (runs once while capturing), replay, replay
        assert loops.run([5], loop, owned)[0] == "carries"
    assert len(runs) == 2 and len(fake_capture) == 1 and fake_capture[0].launches == 3
    buffer = site.array
    site.get((7, 3))  # another length comes between: the replay takes its buffer back
    assert loops.run([5], loop, owned)[0] == "carries" and site.array is buffer
    assert len(runs) == 2 and fake_capture[0].launches == 4
    site.array = memory.Site("float32").get((2, 3))  # the buffer changed hands: stale
    stale = graphs.STATS["stale"]
    loops.run([5], loop, owned)
    assert graphs.STATS["stale"] == stale + 1 and len(runs) == 3  # ran, key seen: recapture
    loops.run([5], loop, owned)
    assert len(fake_capture) == 2


def test_keys_tell_inputs_apart_and_a_failed_capture_turns_a_loop_off(fake_capture,
                                                                     monkeypatch):
    from symgraph.backends.cuda import graphs

    loops, runs = graphs.LoopGraphs(), []

    def loop():
        runs.append(1)
        return "c", []

    for parts in ([3, np.float32(1)], [3, np.float32(2)], [4, np.float32(1)]):
        loops.run(parts, loop, lambda r: [])
    assert len(runs) == 3 and not fake_capture  # three keys, each seen once
    loops.run([3, np.float32(2)], loop, lambda r: [])
    assert len(fake_capture) == 1
    assert loops.run(None, loop, lambda r: []) == ("c", [])  # cannot be captured: runs
    assert len(runs) == 5

    def failing(loop, owned):
        raise graphs.CaptureError("the driver refused")

    monkeypatch.setattr(graphs, "_capture", failing)
    failed = graphs.STATS["failed"]
    loops.run([4, np.float32(1)], loop, lambda r: [])  # second sighting: capture fails
    assert loops.broken and graphs.STATS["failed"] == failed + 1 and len(runs) == 6
    loops.run([3, np.float32(2)], loop, lambda r: [])  # off for good: runs, no replay
    assert len(runs) == 7


def test_at_most_max_loops_are_kept(fake_capture, monkeypatch):
    from symgraph.backends.cuda import graphs

    monkeypatch.setattr(graphs.LoopGraphs, "MAX", 2)
    loops = graphs.LoopGraphs()
    for n in (1, 2, 3):
        for _ in range(2):
            loops.run([n], lambda: ("c", []), lambda r: [])
    assert len(loops.replays) == 2 and len(fake_capture) == 3


@pytest.mark.skipif(simulator_enabled(), reason="CUDA graphs need a real GPU")
def test_a_loop_the_driver_will_not_capture_runs_from_python():
    """A step that reads a device value on the host (a sum to 0-d, passed to a kernel as
    a scalar) cannot be captured: the capture fails once, the loop runs as before."""
    from symgraph.backends.cuda import graphs

    x, h0 = T.fmatrix("x"), T.fvector("h0")
    hs, _ = sg.scan(lambda x_t, h: T.tanh(h * 0.5 + x_t * x_t.sum()), sequences=[x],
                    outputs_info=[h0])
    fast, reference = sg.function([x, h0], hs, mode="cuda"), sg.function([x, h0], hs)
    rng = np.random.default_rng(6)
    values = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3).astype("float32")
    failed = graphs.STATS["failed"]
    for _ in range(3):  # seen, capture refused, run
        np.testing.assert_allclose(fast(*values), reference(*values), rtol=1e-5, atol=1e-6)
    assert graphs.STATS["failed"] == failed + 1
