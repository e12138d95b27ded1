"""``python -m benchmarks.tiles``: both systems timed, the table printed, bad shapes
refused, the BLAS thread count left as it was."""

import pytest

from benchmarks import tiles
from symgraph.backends.numba import blas


def test_both_products_are_timed_and_the_blas_setting_restored():
    blas.set_threads(2)
    tiled, through_blas = tiles.measure((8, 16, 40), "float32", seconds=0.01)
    assert tiled > 0 and through_blas > 0
    assert blas.get_threads() == 2


def test_the_command_prints_one_row_per_shape(capsys):
    tiles.main(["--shapes", "4,4,4", "5,6,17", "--seconds", "0.01", "--dtype", "float64"])
    lines = capsys.readouterr().out.splitlines()
    assert "BLAS / tiles" in lines[0] and len(lines) == 3
    assert lines[2].split()[:5] == ["5", "x", "6", "x", "17"]


def test_a_bad_shape_is_refused(capsys):
    with pytest.raises(SystemExit):
        tiles.main(["--shapes", "4,4"])
    assert "three positive lengths" in capsys.readouterr().err
