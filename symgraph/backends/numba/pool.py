"""A pool of waiting threads for row parts: ``pthread_create`` and ``pthread_join``
replaced by a hand-over to a thread that is already running.

Starting a thread for each part of each loop costs tens of microseconds (on the 2-core
development VM, about 50 us from ``pthread_create`` to its ``pthread_join`` returning),
and a training step starts several. Instead, a part is handed to a *worker*: a thread
started once, on first need, that waits for work, runs one part, reports it done and
waits again. The hand-over is one atomic exchange each way::

    caller                                   worker (waiting in state IDLE)
    claim a free slot (busy: 0 -> 1)
    slot.fn, slot.arg = part, closure
    state <- WORK   (wake it if SLEEPING) -> sees WORK; fn(arg); state <- DONE
    ... runs its own part ...
    wait for DONE; state <- IDLE; busy <- 0

A waiting worker spins (``pause``) for :data:`SPIN_US` microseconds after its last part,
so that the next loop of the same training step finds it awake, and then sleeps on a
futex until a caller wakes it. A caller waiting for a part spins too, yielding its core
after :data:`YIELD_AFTER_US` (the part may be waiting for that core).

The functions are written in LLVM IR and keep the signatures of ``pthread_create`` and
``pthread_join``, so generated code calls them as ``sg_thread_start`` and
``sg_thread_join`` (``threads``); a handle of the pool is negative, a thread's handle is
its ``pthread_t``. When every slot is busy, or the pool is off (:func:`set_enabled`,
``SYMGRAPH_NUMBA_POOL=0``), or the system has no futex (Linux only), a part gets a thread
of its own as before. A child process made by ``fork`` starts with an empty pool.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import llvmlite.binding as llvm
from llvmlite import ir

__all__ = ["available", "set_enabled", "enabled", "workers", "start_address",
           "join_address", "SLOTS", "SPIN_US", "YIELD_AFTER_US"]

#: Most workers (and parts handed to the pool at once).
SLOTS = 64
def _spin_setting() -> int:
    """``SYMGRAPH_NUMBA_SPIN_US``: microseconds, at least 0 (default 2000)."""
    text = os.environ.get("SYMGRAPH_NUMBA_SPIN_US", "2000")
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"SYMGRAPH_NUMBA_SPIN_US must be a whole number of microseconds "
                         f"(0 or more), got {text!r}")
    return value


#: Microseconds a worker spins for its next part before it sleeps.
SPIN_US = _spin_setting()
#: Microseconds a caller spins for a part to finish before it yields its core between
#: checks.
YIELD_AFTER_US = 50

_IDLE, _SLEEPING, _WORK, _DONE = 0, 1, 2, 3
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}
_CLOCK_MONOTONIC = 1

_I1, _I8, _I32, _I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
_I8P = _I8.as_pointer()
_WORKER_TYPE = ir.FunctionType(_I8P, [_I8P])
#: One slot: state, busy, whether its thread runs, the part and its argument; padded to
#: two cache lines so that workers do not share one.
_SLOT = ir.LiteralStructType([_I32, _I32, _I64, _I64, _I64, ir.ArrayType(_I64, 12)])
_STATE, _BUSY, _SPAWNED, _FN, _ARG = 0, 1, 2, 3, 4
_SPAWNED_WORD = 1  # the 64-bit word holding _SPAWNED


def _libc_symbols() -> dict:
    """Addresses of the C functions the pool calls, or None where one is missing."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    found = {}
    for name in ("pthread_create", "pthread_join", "pthread_detach", "syscall",
                 "clock_gettime", "sched_yield"):
        fn = getattr(libc, name, None)
        if fn is None:
            try:
                fn = getattr(ctypes.CDLL(ctypes.util.find_library("pthread")), name)
            except (OSError, TypeError, AttributeError):
                return None
        found[name] = ctypes.cast(fn, ctypes.c_void_p).value
    return found


