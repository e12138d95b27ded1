"""Where a CUDA training step's time goes: ``python -m benchmarks.cuda_costs`` (on a GPU).

::

    python -m benchmarks.cuda_costs [--workload NAME ...] [--steps N] [--profile]

First the host cost of numba-cuda's building blocks (a kernel launch through its
dispatch, a device-array view, an allocation, a small copy to the host) and our GEMM
beside ``torch.mm`` when PyTorch sees the GPU; then, per workload, the ``symgraph-cuda``
training step: milliseconds per step, kernel launches per step (how many went past
numba-cuda's dispatch), and the scan loops captured and replayed as CUDA graphs.
``--profile`` adds the step's cProfile (the 25 costliest functions by own time).
Without a GPU it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import sys
import time

import numpy as np

from benchmarks.data import prepare
from benchmarks.workloads import WORKLOADS, get_workload

__all__ = ["main", "parse_args"]


def _per_call(fn, calls: int, sync=None) -> float:
    """Seconds per call of ``fn`` (``sync()`` after the last)."""
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if sync is not None:
        sync()
    return (time.perf_counter() - start) / calls


def building_blocks(calls: int = 2000) -> list[str]:
    """Lines: host microseconds per numba-cuda launch, view, allocation and copy, and
    our GEMM against ``torch.mm`` at the workloads' per-step sizes."""
    from numba import cuda

    from symgraph.backends.cuda import gemm

    @cuda.jit
    def axpy(x, y, out, a):
        i = cuda.grid(1)
        if i < out.size:
            out[i] = a * x[i] + y[i]

    x, y = cuda.to_device(np.ones(8192, np.float32)), cuda.to_device(np.ones(8192, np.float32))
    out, stacked = cuda.device_array(8192, np.float32), cuda.device_array((64, 32, 512), "f4")
    launch = _per_call(lambda: axpy[32, 256](x, y, out, np.float32(2)), calls, cuda.synchronize)
    lines = [
        f"numba-cuda launch (3 arrays, 1 scalar): {1e6 * launch:.1f} us",
        f"device-array view H[t]: {1e6 * _per_call(lambda: stacked[3], calls):.1f} us",
        "device_array((32, 512)): "
        f"{1e6 * _per_call(lambda: cuda.device_array((32, 512), np.float32), calls):.1f} us",
        f"copy_to_host of 32 KB: {1e6 * _per_call(x.copy_to_host, calls // 4):.1f} us",
    ]
    try:
        import torch
    except ImportError:
        torch = None
    for m, k, n in ((32, 512, 2048), (64, 128, 512), (2048, 512, 2048)):
        a = cuda.to_device(np.random.rand(m, k).astype(np.float32))
        b = cuda.to_device(np.random.rand(k, n).astype(np.float32))
        c = cuda.device_array((m, n), np.float32)
        ours = _per_call(functools.partial(gemm.gemm, a, b, c, False, False), 100,
                         cuda.synchronize)
        line = (f"gemm {m}x{k}x{n}: symgraph {1e6 * ours:.1f} us "
                f"({2 * m * n * k / ours / 1e12:.2f} TFLOP/s)")
        if torch is not None and torch.cuda.is_available():
            ta, tb = torch.rand(m, k, device="cuda"), torch.rand(k, n, device="cuda")
            theirs = _per_call(functools.partial(torch.mm, ta, tb), 100, torch.cuda.synchronize)
            line += f"; torch.mm {1e6 * theirs:.1f} us"
        lines.append(line)
    return lines


def step_costs(name: str, steps: int, profile: bool) -> list[str]:
    """Lines: the ``symgraph-cuda`` training step of workload ``name``."""
    from benchmarks.symgraph_systems import SymgraphTrainer
    from symgraph.backends.cuda import graphs, jit, launcher

    data = prepare(get_workload(name))
    trainer = SymgraphTrainer(data.workload, data, "cuda")
    batches = [data.batches[i % len(data.batches)] for i in range(2 * len(data.batches))]
    for batch in batches:  # warm-up: every padded length twice, so loops are captured
        trainer.step(batch)
    launches = {"n": 0}
    ordinary = jit.launcher.launch

    def counting(*args, **kwargs):
        launches["n"] += 1
        ordinary(*args, **kwargs)

    jit.launcher.launch = counting
    try:
        direct, replayed = launcher.direct_launches(), graphs.STATS["replayed"]
        start, tokens = time.perf_counter(), 0
        for batch in batches[:steps]:
            float(trainer.step(batch))
            tokens += batch.n_tokens
        seconds = time.perf_counter() - start
    finally:
        jit.launcher.launch = ordinary
    done = min(steps, len(batches))
    lines = [f"{name}: {1e3 * seconds / done:.2f} ms per step, {tokens / seconds:,.0f} tokens/s, "
             f"{launches['n'] / done:.0f} launches per step outside replayed loops "
             f"({launcher.direct_launches() - direct} of {launches['n']} past the dispatch), "
             f"{graphs.STATS['replayed'] - replayed} loops replayed; graphs so far {graphs.STATS}"]
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        for batch in batches[:steps]:
            float(trainer.step(batch))
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
        lines.append(text.getvalue())
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The CLI arguments."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.cuda_costs",
                                description=__doc__.split("\n")[0])
    p.add_argument("--workload", nargs="+", choices=list(WORKLOADS),
                   default=["lstm-dinos", "char-512"], help="workloads (default: %(default)s)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--profile", action="store_true", help="also print a cProfile per workload")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from symgraph.backends.cuda.device import CudaUnavailableError, require_cuda, simulator_enabled

    try:
        require_cuda()
    except CudaUnavailableError as exc:
        print(f"benchmarks.cuda_costs: {exc}", file=sys.stderr)
        return 2
    if simulator_enabled():
        print("benchmarks.cuda_costs: numba-cuda's simulator is on (NUMBA_ENABLE_CUDASIM=1): "
              "its costs say nothing of a GPU's", file=sys.stderr)
        return 2
    for line in building_blocks():
        print(line)
    for name in args.workload:
        for line in step_costs(name, args.steps, args.profile):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
