"""Command line: ``python -m benchmarks.run`` (from the repository root).

::

    python -m benchmarks.run [--workload NAME ...] [--backends numpy,numba,cuda]
                             [--peers torch,jax] [--json PATH] [--budget SECONDS]
                             [--interleave]

Runs every named workload (all by default) on the symgraph backends (systems
``symgraph-<backend>``) and the peers, prints a table, and with ``--json`` writes a list of
records (one per workload and system; each carries the machine info). A system that is not
installed or not registered is skipped with a note; one that fails is reported and the
run goes on.

The data of each workload is prepared once (:func:`benchmarks.data.prepare`) and handed to
every system. By default each (workload, system) is measured in a fresh subprocess that
receives the pickled dataset, so every compile time is a cold first step and no thread
pool or allocator state leaks from one system into the next; ``--same-process`` measures
everything in this process instead (on a quiet machine both gave the same tokens/s within
noise, e.g. torch after jax in one process: ptb-small 6.2k, char-512 14.4k);
``--interleave`` builds each system in its own process too, then runs their timed windows
in turns, so that a ratio compares systems that met the same machine
(:mod:`benchmarks.interleave`).

Shared machines: other processes on the cores slow PyTorch down badly (its OpenMP threads
wait at barriers for a descheduled sibling: measured 1-2k tokens/s instead of 6-14k while
two test suites ran). Each record keeps ``waiting_cores`` (time this process's threads were
runnable but not running) and ``contended``; ``--patience`` re-measures disturbed windows;
for trustworthy numbers run the benchmark alone, or at a higher scheduler priority (with
autogroups, ``echo -15 > /proc/$$/autogroup`` in the launching shell, then
``nice -n -15 python -m benchmarks.run ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import traceback
from importlib import metadata
from pathlib import Path

from benchmarks.data import Dataset, prepare, repo_root
from benchmarks.harness import (
    SYSTEMS,
    Result,
    SystemUnavailable,
    measure,
    measure_blas_peak,
    wait_for_idle,
)
from benchmarks.interleave import measure_interleaved
from benchmarks.workloads import WORKLOADS, get_workload

__all__ = ["main", "machine_info", "format_table", "load_symgraph_systems"]


def load_symgraph_systems() -> None:
    try:
        from benchmarks import symgraph_systems

        symgraph_systems.register_systems(SYSTEMS)
    except Exception as e:  # a broken symgraph must not block the peers
        print(f"note: symgraph systems not registered ({type(e).__name__}: {e})")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _gpu_names() -> list[str]:
    """The NVIDIA GPUs ``nvidia-smi`` lists (empty without a driver)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine_info(blas: dict | None = None) -> dict:
    """CPU model, cores, GPUs, Python and library versions, and the measured BLAS peaks."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "gpus": _gpu_names(),
    }
    for dist in ("numpy", "scipy", "numba", "numba-cuda", "torch", "jax", "jaxlib", "symgraph"):
        info[dist] = _version(dist)
    if blas is not None:
        info["blas_gflops"] = blas
    return info


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _torch_peer(system: str) -> str:
    """The PyTorch system a system is compared with: on the same device."""
    return "torch-cuda" if system.endswith("cuda") else "torch"


def format_table(results: list[Result]) -> str:
    """The results as an aligned text table; "vs torch" is tokens/s over PyTorch's on the
    same workload and device (``torch-cuda`` for the CUDA systems, ``torch`` for the rest)."""
    rate = {(r.workload, r.system): r.tokens_per_s for r in results}
    head = (
        "workload",
        "system",
        "tokens/s",
        "compile s",
        "loss first",
        "loss last",
        "% peak",
        "vs torch",
    )
    rows = [head]
    for r in results:
        if r.error:
            rows.append((r.workload, r.system, "error", "", "", "", "", ""))
            continue
        ref = rate.get((r.workload, _torch_peer(r.system)))
        ratio = r.tokens_per_s / ref if ref and r.tokens_per_s else None
        pct = None if r.peak_fraction is None else 100 * r.peak_fraction
        rows.append(
            (
                r.workload,
                r.system,
                _fmt(r.tokens_per_s, ",.0f") + ("?" if r.contended else ""),
                _fmt(r.compile_s, ".2f"),
                _fmt(r.loss_first, ".3f"),
                _fmt(r.loss_last, ".3f") + ("" if r.loss_fell else " !"),
                _fmt(pct, ".1f"),
                _fmt(ratio, ".2f"),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = []
    for k, row in enumerate(rows):
        cells = [
            str(c).ljust(w) if i < 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _split(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The CLI arguments."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument(
        "--workload",
        nargs="+",
        action="extend",
        metavar="NAME",
        help=f"workloads to run (default all: {', '.join(WORKLOADS)})",
    )
    p.add_argument(
        "--backends",
        default="numba",
        help="symgraph backends, comma-separated, '' for none (default numba)",
    )
    p.add_argument(
        "--peers",
        default="torch,jax",
        help="peers, comma-separated, '' for none (default torch,jax)",
    )
    p.add_argument("--json", metavar="PATH", help="write the records as a JSON list")
    p.add_argument(
        "--budget",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="time budget per (workload, system), default 20",
    )
    p.add_argument("--windows", type=int, default=5, help="timed windows (median), default 5")
    p.add_argument(
        "--min-window",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="shortest timed window, default 0.5",
    )
    p.add_argument(
        "--same-process",
        action="store_true",
        help="measure every system in this process (default: one fresh subprocess each; "
        "torch's and XLA's thread pools slow each other down when they share a process)",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement wait up to SECONDS for other processes to leave the "
        "cores idle (default 0: do not wait); each record keeps 'foreign_cores'",
    )
    p.add_argument(
        "--patience",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="extra seconds per (workload, system) to re-measure windows that other "
        "processes disturbed (default 0)",
    )
    p.add_argument(
        "--interleave",
        action="store_true",
        help="build each system of a workload in its own process, then run their timed "
        "windows in turns (A B, B A, ...), so that both see the same machine; records "
        "keep the per-round ratios (benchmarks.interleave)",
    )
    p.add_argument("--child", metavar="JOB", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _measure_here(name: str, data: Dataset, opts: dict) -> Result | str:
    """Measure in this process; a str result is a skip reason."""
    factory = SYSTEMS.get(name)
    if factory is None:
        return "not registered"
    try:
        return measure(name, factory, data, log=print, **opts)
    except (SystemUnavailable, ImportError) as e:
        return str(e)
    except Exception as e:
        traceback.print_exc()
        return Result(workload=data.workload.name, system=name, error=f"{type(e).__name__}: {e}")


def _measure_child(name: str, data: Dataset, opts: dict, timeout: float) -> Result | str:
    """Measure in a fresh ``python -m benchmarks.run --child JOB`` process."""
    with tempfile.TemporaryDirectory(prefix="symgraph-bench-") as tmp:
        job = Path(tmp) / "job.pkl"
        job.write_bytes(pickle.dumps({"name": name, "data": data, "opts": opts}))
        cmd = [sys.executable, "-m", "benchmarks.run", "--child", str(job)]
        try:
            subprocess.run(cmd, cwd=repo_root(), timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return Result(workload=data.workload.name, system=name, error=f"timeout {timeout} s")
        out = job.with_suffix(".json")
        if not out.exists():
            return Result(workload=data.workload.name, system=name, error="child process died")
        rec = json.loads(out.read_text())
    return rec["skip"] if "skip" in rec else Result(**rec)


def _child(job_path: str) -> int:
    job = pickle.loads(Path(job_path).read_bytes())
    load_symgraph_systems()
    r = _measure_here(job["name"], job["data"], job["opts"])
    rec = {"skip": r} if isinstance(r, str) else r.record()
    Path(job_path).with_suffix(".json").write_text(json.dumps(rec))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; returns the exit status (0, or 1 if a system failed)."""
    args = parse_args(argv)
    if args.child:
        return _child(args.child)
    load_symgraph_systems()
    workloads = [get_workload(n) for n in (args.workload or list(WORKLOADS))]
    systems = [f"symgraph-{b}" for b in _split(args.backends)] + _split(args.peers)
    if args.wait_idle > 0:
        wait_for_idle(args.wait_idle)
    blas = measure_blas_peak(with_torch="torch" in systems)
    peaks = ", ".join(f"{k} {blas[k]:.1f}" for k in ("numpy", "scipy", "torch") if k in blas)
    print(f"float32 BLAS GFLOP/s ({blas['n']}^3 GEMM, best of {blas['repeats']}): {peaks}")
    info = machine_info(blas)
    print(f"machine: {info['cpu_model']}, {info['cores_usable']} cores, Python {info['python']}"
          + "".join(f", GPU {g}" for g in info["gpus"]))
    opts = {
        "budget_s": args.budget,
        "windows": args.windows,
        "min_window_s": args.min_window,
        "peak_gflops": blas["peak"],
        "patience_s": args.patience,
    }
    results: list[Result] = []
    for wl in workloads:
        data = prepare(wl)
        print(data.summary())
        measured = measure_interleaved(systems, data, opts) if args.interleave else {}
        for name in systems:
            if args.wait_idle > 0 and name in SYSTEMS and not args.interleave:
                load = wait_for_idle(args.wait_idle)
                if load >= 0.3:
                    print(f"  note: other processes still use {load:.1f} cores")
            if name not in SYSTEMS:
                r = "not registered"
            elif args.interleave:
                r = measured.get(name, "not measured")
            elif args.same_process:
                r = _measure_here(name, data, opts)
            else:
                r = _measure_child(name, data, opts, timeout=max(600.0, 20 * args.budget))
            if isinstance(r, str):
                print(f"  skip {name}: {r}")
                continue
            if r.error is None:
                print(
                    f"  {name}: {r.tokens_per_s:,.0f} tokens/s, "
                    f"loss {r.loss_first:.3f} -> {r.loss_last:.3f}, "
                    f"waited {r.waiting_cores or 0:.2f} cores for the CPU, "
                    f"others ran {r.foreign_cores or 0:.2f} cores"
                    + (" (CONTENDED: not trustworthy)" if r.contended else "")
                )
            else:
                print(f"  {name}: error: {r.error}")
            results.append(r)

    print()
    print(format_table(results))
    if args.json:
        records = [
            {**r.record(), "workload_spec": get_workload(r.workload).to_dict(), "machine": info}
            for r in results
        ]
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(records, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
