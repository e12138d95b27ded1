"""A helper process that compiles kernels while the graph function is being lowered.

A cold build spends about half its time on the graph function (glue: typing, then
lowering and LLVM) and half on the kernels it calls. Both are numba compilations, which
hold one process-wide lock, so threads cannot overlap them; a second process can. When
the graph function is typed, calls whose result type the generator declared
(``prelude.sg_call_as``) are not compiled but queued (:func:`defer`). Once typing is
done (:func:`start`, a pipeline pass), the process forks; the child compiles the queue
from its end into numba's disk cache while the parent lowers the graph function, then
compiles the queue from its front; they meet in the middle (:func:`finish`), and the
parent loads what the child compiled from disk.

The child only warms the disk cache: the parent loads or compiles every kernel itself
afterwards, so a child that fails, is killed or is slow changes nothing but time. The
build then checks every declared result type against the compiled kernel's.

numba's cache index is not safe for two processes adding entries to one file at once (each
rewrites the whole index; a lost race can pair a key with another entry's code). So each
kernel, with all its specialisations, is compiled by one process, and the child writes
no cache file but its kernels' (helpers they call, such as ``sg_exp32``, are loaded from
the cache or compiled without being saved).

Used when the platform forks (Linux), the disk cache is writable, no other Python thread
runs (a lock held by one would stay held in the child) and ``SYMGRAPH_NUMBA_JOBS`` is
not ``1``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
import warnings

from numba.core import caching

#: ``SYMGRAPH_NUMBA_JOBS=1`` compiles everything in this process.
JOBS = int(os.environ.get("SYMGRAPH_NUMBA_JOBS", "2"))
#: The parent waits for the child, after its own share, at most this many seconds or
#: twice as long as the helper has run so far, whichever is longer (then kills it).
PATIENCE_S = 10.0

#: Counters: kernels queued while typing, helper processes started.
STATS = {"queued": 0, "helpers": 0}
_queue: list | None = None  # [dispatcher, [argtypes, ...]] while deferring, else None
_child: tuple | None = None  # (pid, claims, lock, start time)


def available() -> bool:
    """Whether builds may use a helper process."""
    return (JOBS > 1 and sys.platform.startswith("linux") and hasattr(os, "fork")
            and threading.active_count() == 1)


@contextlib.contextmanager
def deferring():
    """Queue declared kernel calls (instead of compiling them) while this is active."""
    global _queue, _child
    _queue, _child = [], None
    try:
        yield
    finally:
        _queue = None
        _abandon()


def defer(dispatcher, argtypes) -> bool:
    """Queue ``dispatcher``'s specialisation for ``argtypes`` when deferring (True), or
    say it must be compiled now (False: not deferring, or already compiled here)."""
    if _queue is None or _child is not None or argtypes in dispatcher.overloads:
        return False
    entry = next((e for e in _queue if e[0] is dispatcher), None)
    if entry is None:
        entry = [dispatcher, []]
        _queue.append(entry)
    if argtypes not in entry[1]:
        entry[1].append(argtypes)
        STATS["queued"] += 1
    return True


def start() -> None:
    """Fork the helper for the queued kernels (no-op if nothing is queued)."""
    global _child
    if not _queue or _child is not None:
        return
    ctx = multiprocessing.get_context("fork")
    claims = ctx.RawArray("b", len(_queue))
    lock = ctx.Lock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads
        pid = os.fork()
    if pid == 0:  # the child: compile from the end, never return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            _save_only({id(d.py_func) for d, _ in _queue})
            _compile_claimed(reversed(range(len(_queue))), claims, lock)
        finally:
            os._exit(0)
    _child = (pid, claims, lock, time.monotonic())
    STATS["helpers"] += 1


def finish() -> None:
    """Compile the queue from its front until meeting the child's claims, then wait
    for the child (all queued kernels are then in this process or on disk)."""
    global _child
    if _child is None:
        return
    pid, claims, lock, started = _child
    _compile_claimed(range(len(_queue)), claims, lock)
    deadline = time.monotonic() + max(PATIENCE_S, 2 * (time.monotonic() - started))
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            _abandon()
            return
        time.sleep(0.002)
    _child = None


def _compile_claimed(order, claims, lock) -> None:
    for k in order:
        with lock:
            if claims[k]:
                return
            claims[k] = 1
        dispatcher, signatures = _queue[k]
        for argtypes in signatures:
            dispatcher.compile(argtypes)


def _save_only(py_funcs: set) -> None:
    """In the child: numba's disk cache saves only the functions in ``py_funcs``."""
    save = caching.Cache.save_overload

    def save_if_queued(self, sig, data):
        if id(self._py_func) in py_funcs:
            save(self, sig, data)

    caching.Cache.save_overload = save_if_queued


def _abandon() -> None:
    """Kill and reap a child still running (an interrupted or failed build)."""
    global _child
    if _child is None:
        return
    pid = _child[0]
    _child = None
    with contextlib.suppress(OSError):
        os.kill(pid, 9)
        os.waitpid(pid, 0)
