"""``python -m benchmarks.blas_phases``: rounds of timed products on one and two BLAS
threads, and the BLAS thread count left as it was."""

import pytest

from benchmarks import blas_phases
from symgraph.backends.numba import blas


def test_rounds_time_both_thread_counts_and_restore_the_setting():
    blas.set_threads(2)
    rounds = blas_phases.measure(0.05, (8, 16, 32), calls=20)
    assert rounds and all(len(r) == 4 for r in rounds)
    for elapsed, one, two, ratio in rounds:
        assert elapsed > 0 and one > 0 and two > 0
        assert ratio == pytest.approx(one / two)
    assert blas.get_threads() == 2


def test_the_command_prints_a_summary(capsys):
    blas_phases.main(["--seconds", "0", "--shape", "4,4,4", "--calls", "5"])
    out = capsys.readouterr().out
    assert out.startswith("elapsed_s") and "speedup of two threads: median" in out


def test_a_bad_shape_is_refused(capsys):
    with pytest.raises(SystemExit):
        blas_phases.main(["--shape", "4,4"])
    assert "--shape takes three positive lengths" in capsys.readouterr().err
