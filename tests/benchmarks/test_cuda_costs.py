"""``python -m benchmarks.cuda_costs``: its arguments, and that it refuses to measure
anything but a GPU."""

import pytest

from benchmarks import cuda_costs
from symgraph.backends.cuda.device import numba_cuda_installed, simulator_enabled


def test_arguments_and_their_errors(capsys):
    args = cuda_costs.parse_args(["--workload", "char-512", "--steps", "3", "--profile"])
    assert args.workload == ["char-512"] and args.steps == 3 and args.profile
    assert cuda_costs.parse_args([]).workload == ["lstm-dinos", "char-512"]
    for bad in (["--steps", "0"], ["--workload", "nope"]):
        with pytest.raises(SystemExit) as exc:
            cuda_costs.parse_args(bad)
        assert exc.value.code == 2
    assert "--steps must be at least 1" in capsys.readouterr().err


@pytest.mark.skipif(not (numba_cuda_installed() and simulator_enabled()),
                    reason="checks the refusal under numba-cuda's simulator")
def test_the_simulator_is_refused_with_a_reason(capsys):
    assert cuda_costs.main(["--steps", "1"]) == 2
    assert "simulator is on" in capsys.readouterr().err