class _Builder:
    """The pool's IR module: its slots and the functions over them."""

    def __init__(self, futex: int, x86: bool, slots_address: int, on_address: int) -> None:
        self.module = ir.Module(name="sg_pool")
        self.module.triple = llvm.get_process_triple()
        self.futex, self.x86 = futex, x86
        self.slots = ir.Constant(_I64, slots_address).inttoptr(
            ir.ArrayType(_SLOT, SLOTS).as_pointer())
        self.on = ir.Constant(_I64, on_address).inttoptr(_I64.as_pointer())
        self.c = {}
        for name, fnty in (
                ("pthread_create", ir.FunctionType(_I32, [_I64.as_pointer(), _I8P,
                                                          _WORKER_TYPE.as_pointer(), _I8P])),
                ("pthread_join", ir.FunctionType(_I32, [_I64, _I8P.as_pointer()])),
                ("pthread_detach", ir.FunctionType(_I32, [_I64])),
                ("syscall", ir.FunctionType(_I64, [_I64], var_arg=True)),
                ("clock_gettime", ir.FunctionType(_I32, [_I32, _I64.as_pointer()])),
                ("sched_yield", ir.FunctionType(_I32, []))):
            self.c[name] = ir.Function(self.module, fnty, name=f"sg_pool_c_{name}")
        self.pause = None
        if x86:
            self.pause = ir.Function(self.module, ir.FunctionType(ir.VoidType(), []),
                                     name="llvm.x86.sse2.pause")
        self.now = self._now()
        self.worker = self._worker()
        self._start()
        self._join()

    # ---- small pieces ------------------------------------------------------------------

    def _function(self, name, fnty):
        fn = ir.Function(self.module, fnty, name=name)
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def field(self, builder, slot, k):
        return builder.gep(slot, [_I32(0), _I32(k)], inbounds=True)

    def slot_at(self, builder, index):
        return builder.gep(self.slots, [_I64(0), index], inbounds=True)

    def relax(self, builder):
        if self.pause is not None:
            builder.call(self.pause, [])

    def _now(self):
        """``i64 now()``: monotonic nanoseconds."""
        fn, b = self._function("sg_pool_now", ir.FunctionType(_I64, []))
        fn.linkage = "internal"
        ts = b.alloca(ir.ArrayType(_I64, 2))
        b.call(self.c["clock_gettime"], [_I32(_CLOCK_MONOTONIC), b.bitcast(ts, _I64.as_pointer())])
        seconds = b.load(b.gep(ts, [_I32(0), _I32(0)]))
        nanos = b.load(b.gep(ts, [_I32(0), _I32(1)]))
        b.ret(b.add(b.mul(seconds, _I64(1_000_000_000)), nanos))
        return fn

    def futex_call(self, builder, word, op, value):
        builder.call(self.c["syscall"], [_I64(self.futex), word, _I64(op), _I64(value),
                                         ir.Constant(_I8P, None), ir.Constant(_I8P, None),
                                         _I64(0)])

    # ---- the worker ----------------------------------------------------------------------

    def _worker(self):
        """``void *worker(slot)``: wait for WORK, run ``fn(arg)``, set DONE, forever."""
        fn, b = self._function("sg_pool_worker", _WORKER_TYPE)
        slot = b.bitcast(fn.args[0], _SLOT.as_pointer())
        state = self.field(b, slot, _STATE)
        since = b.alloca(_I64)
        spins = b.alloca(_I64)
        wait, check, relax, sleep, asleep, run = (
            fn.append_basic_block(n) for n in ("wait", "check", "relax", "sleep", "asleep", "run"))
        b.branch(wait)

        b.position_at_end(wait)  # a new wait for work begins
        b.store(b.call(self.now, []), since)
        b.store(_I64(0), spins)
        b.branch(check)

        b.position_at_end(check)
        seen = b.load_atomic(state, "acquire", 4)
        b.cbranch(b.icmp_unsigned("==", seen, _I32(_WORK)), run, relax)

        b.position_at_end(relax)
        self.relax(b)
        count = b.add(b.load(spins), _I64(1))
        b.store(count, spins)
        every = b.icmp_unsigned("==", b.and_(count, _I64(255)), _I64(0))
        idle = b.icmp_unsigned("==", seen, _I32(_IDLE))
        with b.if_then(b.and_(every, idle)):
            waited = b.sub(b.call(self.now, []), b.load(since))
            with b.if_then(b.icmp_signed(">", waited, _I64(SPIN_US * 1000))):
                pair = b.cmpxchg(state, _I32(_IDLE), _I32(_SLEEPING), "acq_rel", "acquire")
                b.cbranch(b.extract_value(pair, 1), sleep, check)
        b.branch(check)

        b.position_at_end(sleep)  # until a caller's exchange finds SLEEPING and wakes it
        self.futex_call(b, state, _FUTEX_WAIT_PRIVATE, _SLEEPING)
        b.branch(asleep)
        b.position_at_end(asleep)
        still = b.icmp_unsigned("==", b.load_atomic(state, "acquire", 4), _I32(_SLEEPING))
        b.cbranch(still, sleep, wait)

        b.position_at_end(run)
        part = b.inttoptr(b.load(self.field(b, slot, _FN)), _WORKER_TYPE.as_pointer())
        b.call(part, [b.inttoptr(b.load(self.field(b, slot, _ARG)), _I8P)])
        b.store_atomic(_I32(_DONE), state, "release", 4)
        b.branch(wait)
        return fn

    # ---- the caller's side ------------------------------------------------------------------

    def _start(self):
        """``int sg_pool_start(i64 *handle, attr, fn, arg)`` (``pthread_create``'s
        signature): hand ``fn(arg)`` to a free worker, starting it if it is new; a thread
        of its own when no slot is free or the pool is off."""
        fnty = ir.FunctionType(_I32, [_I64.as_pointer(), _I8P, _WORKER_TYPE.as_pointer(), _I8P])
        fn, b = self._function("sg_pool_start", fnty)
        handle, attr, part, arg = fn.args
        index = b.alloca(_I64)
        b.store(_I64(0), index)
        search, claim, next_slot, claimed, spawn, hand, own = (
            fn.append_basic_block(n)
            for n in ("search", "claim", "next", "claimed", "spawn", "hand", "own"))
        on = b.icmp_unsigned("!=", b.load_atomic(self.on, "monotonic", 8), _I64(0))
        b.cbranch(on, search, own)

        b.position_at_end(search)
        i = b.load(index)
        b.cbranch(b.icmp_signed("<", i, _I64(SLOTS)), claim, own)

        b.position_at_end(claim)
        slot = self.slot_at(b, i)
        pair = b.cmpxchg(self.field(b, slot, _BUSY), _I32(0), _I32(1), "acquire", "monotonic")
        b.cbranch(b.extract_value(pair, 1), claimed, next_slot)

        b.position_at_end(next_slot)
        b.store(b.add(i, _I64(1)), index)
        b.branch(search)

        b.position_at_end(claimed)
        slot = self.slot_at(b, b.load(index))
        spawned = b.load(self.field(b, slot, _SPAWNED))
        b.cbranch(b.icmp_unsigned("==", spawned, _I64(0)), spawn, hand)

        b.position_at_end(spawn)
        thread = b.alloca(_I64)
        code = b.call(self.c["pthread_create"], [thread, ir.Constant(_I8P, None), self.worker,
                                                 b.bitcast(slot, _I8P)])
        failed = b.icmp_signed("!=", code, _I32(0))
        with b.if_then(failed, likely=False):
            b.store_atomic(_I32(0), self.field(b, slot, _BUSY), "release", 4)
            b.ret(code)
        b.call(self.c["pthread_detach"], [b.load(thread)])
        b.store(_I64(1), self.field(b, slot, _SPAWNED))
        b.branch(hand)

        b.position_at_end(hand)
        slot = self.slot_at(b, b.load(index))
        b.store(b.ptrtoint(part, _I64), self.field(b, slot, _FN))
        b.store(b.ptrtoint(arg, _I64), self.field(b, slot, _ARG))
        state = self.field(b, slot, _STATE)
        before = b.atomic_rmw("xchg", state, _I32(_WORK), "acq_rel")
        with b.if_then(b.icmp_unsigned("==", before, _I32(_SLEEPING))):
            self.futex_call(b, state, _FUTEX_WAKE_PRIVATE, 1)
        b.store(b.sub(_I64(-1), b.load(index)), handle)
        b.ret(_I32(0))

        b.position_at_end(own)
        b.ret(b.call(self.c["pthread_create"], [handle, attr, part, arg]))

    def _join(self):
        """``int sg_pool_join(i64 handle, void **result)`` (``pthread_join``'s
        signature): wait for the part, then free its slot."""
        fn, b = self._function("sg_pool_join",
                               ir.FunctionType(_I32, [_I64, _I8P.as_pointer()]))
        handle, result = fn.args
        pooled, own = fn.append_basic_block("pooled"), fn.append_basic_block("own")
        b.cbranch(b.icmp_signed("<", handle, _I64(0)), pooled, own)

        b.position_at_end(own)
        b.ret(b.call(self.c["pthread_join"], [handle, result]))

        b.position_at_end(pooled)
        slot = self.slot_at(b, b.sub(_I64(-1), handle))
        state = self.field(b, slot, _STATE)
        since = b.call(self.now, [])
        spins = b.alloca(_I64)
        b.store(_I64(0), spins)
        check, relax, done = (fn.append_basic_block(n) for n in ("check", "relax", "done"))
        b.branch(check)

        b.position_at_end(check)
        finished = b.icmp_unsigned("==", b.load_atomic(state, "acquire", 4), _I32(_DONE))
        b.cbranch(finished, done, relax)

        b.position_at_end(relax)
        self.relax(b)
        count = b.add(b.load(spins), _I64(1))
        b.store(count, spins)
        with b.if_then(b.icmp_unsigned("==", b.and_(count, _I64(63)), _I64(0))):
            waited = b.sub(b.call(self.now, []), since)
            with b.if_then(b.icmp_signed(">", waited, _I64(YIELD_AFTER_US * 1000))):
                b.call(self.c["sched_yield"], [])
        b.branch(check)

        b.position_at_end(done)
        b.store_atomic(_I32(_IDLE), state, "release", 4)
        b.store_atomic(_I32(0), self.field(b, slot, _BUSY), "release", 4)
        b.ret(_I32(0))


