"""The system registry and the measurement of one system on one workload.

A *system* is a factory ``factory(workload, dataset) -> trainer``; ``trainer.step(batch)``
runs one full training step (forward, backward, optional clipping, SGD update) on a
:class:`benchmarks.data.Batch` and returns that batch's loss (mean over real target tokens,
computed before the update) as something ``float()`` accepts. The harness calls ``float``
after every step, so asynchronous systems (JAX) are synchronised each step, as a training
loop that logs its loss would be. The trainer owns its recurrent state: for contiguous
workloads it carries (detached) state from one step to the next and starts from zeros when
``batch.reset`` is true. A factory raises :class:`SystemUnavailable` (or ImportError) when its
dependencies are missing; the runner then skips it with a note.

Register systems with :func:`register` (``SYSTEMS[name] = factory``). The peers (``torch``,
``torch-cuda``, ``jax``) are registered here, lazily: their modules are imported only when built.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from benchmarks.data import Batch, Dataset
from benchmarks.workloads import Workload

__all__ = [
    "Trainer",
    "Factory",
    "SystemUnavailable",
    "SYSTEMS",
    "register",
    "Result",
    "flops_per_position",
    "measure",
    "start",
    "timed_window",
    "finish",
    "Session",
    "measure_blas_peak",
    "ForeignLoad",
    "wait_for_idle",
]


class Trainer(Protocol):
    """What a system's factory returns."""

    def step(self, batch: Batch) -> Any:
        """One training step on `batch`; returns the loss before the update."""


Factory = Callable[[Workload, Dataset], Trainer]


class SystemUnavailable(RuntimeError):
    """A system cannot run here (e.g. its library is not installed); the message says why."""


SYSTEMS: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Register (or replace) system `name`."""
    SYSTEMS[name] = factory


def _peer(module: str, what: str, builder: str = "build") -> Factory:
    def factory(workload: Workload, data: Dataset) -> Trainer:
        import importlib

        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise SystemUnavailable(f"{what} is not installed ({e})") from e
        return getattr(mod, builder)(workload, data)

    return factory


register("torch", _peer("benchmarks.peers.torch_lm", "PyTorch"))
register("torch-cuda", _peer("benchmarks.peers.torch_lm", "PyTorch", "build_cuda"))
register("jax", _peer("benchmarks.peers.jax_lm", "JAX"))


def flops_per_position(workload: Workload, vocab_size: int) -> float:
    """Analytic FLOPs of one training step per computed (T*B) position.

    GEMMs only, 2*m*n*k each: per LSTM layer the input projection (in x 4H) and the
    recurrent product (H x 4H), then the output layer (H_last x V); times 3 for forward
    plus backward (two GEMMs of the same size per forward GEMM). Elementwise work, the
    softmax and the embedding are not counted.
    """
    sizes = (workload.embed, *workload.hidden)
    fwd = sum(2.0 * (sizes[i] + h) * 4 * h for i, h in enumerate(workload.hidden))
    fwd += 2.0 * workload.hidden[-1] * vocab_size
    return 3.0 * fwd


@dataclass
class Result:
    """One (workload, system) measurement; :meth:`record` gives the JSON dict."""

    workload: str
    system: str
    tokens_per_s: float | None = None
    compile_s: float | None = None
    loss_first: float | None = None
    loss_last: float | None = None
    loss_fell: bool | None = None
    build_s: float | None = None
    warmup_s: float | None = None
    warmup_steps: int = 0
    steps: int = 0
    window_tokens_per_s: list[float] = field(default_factory=list)
    gflops: float | None = None
    peak_fraction: float | None = None
    flops_per_step_mean: float | None = None
    loadavg: list[float] | None = None
    foreign_cores: float | None = None
    waiting_cores: float | None = None
    window_foreign_cores: list[float | None] = field(default_factory=list)
    window_waiting_cores: list[float | None] = field(default_factory=list)
    clean_windows: int | None = None
    contended: bool | None = None
    error: str | None = None
    #: ``--interleave``: per round, this system's window tokens/s over PyTorch's
    round_ratios: list[float] | None = None

    def record(self) -> dict:
        """JSON-friendly dict."""
        return asdict(self)


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _machine_busy_s() -> float | None:
    """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _own_run_delay_s() -> float | None:
    """Seconds this process's threads spent runnable but waiting for a core (schedstat)."""
    total = 0
    try:
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/schedstat") as f:
                    total += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended meanwhile
    except OSError:
        return None
    return total / 1e9


class ForeignLoad:
    """How much other processes competed with this one between :meth:`start` and :meth:`stop`.

    :meth:`stop` returns ``(foreign, waiting)`` in cores (seconds per wall second):
    ``foreign`` is the machine's busy time (/proc/stat) minus this process's CPU time, i.e.
    what other processes ran, also on cores this process left idle; ``waiting`` is the time
    this process's threads were runnable but not running (/proc/self/task/*/schedstat), the
    direct measure of contention (near 0 on an idle machine). Either is None where the
    kernel does not provide it.
    """

    def start(self) -> None:
        self.t, self.busy, self.own = time.perf_counter(), _machine_busy_s(), _own_cpu_s()
        self.delay = _own_run_delay_s()

    def stop(self) -> tuple[float | None, float | None]:
        busy, delay = _machine_busy_s(), _own_run_delay_s()
        wall = time.perf_counter() - self.t
        foreign = waiting = None
        if busy is not None and self.busy is not None:
            foreign = max(0.0, (busy - self.busy) - (_own_cpu_s() - self.own)) / wall
        if delay is not None and self.delay is not None:
            waiting = max(0.0, delay - self.delay) / wall
        return foreign, waiting


