"""Register-tiled products against the BLAS, one core each: ``python -m benchmarks.tiles``.

::

    python -m benchmarks.tiles [--shapes 64,128,512 32,128,512 ...] [--dtype float32]

For every ``m,k,n`` it times ``out = a @ b`` through ``tiles.sg_tiles`` and through the
BLAS of compiled code (``products._gemm_rows``, the same call the row parts make) with
the BLAS on one thread, best of five blocks, and prints microseconds, GFLOP/s and the
ratio. The default shapes are the per-step products of the three workloads, whole and
in the row parts of two threads.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

DEFAULT_SHAPES = ("64,128,512", "32,128,512", "64,512,128", "32,512,2048", "16,512,2048",
                  "20,200,800", "20,800,200")


def measure(shape: tuple[int, int, int], dtype: str, seconds: float = 0.2) -> tuple:
    """``(us tiled, us BLAS)`` per product: the best of five blocks of about
    ``seconds / 5`` each."""
    import numba

    from symgraph.backends.numba import blas
    from symgraph.backends.numba.products import _gemm_rows
    from symgraph.backends.numba.tiles import sg_tiles

    @numba.njit
    def tiled(a, b, out, count):
        for _ in range(count):
            sg_tiles(a, b, out, 0, a.shape[0], 0.0)

    @numba.njit
    def through_blas(a, b, out, count):
        for _ in range(count):
            _gemm_rows(a, b, out, 0, a.shape[0], 0.0)

    m, k, n = shape
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s).astype(dtype) for s in ((m, k), (k, n)))
    out = np.empty((m, n), dtype)
    before = blas.get_threads()
    blas.set_threads(1)
    try:
        times = []
        for fn in (tiled, through_blas):
            fn(a, b, out, 1)
            started = time.perf_counter()
            fn(a, b, out, 3)
            calls = max(1, int(seconds / 5 / max((time.perf_counter() - started) / 3, 1e-9)))
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                fn(a, b, out, calls)
                best = min(best, (time.perf_counter() - started) / calls)
            times.append(best * 1e6)
    finally:
        if before is not None:
            blas.set_threads(before)
    return tuple(times)


def _shape(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"a shape is three positive lengths m,k,n, got {text!r}")
    return tuple(int(p) for p in parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tiles",
                                description=__doc__.split("\n")[0])
    p.add_argument("--shapes", nargs="+", type=_shape, default=[_shape(s) for s in DEFAULT_SHAPES])
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seconds", type=float, default=0.2, help="timing per system and shape")
    args = p.parse_args(argv)
    print(f"{'m x k x n':>16}  {'tiles us':>9}  {'GFLOP/s':>7}  {'BLAS us':>9}  {'GFLOP/s':>7}  "
          f"{'BLAS / tiles':>12}")
    for m, k, n in args.shapes:
        tiled, through_blas = measure((m, k, n), args.dtype, args.seconds)
        flops = 2 * m * k * n / 1e3
        print(f"{f'{m} x {k} x {n}':>16}  {tiled:9.1f}  {flops / tiled:7.1f}  "
              f"{through_blas:9.1f}  {flops / through_blas:7.1f}  {through_blas / tiled:12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
