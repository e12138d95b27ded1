"""A/B of one named rewrite in one process: ``python -m benchmarks.ab --rewrite NAME``.

Builds the workload's symgraph training step twice, without the rewrite (A) and with it
(B), then times blocks of the same batches alternately (A B, B A, A B, ...), so that
both see the same machine: on a machine whose speed swings by a third from one minute to
the next, this resolves a change of a few percent that separate runs cannot. Prints the
total time of each, the ratio B / A, and the first losses of both (a rewrite must not
change them beyond rounding).
"""

from __future__ import annotations

import argparse
import time

from benchmarks.data import prepare
from benchmarks.symgraph_systems import SymgraphTrainer
from benchmarks.workloads import WORKLOADS, get_workload


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n")[0])
    p.add_argument("--rewrite", required=True, help="the rewrite's name (see the README)")
    p.add_argument("--workload", default="lstm-dinos", choices=sorted(WORKLOADS))
    p.add_argument("--backend", default="numba")
    p.add_argument("--batches", type=int, default=40, help="batches per timed block")
    p.add_argument("--rounds", type=int, default=30, help="timed blocks of each build")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import symgraph as sg
    from symgraph.rewriting import REGISTRY

    args = parse_args(argv)
    if args.rewrite not in REGISTRY:
        raise SystemExit(f"unknown rewrite {args.rewrite!r}; known: {', '.join(sorted(REGISTRY))}")
    workload = get_workload(args.workload)
    data = prepare(workload)
    excluded = sg.config.excluded_rewrites
    was_excluded = args.rewrite in excluded
    excluded.add(args.rewrite)
    without = SymgraphTrainer(workload, data, args.backend)
    excluded.discard(args.rewrite)
    with_it = SymgraphTrainer(workload, data, args.backend)
    if was_excluded:
        excluded.add(args.rewrite)
    batches = data.batches[: args.batches]
    losses = {name: [float(t.step(b)) for b in batches[:3]]
              for name, t in (("A", without), ("B", with_it))}
    seconds = {"A": 0.0, "B": 0.0}
    for k in range(args.rounds):
        order = (("A", without), ("B", with_it)) if k % 2 == 0 else (("B", with_it), ("A", without))
        for name, trainer in order:
            started = time.perf_counter()
            for batch in batches:
                trainer.step(batch)
            seconds[name] += time.perf_counter() - started
    print(f"{args.workload}, {len(batches)} batches x {args.rounds} rounds each")
    print(f"A without {args.rewrite}: {seconds['A']:.2f} s; first losses {losses['A']}")
    print(f"B with {args.rewrite}:    {seconds['B']:.2f} s; first losses {losses['B']}")
    print(f"B / A: {seconds['B'] / seconds['A']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
