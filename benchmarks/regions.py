"""The cost of one parallel region, with the worker pool and with a thread per part:
``python -m benchmarks.regions``.

::

    python -m benchmarks.regions [--parts 2] [--regions 2000]

A compiled loop runs ``--regions`` regions back to back, each cutting a 64-row array into
``--parts`` row parts that add one to their rows (``threads.sg_parts_of``), first handing
the parts to the pool's waiting workers, then starting a thread for each (the pool off),
twice in turn; it prints microseconds per region. Every row is checked afterwards.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def measure(parts: int, regions: int) -> dict[str, list[float]]:
    """Microseconds per region, ``{'pool': [...], 'threads': [...]}`` (two blocks each)."""
    import numba

    from symgraph.backends.numba import pool, threads
    from symgraph.backends.numba.threads import sg_parts_of

    @numba.njit(nogil=True)
    def add_one(lo, hi, rows):
        for i in range(lo, hi):
            rows[i] += 1.0

    @numba.njit(nogil=True)
    def run(rows, count):
        for _ in range(count):
            sg_parts_of(add_one, rows.shape[0], rows)

    before = threads.get_threads(), pool.enabled()
    threads.set_threads(parts)
    threads.set_min_rows(1)
    rows = np.zeros(64)
    run(rows, 1)
    found: dict[str, list[float]] = {"pool": [], "threads": []}
    try:
        for on in (True, False, True, False):
            pool.set_enabled(on)
            run(rows, 10)
            started = time.perf_counter()
            run(rows, regions)
            found["pool" if on else "threads"].append(
                (time.perf_counter() - started) / regions * 1e6)
    finally:
        threads.set_threads(before[0])
        threads.set_min_rows(threads.MIN_ROWS)
        pool.set_enabled(before[1])
    if not np.all(rows == rows[0]) or rows[0] != 1 + 40 + 2 * (2 * regions):
        raise AssertionError(f"rows not all added to: {rows}")
    return found


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.regions",
                                description=__doc__.split("\n")[0])
    p.add_argument("--parts", type=int, default=2)
    p.add_argument("--regions", type=int, default=2000)
    args = p.parse_args(argv)
    from symgraph.backends.numba import pool

    if not pool.available():
        print("the pool needs Linux futexes: only threads of their own here")
    found = measure(args.parts, args.regions)
    for name, times in found.items():
        print(f"{name:8s} " + "  ".join(f"{t:.2f} us" for t in times) + " per region")


if __name__ == "__main__":
    main()
