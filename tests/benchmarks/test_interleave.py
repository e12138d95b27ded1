"""``benchmarks.interleave``: windows taken in turns, ratios per round, and a whole
interleaved measurement of two cheap systems in spawned processes."""

import numpy as np

from benchmarks.data import Batch, Dataset
from benchmarks.harness import SYSTEMS
from benchmarks.interleave import measure_interleaved, round_ratios, take_turns
from benchmarks.workloads import get_workload


class _Recorder:
    def __init__(self, name, log, rate):
        self.name, self.log, self.rate = name, log, rate

    def window(self):
        self.log.append(self.name)
        return self.rate


def test_turns_alternate_and_ratios_pair_rounds():
    log: list = []
    workers = {"a": _Recorder("a", log, 200.0), "b": _Recorder("b", log, 100.0)}
    rates = take_turns(workers, rounds=3, settle_s=0.0)
    assert log == ["a", "b", "b", "a", "a", "b"]
    assert rates == {"a": [200.0] * 3, "b": [100.0] * 3}
    assert round_ratios(rates, "b") == {"a": [2.0] * 3, "b": [1.0] * 3}


class _SleepyTrainer:
    """A trainer whose step takes ``seconds`` and whose loss falls."""

    def __init__(self, seconds):
        self.seconds, self.loss = seconds, 3.0

    def step(self, batch):
        import time

        time.sleep(self.seconds)
        self.loss *= 0.99
        return self.loss


def _tiny_dataset():
    ids = np.zeros((3, 2), np.int64)
    batch = Batch(index=0, inputs=ids, targets=ids, mask=np.ones((3, 2), np.float32),
                  lengths=np.array([3, 3]), n_tokens=6, reset=True)
    return Dataset(workload=get_workload("lstm-dinos"), vocab=("a", "b"), batches=[batch],
                   path="none")


def _fast(workload, data):
    return _SleepyTrainer(0.001)


def _slow(workload, data):
    return _SleepyTrainer(0.002)


def test_two_systems_measured_in_turns():
    """Each system in a spawned process of its own; one that is not registered is a skip;
    the ratios are per round, to the first system (no PyTorch here)."""
    opts = {"budget_s": 0.6, "windows": 3, "min_window_s": 0.05, "peak_gflops": None,
            "settle_s": 0.0}
    assert "absent" not in SYSTEMS
    results = measure_interleaved(["fast", "slow", "absent"], _tiny_dataset(), opts,
                                  log=lambda line: None,
                                  factories={"fast": _fast, "slow": _slow})
    assert results["absent"] == "not registered"
    fast, slow = results["fast"], results["slow"]
    assert len(fast.window_tokens_per_s) == len(slow.window_tokens_per_s) == 3
    assert fast.tokens_per_s > 1.3 * slow.tokens_per_s
    assert fast.round_ratios == [1.0] * 3 and all(r < 0.77 for r in slow.round_ratios)
    assert fast.loss_fell and slow.loss_fell and fast.error is None
