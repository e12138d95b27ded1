"""Systems measured in turns: ``python -m benchmarks.run --interleave``.

Two systems measured one after the other, seconds or minutes apart, meet different
machines on a shared host (this one's speed swings by a third within a minute), and their
ratio carries that swing. Here every system of a workload is built and warmed up in a
fresh process of its own, one at a time (so compile times are measured alone); then their
timed windows take turns, in rounds (A B, then B A, ...): one process works while the
others wait on a pipe, after a pause that lets the previous window's BLAS and OpenMP
threads stop spinning. Each system's tokens/s is still the median of its own windows, and
each record also keeps, round by round, its window's tokens/s over another system's
(``round_ratios``, to PyTorch's when it ran, else to the first system's): neighbours in
time, so a slow phase of the machine slows both.
"""

from __future__ import annotations

import multiprocessing
import time

from benchmarks.data import Dataset
from benchmarks.harness import SYSTEMS, Result, SystemUnavailable, finish, start, timed_window

__all__ = ["measure_interleaved", "take_turns", "round_ratios"]

#: Seconds between two windows: OpenBLAS and OpenMP workers spin for a while after a
#: parallel region (up to ~0.2 s by default) before they sleep.
SETTLE_S = 0.5


class ProcessWorker:
    """One system in a fresh (spawned) process, driven through a pipe."""

    def __init__(self, context, name: str, data: Dataset, opts: dict, factory=None) -> None:
        self.name = name
        self.conn, child_end = context.Pipe()
        self.process = context.Process(target=_serve,
                                       args=(child_end, name, data, opts, factory),
                                       daemon=True)
        self.process.start()
        child_end.close()

    def ready(self) -> tuple:
        """``("ready",)`` once built and warmed up, ``("skip", why)`` or ``("error", what)``."""
        try:
            return self.conn.recv()
        except EOFError:
            return ("error", "child process died")

    def window(self) -> float:
        """Run one timed window; its tokens/s."""
        self.conn.send("window")
        return self.conn.recv()

    def finish(self) -> Result:
        """The measurement of all windows run (then the process ends)."""
        self.conn.send("finish")
        record = self.conn.recv()
        self.process.join(timeout=30)
        return Result(**record)

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=30)


def _serve(conn, name: str, data: Dataset, opts: dict, factory=None) -> None:
    """In the child: build and warm up ``name`` (``factory``, else the registry's), then
    run windows on request."""
    from benchmarks.run import load_symgraph_systems

    load_symgraph_systems()
    factory = factory or SYSTEMS.get(name)
    if factory is None:
        conn.send(("skip", "not registered"))
        return
    try:
        session = start(name, factory, data, opts["budget_s"], opts["windows"],
                        opts["min_window_s"], log=print)
    except (SystemUnavailable, ImportError) as e:
        conn.send(("skip", str(e)))
        return
    except Exception as e:  # reported, and the other systems go on
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready",))
    while conn.recv() == "window":
        conn.send(timed_window(session).rate)
    conn.send(finish(session, opts["peak_gflops"], opts["windows"]).record())


def take_turns(workers: dict, rounds: int, settle_s: float = SETTLE_S) -> dict[str, list]:
    """``rounds`` rounds of one window per worker, the order reversed every other round;
    each worker's window rates."""
    names = list(workers)
    rates: dict[str, list] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            time.sleep(settle_s)
            rates[name].append(workers[name].window())
    return rates


def round_ratios(rates: dict[str, list], base: str) -> dict[str, list[float]]:
    """Each system's window tokens/s over ``base``'s in the same round."""
    return {name: [a / b for a, b in zip(mine, rates[base])] for name, mine in rates.items()}


def measure_interleaved(names: list[str], data: Dataset, opts: dict, log=print,
                        factories: dict | None = None) -> dict[str, Result | str]:
    """Measure ``names`` on ``data`` in turns (see the module docstring); a str value is
    a skip reason. ``opts``: the keyword arguments of ``harness.measure`` (and
    ``settle_s``); ``factories``: systems to build instead of the registry's (module-level
    functions: they reach the child by reference)."""
    context = multiprocessing.get_context("spawn")
    workers: dict[str, ProcessWorker] = {}
    outcome: dict[str, Result | str] = {}
    results: dict[str, Result] = {}
    try:
        for name in names:  # one at a time: each compile has the machine to itself
            worker = ProcessWorker(context, name, data, opts, (factories or {}).get(name))
            status = worker.ready()
            if status[0] == "ready":
                workers[name] = worker
                continue
            worker.stop()
            outcome[name] = status[1] if status[0] == "skip" else Result(
                workload=data.workload.name, system=name, error=status[1])
        rates = take_turns(workers, opts["windows"], opts.get("settle_s", SETTLE_S))
        results = {name: worker.finish() for name, worker in workers.items()}
    finally:
        for worker in workers.values():
            worker.stop()
    if results:
        ratios = round_ratios(rates, "torch" if "torch" in results else next(iter(results)))
        for name, result in results.items():
            result.round_ratios = ratios[name]
            log(f"  {name}: tokens/s per round {[round(r) for r in rates[name]]}")
    outcome.update(results)
    return {name: outcome[name] for name in names if name in outcome}
