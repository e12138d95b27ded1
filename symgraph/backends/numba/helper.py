"""A helper process that compiles kernels while this process types and lowers the graph
function.

A cold build spends about half its time on the graph function (glue: typing, then
lowering and LLVM) and half on the kernels it calls. Both are numba compilations, which
hold one process-wide lock, so threads cannot overlap them; a second process can. While
the graph function (and its chunk functions) are typed, calls whose result type the
generator declared (``glue.sg_call_as``) are not compiled but queued (:func:`defer`).
A build that finds nothing cached forks before typing starts (:func:`start`; otherwise
a pipeline pass forks once a typed function has queued something). From then on each
queued kernel is also sent to the child through a pipe, and the child compiles them in
that order into numba's disk cache while this process goes on typing and lowering. At
the end (:func:`finish`) this process compiles what is still unclaimed, from the back of
the queue, and loads the rest from disk.

The child only warms the disk cache: the parent loads or compiles every kernel itself
afterwards, so a child that fails, is killed or is slow changes nothing but time. The
build then checks every declared result type against the compiled kernel's.

numba's cache index is not safe for two processes adding entries to one file at once (each
rewrites the whole index; a lost race can pair a key with another entry's code). So each
queued kernel, with all its specialisations, is compiled by one process; the child saves
the kernels it claimed as it goes, and the helpers they call (such as ``sg_exp32``) only
once this process has stopped compiling; queued kernels are never called by other
kernels, and before this process compiles a queued kernel outside the queue (a call site
without a declared type) it claims it or waits for the child (:func:`compiling_here`).

Used when the platform forks (Linux), the disk cache is writable, no other Python thread
runs (a lock held by one would stay held in the child) and ``SYMGRAPH_NUMBA_JOBS`` is
not ``1``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import select
import struct
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
#: Most kernels one build queues (the size of the shared claims array).
CAPACITY = 1 << 14
_CHILD, _PARENT = 1, 2  # who claimed a queue entry
_queue: list | None = None  # [dispatcher, [argtypes, ...]] while deferring, else None
_position: dict = {}  # dispatcher -> its index in _queue
_claims = None  # shared bytes, one per queue entry: 0, _CHILD or _PARENT
_lock = None
_parent_idle = None  # shared byte: 1 once this process compiles nothing more meanwhile
_child: dict | None = None  # pid, pipe (write end), start time


def available() -> bool:
    """Whether builds may use a helper process."""
    return (JOBS > 1 and sys.platform.startswith("linux") and hasattr(os, "fork")
            and threading.active_count() == 1)


@contextlib.contextmanager
def deferring():
    """Queue declared kernel calls (instead of compiling them) while this is active."""
    global _queue, _position, _claims, _lock, _parent_idle, _child
    ctx = multiprocessing.get_context("fork")
    _queue, _position = [], {}
    _claims, _lock, _child = ctx.RawArray("b", CAPACITY), ctx.Lock(), None
    _parent_idle = ctx.RawValue("b", 0)
    try:
        yield
    finally:
        _queue = None
        _abandon()


def defer(dispatcher, argtypes) -> bool:
    """Queue ``dispatcher``'s specialisation for ``argtypes`` when deferring (True), or
    say it must be compiled now (False: not deferring, already compiled here, or
    the queue is full)."""
    if _queue is None or argtypes in dispatcher.overloads:
        return False
    index = _position.get(dispatcher)
    if index is None:
        if len(_queue) == CAPACITY:
            return False
        index = _position[dispatcher] = len(_queue)
        _queue.append([dispatcher, []])
    if argtypes not in _queue[index][1]:
        _queue[index][1].append(argtypes)
        STATS["queued"] += 1
        _send(index, argtypes)
    return True


def start(early: bool = False) -> None:
    """Fork the helper when something is queued (or, ``early``, before anything is:
    a build about to type a graph function knows kernels will come) and no helper
    runs; send it the queue (entries already claimed are skipped by whoever meets
    them)."""
    global _child
    if _queue is None or _child is not None or not (_queue or early):
        return
    _load_numba_registries()
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads
        pid = os.fork()
    if pid == 0:  # the child: compile what arrives, never return
        try:
            os.close(write_end)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            mine: set = set()
            later: list = []
            save = _save_only(mine, later)
            _serve(read_end, mine)
            _save_when_parent_idle(save, later, parent=os.getppid())
        finally:
            os._exit(0)
    os.close(read_end)
    os.set_blocking(write_end, False)
    _child = {"pid": pid, "pipe": write_end, "started": time.monotonic()}
    STATS["helpers"] += 1
    for index, (_, signatures) in enumerate(_queue):
        for argtypes in signatures:
            _send(index, argtypes)


def _load_numba_registries() -> None:
    """Load the typing and lowering registries numba loads lazily on its first compile or
    cache load in a process (numpy support, scipy's BLAS: ~0.3 s), so that the child
    inherits them instead of loading them again."""
    from numba.core.registry import cpu_target

    cpu_target.typing_context.refresh()
    cpu_target.target_context.refresh()


def finish() -> None:
    """Stop sending, compile the unclaimed kernels from the back of the queue, then
    wait for the child (all queued kernels are then in this process or on disk)."""
    if _child is None:
        return
    _close_pipe()  # the child drains what was sent, then meets this loop
    for index in reversed(range(len(_queue))):
        if _claim(index, _PARENT):
            dispatcher, signatures = _queue[index]
            for argtypes in signatures:
                dispatcher.compile(argtypes)
    _wait_for_child()


def _wait_for_child() -> None:
    """Close the pipe, let the child save what it kept back, and wait for it to exit,
    at most ``max(PATIENCE_S, twice the time it has run)`` (then kill it)."""
    global _child
    _close_pipe()
    _parent_idle.value = 1
    deadline = time.monotonic() + max(PATIENCE_S, 2 * (time.monotonic() - _child["started"]))
    while os.waitpid(_child["pid"], os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            _abandon()
            return
        time.sleep(0.002)
    _child = None


def _claim(index: int, who: int) -> bool:
    """Claim queue entry ``index`` for ``who``; False if someone else has it."""
    with _lock:
        if _claims[index] not in (0, who):
            return False
        _claims[index] = who
        return True


def compiling_here(dispatcher) -> None:
    """Before this process compiles ``dispatcher`` outside the queue: claim its queue
    entry, or, when the child has it, let the child finish first (no more help)."""
    if _child is None or _queue is None:
        return
    index = _position.get(dispatcher)
    if index is not None and not _claim(index, _PARENT):
        _wait_for_child()


def _send(index: int, argtypes) -> None:
    """Tell the child to compile ``argtypes`` of entry ``index``. A message that does
    not fit the pipe now is dropped: the parent compiles that entry at the end."""
    if _child is None or _child["pipe"] is None:
        return
    func = _queue[index][0].py_func
    size = (len(func.__code__.co_code), -index)  # larger first, then earlier first
    payload = pickle.dumps((size, index, func.__module__, func.__name__, argtypes))
    message = struct.pack("<I", len(payload)) + payload
    if len(message) > 4096:  # only writes up to PIPE_BUF are atomic
        return
    with contextlib.suppress(BlockingIOError, BrokenPipeError):
        os.write(_child["pipe"], message)


def _serve(read_end: int, mine: set) -> None:
    """In the child: compile each kernel the pipe names, unless the parent claimed it
    (``mine``: the functions claimed here, the only ones whose cache this child saves).
    Of the kernels waiting, the largest (by bytecode) goes first, so that the small ones
    are left for the end, when the parent takes kernels from the back of the queue."""
    waiting: list = []
    buffer, is_open = b"", True
    while True:
        wait = None if not waiting else 0  # block only when there is nothing to do
        while is_open and select.select([read_end], [], [], wait)[0]:
            chunk = os.read(read_end, 1 << 16)
            is_open, buffer, wait = bool(chunk), buffer + chunk, 0
        while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack("<I", buffer[:4])[0]:
            size = struct.unpack("<I", buffer[:4])[0]
            waiting.append(pickle.loads(buffer[4:4 + size]))
            buffer = buffer[4 + size:]
        if not waiting:
            if not is_open:
                return
            continue
        waiting.sort(key=lambda message: message[0])
        _, index, module, name, argtypes = waiting.pop()
        if _claim(index, _CHILD):
            dispatcher = getattr(sys.modules[module], name)
            mine.add(id(dispatcher.py_func))
            dispatcher.compile(argtypes)


def _save_only(mine: set, later: list):
    """In the child: numba's disk cache saves the functions in ``mine`` at once and
    keeps the others' entries in ``later`` (see :func:`_save_when_parent_idle`);
    returns the original save."""
    save = caching.Cache.save_overload

    def save_if_mine(self, sig, data):
        if id(self._py_func) in mine:
            save(self, sig, data)
        else:
            later.append((self, sig, data))

    caching.Cache.save_overload = save_if_mine
    return save


def _save_when_parent_idle(save, later: list, parent: int) -> None:
    """In the child, after the last kernel: once the parent compiles nothing more (it is
    waiting for this child), save the helpers kept back (``save``: numba's own), so that
    a later build loads them instead of compiling them again."""
    while not _parent_idle.value:
        if os.getppid() != parent:
            return
        time.sleep(0.002)
    for cache, sig, data in later:
        with contextlib.suppress(Exception):
            save(cache, sig, data)


def _close_pipe() -> None:
    if _child is not None and _child["pipe"] is not None:
        with contextlib.suppress(OSError):
            os.close(_child["pipe"])
        _child["pipe"] = None


def _abandon() -> None:
    """Kill and reap a child still running (an interrupted or failed build)."""
    global _child
    if _child is None:
        return
    _close_pipe()
    pid = _child["pid"]
    _child = None
    with contextlib.suppress(OSError):
        os.kill(pid, 9)
        os.waitpid(pid, 0)
