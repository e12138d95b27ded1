"""Cold compile time of a workload's training function: ``python -m benchmarks.compile_time``.

::

    python -m benchmarks.compile_time [--workload lstm-dinos ...] [--rounds 3]
                                      [--jobs 1,2] [--json PATH]

Each measurement is a new process with an empty symgraph disk cache (numba's cache of
symgraph's own helpers, in the package, stays as it is: the usual state after any earlier
run), building the workload's training step as ``benchmarks.symgraph_systems`` does and
reporting ``fn.compile_s`` (rewrites, code generation and numba). The settings of
``--jobs`` (``SYMGRAPH_NUMBA_JOBS``: 1 compiles in one process, 2 with the helper process)
alternate within each round, so a slow phase of this shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from benchmarks.data import repo_root

_SCRIPT = """
import sys
from benchmarks.data import prepare
from benchmarks.symgraph_systems import SymgraphTrainer
from benchmarks.workloads import get_workload
workload = get_workload(sys.argv[1])
trainer = SymgraphTrainer(workload, prepare(workload), "numba")
print(trainer.fn.compile_s)
"""


def measure(workload: str, jobs: int) -> float:
    """Seconds to compile ``workload``'s training function in a new process, cold."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, SYMGRAPH_CACHE_DIR=cache, SYMGRAPH_NUMBA_JOBS=str(jobs))
        run = subprocess.run([sys.executable, "-c", _SCRIPT, workload], env=env,
                             cwd=repo_root(), capture_output=True, text=True, check=True)
    return float(run.stdout.split()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", nargs="+", default=["lstm-dinos"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", default="1,2", help="SYMGRAPH_NUMBA_JOBS settings")
    parser.add_argument("--json", help="write the measurements here")
    args = parser.parse_args(argv)
    settings = [int(j) for j in args.jobs.split(",")]
    records = []
    for workload in args.workload:
        for r in range(args.rounds):
            for jobs in settings if r % 2 == 0 else settings[::-1]:
                seconds = measure(workload, jobs)
                records.append({"workload": workload, "jobs": jobs, "round": r,
                                "compile_s": round(seconds, 3)})
                print(f"{workload:12s} round {r} jobs {jobs}: {seconds:.2f} s", flush=True)
        for jobs in settings:
            times = sorted(x["compile_s"] for x in records
                           if x["workload"] == workload and x["jobs"] == jobs)
            print(f"{workload:12s} jobs {jobs}: median {times[len(times) // 2]:.2f} s "
                  f"(min {times[0]:.2f}, max {times[-1]:.2f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1)


if __name__ == "__main__":
    main()