#: The pool's shared memory: a header (whether it is on) and the slots, each on cache lines
#: of its own. Zeroed slots are free and have no thread.
_LINE = 64
_SLOT_WORDS = 16
_MEMORY = (ctypes.c_int64 * (_SLOT_WORDS * (SLOTS + 1) + _LINE // 8))()
_BASE = -(-ctypes.addressof(_MEMORY) // _LINE) * _LINE
_HEADER = (ctypes.c_int64 * _SLOT_WORDS).from_address(_BASE)
_SLOTS = (ctypes.c_int64 * (_SLOT_WORDS * SLOTS)).from_address(_BASE + 8 * _SLOT_WORDS)


def _build() -> dict:
    """Compile the pool: the addresses of ``sg_pool_start`` and ``sg_pool_join``, or an
    empty dict where it cannot work here (no futex or no pthreads)."""
    machine = llvm.get_process_triple().split("-")[0]
    futex = _SYS_FUTEX.get(machine)
    symbols = _libc_symbols() if futex is not None and os.uname().sysname == "Linux" else None
    if symbols is None:
        return {}
    for name, address in symbols.items():
        llvm.add_symbol(f"sg_pool_c_{name}", address)
    module = _Builder(futex, machine == "x86_64", ctypes.addressof(_SLOTS),
                      ctypes.addressof(_HEADER)).module
    # an engine of its own: numba's full pipeline takes 60 ms for these few functions
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), opt=2, codemodel="jitdefault")
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(str(module)), target)
    engine.finalize_object()
    _ENGINES.append(engine)  # keeps the code alive
    return {name: engine.get_function_address(f"sg_pool_{name}") for name in ("start", "join")}


