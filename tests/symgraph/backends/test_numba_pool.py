"""The pool of worker threads that row parts are handed to (``pool``): the parts give
the same rows and errors through the pool as on threads of their own, workers are
reused, wake from sleep, stand aside when every slot is busy, and a forked child starts
workers of its own."""

import ctypes
import multiprocessing
import os
import threading
import time

import numba
import numpy as np
import pytest

from symgraph.backends.numba import pool, threads
from tests.symgraph.backends.test_numba_row_parts import _rows_times_two_plus_lo

pytestmark = pytest.mark.skipif(not pool.available(), reason="the pool needs Linux futexes")


_rows = numba.njit(nogil=True)(_rows_times_two_plus_lo)


@numba.njit(nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
def _part(lo, hi, out, bad):
    _rows(lo, hi, out, bad)


@numba.njit(nogil=True)
def _regions(out, bad, count):
    for _ in range(count):
        threads.sg_parts_of(_part, out.shape[0], out, bad)


def _expected(rows: int, parts: int) -> np.ndarray:
    """What the parts write: ``2 i + lo`` for row ``i`` of the part starting at ``lo``."""
    lows = np.zeros(rows)
    for p in range(parts):
        lows[p * rows // parts:(p + 1) * rows // parts] = p * rows // parts
    return 2.0 * np.arange(rows) + lows


@pytest.fixture
def parts():
    before = threads.get_threads(), pool.enabled()
    yield lambda n: (threads.set_threads(n), threads.set_min_rows(1))
    threads.set_threads(before[0])
    threads.set_min_rows(threads.MIN_ROWS)
    pool.set_enabled(before[1])


def _field(slot: int, field: int) -> ctypes.c_int32:
    """The 32-bit state (0) or busy flag (1) of a slot, in place."""
    address = ctypes.addressof(pool._SLOTS) + 8 * pool._SLOT_WORDS * slot + 4 * field
    return ctypes.c_int32.from_address(address)


def _states() -> list[int]:
    """The state of every slot whose worker runs."""
    return [_field(k, 0).value for k in range(pool.SLOTS)
            if pool._SLOTS[k * pool._SLOT_WORDS + pool._SPAWNED_WORD]]


@pytest.mark.parametrize("on", [True, False])
def test_parts_through_the_pool_or_own_threads_cover_every_row(parts, on):
    pool.set_enabled(on)
    for n in (2, 3, 4):
        parts(n)
        out = np.full(12, -1.0)
        _regions(out, -1, 3)
        assert np.array_equal(out, _expected(12, n))
        for bad in (0, 5, 11):  # the calling thread's part, a middle one, the last
            with pytest.raises(threads.SGRuntimeError):
                _regions(np.zeros(12), bad, 1)


def test_workers_are_started_once_and_reused(parts):
    parts(3)
    out = np.zeros(12)
    _regions(out, -1, 1)
    started = pool.workers()
    assert started >= 2
    _regions(out, -1, 500)
    assert pool.workers() == started
    assert np.array_equal(out, _expected(12, 3))


def test_a_sleeping_worker_wakes_for_the_next_part(parts):
    parts(2)
    _regions(np.zeros(8), -1, 1)
    deadline = time.monotonic() + 10 * pool.SPIN_US / 1e6 + 5
    while pool._SLEEPING not in _states() and time.monotonic() < deadline:
        time.sleep(pool.SPIN_US / 1e6)
    assert pool._SLEEPING in _states()  # it stopped spinning
    out = np.zeros(8)
    _regions(out, -1, 1)
    assert np.array_equal(out, _expected(8, 2))


def test_when_every_slot_is_busy_a_part_gets_a_thread_of_its_own(parts):
    parts(2)
    claimed = [k for k in range(pool.SLOTS) if _field(k, 1).value == 0]
    for k in claimed:  # as if other callers held every worker
        _field(k, 1).value = 1
    try:
        before = pool.workers()
        out = np.zeros(8)
        _regions(out, -1, 2)
        assert np.array_equal(out, _expected(8, 2))
        assert pool.workers() == before
    finally:
        for k in claimed:
            _field(k, 1).value = 0


def test_callers_on_several_threads_share_the_pool(parts):
    parts(2)
    outs = [np.zeros(16) for _ in range(4)]
    errors = []

    def call(out):
        try:
            _regions(out, -1, 300)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    callers = [threading.Thread(target=call, args=(out,)) for out in outs]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=120)
    assert not errors and not any(c.is_alive() for c in callers)
    for out in outs:  # a caller that finds another's parts running runs its loop whole
        assert any(np.array_equal(out, _expected(16, n)) for n in (1, 2))


def _in_child(queue):
    threads.set_threads(2)
    threads.set_min_rows(1)
    out = np.zeros(8)
    _regions(out, -1, 20)
    queue.put((out.tolist(), pool.workers()))


def test_a_forked_child_starts_workers_of_its_own(parts):
    parts(2)
    _regions(np.zeros(8), -1, 1)  # the parent has a worker
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_in_child, args=(queue,))
    child.start()
    rows, workers = queue.get(timeout=120)  # with the parent's slots kept: waits forever
    child.join(timeout=60)
    assert child.exitcode == 0
    assert np.array_equal(rows, _expected(8, 2))
    assert workers == 1


def test_the_pool_can_be_turned_off_from_the_environment():
    import subprocess
    import sys

    script = ("from symgraph.backends.numba import pool\n"
              "assert pool.available() and not pool.enabled()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "SYMGRAPH_NUMBA_POOL": "0"},
                          timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("spin, ok", [("0", True), ("150", True), ("-1", False),
                                      ("2ms", False)])
def test_the_spin_time_from_the_environment_is_checked(spin, ok):
    import subprocess
    import sys

    script = ("from symgraph.backends.numba import pool, threads\n"
              "import numpy as np\n"
              "from tests.symgraph.backends.test_numba_pool import _regions, _expected\n"
              "threads.set_threads(2); threads.set_min_rows(1)\n"
              "out = np.zeros(8)\n"
              "_regions(out, -1, 3)\n"
              f"assert np.array_equal(out, _expected(8, 2)) and pool.SPIN_US == int({spin!r})\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "SYMGRAPH_NUMBA_SPIN_US": spin}, timeout=300)
    if ok:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0 and "SYMGRAPH_NUMBA_SPIN_US must be" in done.stderr
