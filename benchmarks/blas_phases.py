"""How much a second BLAS thread speeds up a small product, over time:
``python -m benchmarks.blas_phases``.

::

    python -m benchmarks.blas_phases [--seconds 60] [--shape 64,128,512] [--calls 1000]

Every round times ``--calls`` products ``c + a @ b`` (``a``: m x k, ``b``: k x n, float32,
the compiled code's ``sg_gemm_add``) with the BLAS of compiled code on one thread, then on
two, and prints the microseconds per call and their ratio. The default shape is the
per-step product of ``lstm-dinos``. On the shared 2-core development machine the ratio
switched between about 1.0 and 1.65, for seconds to tens of seconds at a time, with
nothing else of ours running: run this before a benchmark to see which phase the machine is in.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def measure(seconds: float, shape: tuple[int, int, int], calls: int) -> list[tuple]:
    """``(elapsed s, us per call on 1 thread, on 2 threads, ratio)`` per round."""
    import numba

    from symgraph.backends.numba import blas
    from symgraph.backends.numba.products import sg_gemm_add

    m, k, n = shape
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s, dtype=np.float32) for s in ((m, k), (k, n)))
    c, out = rng.standard_normal((m, n), dtype=np.float32), np.empty((m, n), np.float32)

    @numba.njit
    def products(a, b, c, out, count):
        for _ in range(count):
            sg_gemm_add(a, b, c, False, False, out)

    products(a, b, c, out, 2)
    before = blas.get_threads()
    rounds, start = [], time.perf_counter()
    try:
        while not rounds or time.perf_counter() - start < seconds:
            per_call = {}
            for threads in (1, 2):
                blas.set_threads(threads)
                t = time.perf_counter()
                products(a, b, c, out, calls)
                per_call[threads] = (time.perf_counter() - t) / calls * 1e6
            rounds.append((time.perf_counter() - start, per_call[1], per_call[2],
                           per_call[1] / per_call[2]))
    finally:
        if before is not None:
            blas.set_threads(before)
    return rounds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--shape", default="64,128,512", help="m,k,n")
    parser.add_argument("--calls", type=int, default=1000, help="products per timing")
    args = parser.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    if len(shape) != 3 or min(shape) < 1 or args.calls < 1:
        parser.error("--shape takes three positive lengths m,k,n and --calls a positive count")
    rounds = measure(args.seconds, shape, args.calls)
    print("elapsed_s  one_thread_us  two_threads_us  speedup")
    for elapsed, one, two, ratio in rounds:
        print(f"{elapsed:9.1f}  {one:13.1f}  {two:14.1f}  {ratio:7.2f}")
    ratios = np.array([r[3] for r in rounds])
    print(f"speedup of two threads: median {np.median(ratios):.2f}, min {ratios.min():.2f}, "
          f"max {ratios.max():.2f}; rounds under 1.15x: {np.mean(ratios < 1.15):.0%}")


if __name__ == "__main__":
    main()
