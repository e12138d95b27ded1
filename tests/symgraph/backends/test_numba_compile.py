"""The numba backend's compilation: generated source (one line per node, no user
strings), fusion into one loop, the object-mode fallback, caching in-process and on
disk, and run-time errors that match the reference interpreter's."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends import numba_backend
from symgraph.errors import ShapeError
from symgraph.graph import Apply
from symgraph.op import Op
from symgraph.ops.nnet import TargetError
from symgraph.ops.subtensor import IndexOutOfRangeError
from tests.symgraph.backends.test_numba_backend import assert_same

MALICIOUS = "x\nimport os; os.system('echo pwned')  # \u202e"


def test_source_has_one_line_per_node_and_no_user_strings():
    x = T.fmatrix(MALICIOUS)
    w = sg.shared(np.ones((3, 3), "float32"), name=MALICIOUS + "w")
    y = T.tanh(T.dot(x, w) + 1.0).sum(axis=0)
    hs, _ = sg.scan(lambda r, h: h + r, sequences=[x], outputs_info=[T.zeros_like(x[0])],
                    name=MALICIOUS)
    f = sg.function([x], [y, hs], mode="numba")
    source = f.__source__
    for bad in ("pwned", "os.system", "import os", "\u202e"):
        assert bad not in source
    tags = re.findall(r"# \[n(\d+)\] ", source)
    inner = len(f.fgraph.toposort()[-1].op.inner.toposort()) if any(
        type(n.op).__name__ == "Scan" for n in f.fgraph.toposort()) else 0
    assert len(tags) == len(set(tags)) == len(f.fgraph.toposort()) + inner
    assert all(line.isprintable() for line in source.splitlines())
    assert_same(f(np.ones((2, 3), "float32")),
                sg.function([x], [y, hs], mode="numpy")(np.ones((2, 3), "float32")))


def test_generated_code_allocates_through_the_cached_sg_empty():
    """numba compiles its own ``np.empty`` afresh in every process; generated code
    allocates through ``glue.sg_empty``, which numba's disk cache keeps."""
    from symgraph.backends.numba.glue import sg_empty

    x = T.fmatrix("x")
    hs, _ = sg.scan(lambda r, h: T.tanh(h + r), sequences=[x],
                    outputs_info=[T.zeros_like(x[0])])
    f = sg.function([x], [(x * 2.0).sum(axis=0), hs, T.argmax(x, axis=1)], mode="numba")
    assert "np.empty(" not in f.__source__ and "sg_empty(" in f.__source__
    value = np.arange(12, dtype="float32").reshape(4, 3) / 10
    assert_same(f(value), sg.function([x], [(x * 2.0).sum(axis=0), hs, T.argmax(x, axis=1)],
                                      mode="numpy")(value))
    for shape, dtype in (((2, 3), np.float32), (5, np.int64), ((0, 4, 1), np.bool_)):
        out = sg_empty(shape, dtype)
        assert out.shape == np.empty(shape).shape and out.dtype == dtype
        assert out.flags.c_contiguous and out.flags.writeable


def test_elementwise_chain_is_one_loop():
    """Six elementwise ops with a broadcast bias: one kernel call, no temporaries."""
    x, b = T.fmatrix("x"), T.fvector("b")
    y = T.sigmoid(x * 2.0 + b) * T.tanh(x) - 1.0
    f = sg.function([x, b], y, mode="numba")
    main = f.__source__.split("\n\n")[0]
    code = [ln for ln in main.splitlines()[1:] if not ln.strip().startswith(("#", "return"))]
    assert len([ln for ln in code if re.search(r"sg_call(_as)?\(", ln)]) == 1, main
    assert main.count("[fused: ") == 6


class Twice(Op):
    """A toy op with a numpy perform and no numba lowering."""

    def make_node(self, x):
        return Apply(self, [x], [x.type])

    def perform(self, node, inputs):
        return [inputs[0] * 2]


def test_op_without_lowering_falls_back_to_perform_with_a_warning():
    x = T.fmatrix("x")
    y = Twice()(T.exp(x)) + 1
    with pytest.warns(UserWarning, match="Twice"):
        f = sg.function([x], y, mode="numba")
    xv = np.arange(6, dtype="float32").reshape(2, 3) / 6
    assert_same(f(xv), sg.function([x], y, mode="numpy")(xv))


def test_second_function_of_the_same_graph_does_not_compile():
    x = T.fvector("x")
    y = (x * 3.0 + 1.0).sum()
    first = sg.function([x], y, mode="numba")
    before = dict(numba_backend.STATS)
    x2 = T.fvector("other name")
    second = sg.function([x2], (x2 * 3.0 + 1.0).sum(), mode="numba")
    after = numba_backend.STATS
    assert after["compiled"] == before["compiled"]
    assert after["disk_hits"] == before["disk_hits"]
    assert after["memory_hits"] == before["memory_hits"] + 1
    assert second.runner.fn is first.runner.fn
    assert first.runner.compile_s > 0 and first.compile_s >= first.runner.compile_s
    assert float(second(np.ones(4, "float32"))) == 16.0


