"""The benchmark table compares each system with PyTorch on the same device, and the
GPU peer refuses to run without a GPU."""

import pytest

from benchmarks.harness import SYSTEMS, Result, SystemUnavailable
from benchmarks.run import format_table, machine_info


def _row(table: str, system: str) -> list[str]:
    return next(line.split() for line in table.splitlines() if f" {system} " in f" {line} ")


def test_ratios_are_taken_against_pytorch_on_the_same_device():
    results = [Result("w", "symgraph-numba", tokens_per_s=300.0, loss_fell=True),
               Result("w", "torch", tokens_per_s=100.0, loss_fell=True),
               Result("w", "symgraph-cuda", tokens_per_s=500.0, loss_fell=True),
               Result("w", "torch-cuda", tokens_per_s=1000.0, loss_fell=True)]
    table = format_table(results)
    assert _row(table, "symgraph-numba")[-1] == "3.00"
    assert _row(table, "symgraph-cuda")[-1] == "0.50"
    assert _row(table, "torch-cuda")[-1] == "1.00"


def test_machine_info_lists_the_gpus():
    assert isinstance(machine_info()["gpus"], list)


def test_the_pytorch_gpu_peer_needs_a_gpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemUnavailable, match="no CUDA device"):
        SYSTEMS["torch-cuda"](None, None)