def wait_for_idle(max_wait_s: float, foreign_cores: float = 0.3, probe_s: float = 1.0) -> float:
    """Wait (at most `max_wait_s`) until other processes use under `foreign_cores` cores.

    Returns the last probe's foreign load (cores).
    """
    deadline = time.perf_counter() + max_wait_s
    probe = ForeignLoad()
    while True:
        probe.start()
        time.sleep(probe_s)
        load = probe.stop()[0]
        if load is None or load < foreign_cores or time.perf_counter() >= deadline:
            return load or 0.0


def measure(
    name: str,
    factory: Factory,
    data: Dataset,
    budget_s: float = 20.0,
    windows: int = 5,
    min_window_s: float = 0.5,
    min_warmup_steps: int = 3,
    peak_gflops: float | None = None,
    patience_s: float = 0.0,
    contention: float = 0.25,
    log: Callable[[str], None] | None = None,
) -> Result:
    """Measure `factory`'s system on `data` (its workload).

    1. build the trainer (``build_s``: graph construction, parameter init);
    2. the first step alone: ``compile_s`` (includes any jit compilation, plus the
       trainer's own ``compile_s`` when it compiled ahead of time while built);
    3. warm-up: until every distinct batch shape has been seen (shape-specializing jits
       compile each once; at most one pass over the data), at least `min_warmup_steps`
       steps and ``min(2 s, budget/10)``;
    4. `windows` timed windows, each running whole steps for at least
       ``max(min_window_s, remaining_budget / windows)`` seconds; tokens/s is the median of
       the windows' (real target tokens / seconds).

    Shared machines: each window records the cores other processes used meanwhile and the
    time this process waited for a core (:class:`ForeignLoad`); a window is *clean* when it
    waited less than `contention` cores (or, without schedstat, when other processes used
    less than ``2.5 * contention`` cores). Up to `patience_s`
    extra seconds are spent on more windows until `windows` are clean. tokens/s is the
    median of the clean windows when there are at least ``min(3, windows)``, else of all
    windows, and then ``contended`` is set (do not trust that number).

    ``loss_first`` is the first step's loss, ``loss_last`` the mean loss over the last
    window, and ``loss_fell`` whether it is lower (and finite). ``peak_fraction`` is the
    median window's analytic GEMM FLOP rate (:func:`flops_per_position` times computed
    positions, padding included) over `peak_gflops`. Total time is about `budget_s`
    unless compilation alone exceeds it. (Steps 1-3 are :func:`start`, each window
    :func:`timed_window`, the statistics :func:`finish`: ``benchmarks.interleave`` runs
    the windows of several systems in turns.)
    """
    session = start(name, factory, data, budget_s, windows, min_window_s, min_warmup_steps,
                    log)
    deadline = None
    while True:
        timed_window(session)
        clean = [w for w in session.wins if w.clean(contention)]
        if len(session.wins) == windows:
            deadline = time.perf_counter() + patience_s
        if len(session.wins) >= windows and (len(clean) >= windows
                                             or time.perf_counter() >= deadline):
            break
    return finish(session, peak_gflops, windows, contention)


@dataclass
class Session:
    """A system built, its first step and warm-up done: ready for timed windows of
    ``target_s`` seconds (``wins``: those run so far)."""

    res: Result
    trainer: Trainer
    batches: Iterator[Batch]
    fpp: float
    target_s: float
    wins: list = field(default_factory=list)


def start(
    name: str,
    factory: Factory,
    data: Dataset,
    budget_s: float = 20.0,
    windows: int = 5,
    min_window_s: float = 0.5,
    min_warmup_steps: int = 3,
    log: Callable[[str], None] | None = None,
) -> Session:
    """Steps 1-3 of :func:`measure`: build, first step, warm-up."""
    wl = data.workload
    res = Result(workload=wl.name, system=name, loadavg=list(os.getloadavg()))
    say = log or (lambda s: None)
    t_start = time.perf_counter()
    trainer = factory(wl, data)
    res.build_s = time.perf_counter() - t_start
    batches = data.cycle()

    b = next(batches)
    t0 = time.perf_counter()
    loss = float(trainer.step(b))
    # ahead-of-time compilers (symgraph) compile while the trainer is built and say how
    # long it took (``trainer.compile_s``); jit peers compile inside the first step
    res.compile_s = time.perf_counter() - t0 + getattr(trainer, "compile_s", 0.0)
    res.loss_first = loss
    res.steps = 1
    say(f"  {name}: first step {res.compile_s:.2f} s, loss {loss:.4f}")

    seen = {b.shape}
    warm_min_s = min(2.0, budget_s / 10.0)
    t0 = time.perf_counter()
    while (
        len(seen) < len(data.shapes)
        or res.warmup_steps < min_warmup_steps
        or time.perf_counter() - t0 < warm_min_s
    ):
        b = next(batches)
        float(trainer.step(b))
        seen.add(b.shape)
        res.warmup_steps += 1
    res.warmup_s = time.perf_counter() - t0
    res.steps += res.warmup_steps

    remaining = budget_s - (time.perf_counter() - t_start)
    target = max(min_window_s, remaining / windows)
    return Session(res, trainer, batches, flops_per_position(wl, data.vocab_size), target)