def test_a_new_process_loads_the_compiled_graph_from_disk(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, symgraph as sg, symgraph.tensor as T
        x = T.fmatrix("x")
        f = sg.function([x], T.tanh(x).sum(axis=1), mode="numba")
        assert np.allclose(f(np.ones((2, 3), "float32")), 3 * np.tanh(1.0))
        print("from_disk", f.runner.from_disk)
    """)
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=True).stdout for _ in range(2)]
    assert "from_disk False" in runs[0] and "from_disk True" in runs[1]


@pytest.mark.parametrize("case", ["broadcast", "index", "target", "reshape", "scan"])
def test_run_time_errors_are_the_reference_errors(case):
    x, idx = T.fmatrix("x"), T.lvector("idx")
    xv = np.ones((2, 3), "float32")
    if case == "broadcast":
        y = T.fmatrix("y")
        f, args, error = sg.function([x, y], x + y, mode="numba"), (xv, np.ones(
            (3, 3), "float32")), ShapeError
    elif case == "index":
        f, args, error = sg.function([x, idx], x[idx], mode="numba"), (
            xv, np.array([0, 5])), IndexOutOfRangeError
    elif case == "target":
        f = sg.function([x, idx], T.nnet.categorical_crossentropy(T.nnet.softmax(x), idx),
                        mode="numba")
        args, error = (xv, np.array([0, 3])), TargetError
    elif case == "reshape":
        f, args, error = sg.function([x], x.reshape((4, -1)), mode="numba"), (xv,), ShapeError
    else:
        seq = T.fmatrix("s")
        hs, _ = sg.scan(lambda a, b, h: h + a + b, sequences=[x, seq],
                        outputs_info=[T.zeros_like(x[0])])
        f, args, error = sg.function([x, seq], hs, mode="numba"), (xv, np.ones(
            (3, 3), "float32")), ShapeError
    with pytest.raises(error):
        f(*args)


def test_inputs_that_are_not_contiguous_or_writable():
    x = T.fmatrix("x")
    f = sg.function([x], x * 2, mode="numba")
    base = np.arange(12, dtype="float32").reshape(3, 4)
    frozen = base.copy()
    frozen.setflags(write=False)
    assert_same([f(base.T), f(base[:, ::2]), f(frozen)], [base.T * 2, base[:, ::2] * 2,
                                                          base * 2])


def test_outputs_never_alias_inputs_or_each_other():
    x = T.fmatrix("x")
    f = sg.function([x], [x, x.T, x.reshape((-1,))], mode="numba")
    xv = np.ones((2, 2), "float32")
    outs = f(xv)
    for out in outs:
        assert not np.shares_memory(out, xv)
    outs[0][0, 0] = 5
    assert xv[0, 0] == 1


def test_the_profile_counts_each_node_in_the_calling_thread_and_the_other_parts(tmp_path):
    """``SYMGRAPH_NUMBA_PROFILE=1``: a loop's count includes its body's (its nodes are
    listed indented below it), and the body's nodes are counted in the calling thread's
    part and, apart, in the other row parts."""
    script = textwrap.dedent("""
        import numpy as np, symgraph as sg, symgraph.tensor as T
        from symgraph.backends.numba import threads
        threads.set_threads(2)
        threads.set_min_rows(1)
        x, h0, w = T.ftensor3("x"), T.fmatrix("h0"), T.fmatrix("w")
        hs, _ = sg.scan(lambda xt, h, w: T.tanh(xt + T.dot(h, w)), sequences=[x],
                        outputs_info=[h0], non_sequences=[w])
        f = sg.function([x, h0, w], hs.sum(), mode="numba")
        rng = np.random.default_rng(0)
        args = [rng.standard_normal(s).astype("float32") for s in [(50, 64, 32), (64, 32),
                                                                   (32, 32)]]
        for _ in range(20):
            f(*args)
        counts, described = f.runner.consts[-2], f.runner.profiled
        scan = next(k for k, (d, text) in enumerate(described) if text.startswith("Scan"))
        body = [k for k, (d, _) in enumerate(described) if d == 1]
        assert described[scan][0] == 0 and body
        assert counts[0, scan] > counts[0, body].sum() > 0  # the loop includes its body
        assert counts[1, body].sum() > 0 and counts[1, scan] == 0  # the other part
        table = f.runner.profile().splitlines()
        assert table[0].split()[:3] == ["share", "calling", "other"]
        assert any(line.endswith("  Scan" + described[scan][1][4:]) for line in table)
        assert any("    Elemwise" in line for line in table)  # a body node, indented
        print("ok")
    """)
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path), SYMGRAPH_NUMBA_PROFILE="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