def _forget_workers() -> None:
    """In a child made by ``fork``: none of the parent's workers exist here."""
    ctypes.memset(_SLOTS, 0, ctypes.sizeof(_SLOTS))


_ENGINES: list = []
_FUNCTIONS = _build()
if _FUNCTIONS:
    os.register_at_fork(after_in_child=_forget_workers)
_HEADER[0] = int(bool(_FUNCTIONS) and os.environ.get("SYMGRAPH_NUMBA_POOL", "1") != "0")


def available() -> bool:
    """True where the pool works (Linux, x86-64 or AArch64)."""
    return bool(_FUNCTIONS)


def set_enabled(on: bool) -> None:
    """Hand parts to the pool's workers (True) or start a thread for each (False)."""
    _HEADER[0] = int(bool(on) and available())


def enabled() -> bool:
    return bool(_HEADER[0])


def workers() -> int:
    """Workers started so far in this process."""
    return sum(1 for k in range(SLOTS) if _SLOTS[k * _SLOT_WORDS + _SPAWNED_WORD])


def start_address() -> int | None:
    """Address of the pool's ``pthread_create``, or None."""
    return _FUNCTIONS.get("start")


def join_address() -> int | None:
    """Address of the pool's ``pthread_join``, or None."""
    return _FUNCTIONS.get("join")