def timed_window(session: Session) -> _Window:
    """One more timed window of ``session``."""
    window = _window(session.trainer, session.batches, session.target_s, session.fpp)
    session.wins.append(window)
    return window


def finish(session: Session, peak_gflops: float | None = None, windows: int = 5,
           contention: float = 0.25) -> Result:
    """The :class:`Result` of ``session``'s windows (see :func:`measure`)."""
    res, wins = session.res, session.wins
    clean = [w for w in wins if w.clean(contention)]
    used = clean if len(clean) >= min(3, windows) else wins
    res.contended = used is wins and len(clean) < len(wins)
    res.steps += sum(w.steps for w in wins)
    res.window_tokens_per_s = [w.rate for w in wins]
    res.window_foreign_cores = [w.foreign for w in wins]
    res.window_waiting_cores = [w.waiting for w in wins]
    res.clean_windows = len(clean)
    foreign = [w.foreign for w in used if w.foreign is not None]
    res.foreign_cores = float(np.mean(foreign)) if foreign else None
    waiting = [w.waiting for w in used if w.waiting is not None]
    res.waiting_cores = float(np.mean(waiting)) if waiting else None
    res.tokens_per_s = _median([w.rate for w in used])
    res.gflops = _median([w.gflops for w in used])
    res.flops_per_step_mean = float(np.mean([w.flops_per_step for w in used]))
    if peak_gflops:
        res.peak_fraction = res.gflops / peak_gflops
    res.loss_last = float(np.mean(wins[-1].losses))
    res.loss_fell = bool(math.isfinite(res.loss_last) and res.loss_last < res.loss_first)
    return res


@dataclass
class _Window:
    rate: float
    gflops: float
    flops_per_step: float
    steps: int
    losses: list[float]
    foreign: float | None
    waiting: float | None

    def clean(self, contention: float) -> bool:
        if self.waiting is not None:
            return self.waiting < contention
        return self.foreign is None or self.foreign < 2.5 * contention


def _window(trainer: Trainer, batches, target_s: float, fpp: float) -> _Window:
    """Whole steps for at least `target_s` seconds."""
    tokens = positions = 0
    losses = []
    probe = ForeignLoad()
    probe.start()
    t0 = time.perf_counter()
    while True:
        b = next(batches)
        losses.append(float(trainer.step(b)))
        tokens += b.n_tokens
        positions += b.n_positions
        dt = time.perf_counter() - t0
        if dt >= target_s:
            break
    n = len(losses)
    flops = positions * fpp
    return _Window(tokens / dt, flops / dt / 1e9, flops / n, n, losses, *probe.stop())


def _time_matmul(fn: Callable[[], Any], n: int, repeats: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    flops = 2.0 * n**3 / 1e9
    return flops / min(times), flops / statistics.median(times)


def measure_blas_peak(
    n: int = 2048, repeats: int = 9, with_torch: bool = True, torch_threads: int = 2
) -> dict:
    """float32 GEMM GFLOP/s of an ``n x n`` product: best and median of `repeats`.

    Keys: ``numpy`` (numpy's BLAS), ``scipy`` (scipy's own BLAS, the one numba's ``np.dot``
    calls; absent without scipy), ``torch`` (only `with_torch` and when importable), each
    the best run (a peak; on a shared machine the median drifts with other load), the same
    with a ``_median`` suffix, ``peak``: the largest best, the denominator of
    ``peak_fraction``, and ``foreign_cores``/``waiting_cores`` (see :class:`ForeignLoad`).
    """
    probe = ForeignLoad()
    probe.start()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out: dict = {"n": n, "repeats": repeats}
    out["numpy"], out["numpy_median"] = _time_matmul(lambda: a @ b, n, repeats)
    try:
        from scipy.linalg import blas

        out["scipy"], out["scipy_median"] = _time_matmul(lambda: blas.sgemm(1.0, a, b), n, repeats)
    except ImportError:
        pass
    try:
        if not with_torch:
            raise ImportError("not requested")
        import torch

        torch.set_num_threads(torch_threads)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out["torch"], out["torch_median"] = _time_matmul(lambda: torch.mm(ta, tb), n, repeats)
    except ImportError:
        pass
    out["peak"] = max(out[k] for k in ("numpy", "scipy", "torch") if k in out)
    out["foreign_cores"], out["waiting_cores"] = probe.stop()
    return out
