"""Row parts of a loop on several threads: ``sg_run_parts``.

A scan whose step keeps batch rows apart (``rows.independent_rows``) is generated as a
*part function* ``part(lo, hi, ...)`` that runs the whole loop on rows ``lo:hi``. Its
parts share nothing but the arrays they write disjoint rows of, so they run side by side
with no synchronisation until the loop ends: the calling thread takes the first, and each
other part is handed to a waiting worker thread of the ``pool`` (a thread of its own
where the pool does not work). While they run, the BLAS of compiled code uses one thread
(each part's small per-step products run on the part's own core, instead of every
product waking the BLAS thread pool).

Loops are generated as part functions while the thread setting is above 1
(``SYMGRAPH_NUMBA_THREADS=N``, default ``0``: every usable core; or :func:`set_threads`
before ``sg.function``). A loop whose invariants (the weights its steps multiply by) take
more than the shared limit (:func:`set_shared_limit`, default one core's L2 cache) runs
as one part: every part would stream all of them every step (``char-512``'s 4 MB
recurrent weight). Each part's products run in register tiles (``tiles``) on its own
core; on the 2-core development machine ``lstm-dinos``' training step ran at 204k
tokens/s this way, against 139k with tiles in whole loops and 117k with whole loops on
OpenBLAS's two threads (one process each, minutes apart; benchmarks/results, session 9).

The number of parts is ``min(threads, rows // min_rows)`` (at least 1; 1 over the shared
limit), read at run time from :func:`set_threads`, :func:`set_min_rows` (default
:data:`MIN_ROWS`) and :func:`set_shared_limit`, so cached
code follows the settings of the process that runs it. A part that no thread can take
runs in the calling thread. An error in any part is raised after every part has
finished.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import os
import threading

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.callconv import excinfo_t
from numba.extending import intrinsic

from symgraph.backends.numba import blas, pool
from symgraph.backends.numba.glue import _compiled_here, kernel_argtypes
from symgraph.backends.numba.prelude import SGRuntimeError

__all__ = ["sg_run_parts", "sg_part_count", "sg_one_thread", "sg_part_products",
           "set_part_products", "PART_PRODUCTS", "set_threads", "get_threads", "set_min_rows",
           "set_shared_limit", "part_argtypes", "MIN_ROWS", "MAX_PARTS", "SHARED_BYTES"]

#: Fewest rows per part by default: below this a part's products are too thin to pay
#: for a thread.
MIN_ROWS = 16
#: Most parts of one loop.
MAX_PARTS = 64

_I8P = ir.IntType(8).as_pointer()
_I32, _I64 = ir.IntType(32), ir.IntType(64)
_START_TYPE = ir.FunctionType(_I8P, [_I8P])
_names = itertools.count()


def _default_threads() -> int:
    """``SYMGRAPH_NUMBA_THREADS``; ``0`` (the default): the cores this process may use."""
    value = os.environ.get("SYMGRAPH_NUMBA_THREADS", "0")
    if int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _core_cache_bytes() -> int:
    """The size of one core's L2 cache (Linux sysfs), else 1 MiB."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as f:
            text = f.read().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        return 1 << 20


#: Most bytes of loop invariants (the weights a step multiplies by) that the parts of one
#: loop may share by default: one core's L2 cache. Each part reads all of them every step,
#: so larger weights would stream from the shared cache or memory once per part.
SHARED_BYTES = _core_cache_bytes()

#: Multiply-adds from which a product is cut into row parts by default: about 10 us of
#: work, against well under 1 us to hand a part to the pool.
PART_PRODUCTS = 1 << 20

# [threads, min_rows, inside parts, shared bytes, part products], read by generated code
# through the symbol ``sg_parts_config``.
_CONFIG = (ctypes.c_int64 * 5)(_default_threads(), MIN_ROWS, 0, SHARED_BYTES, PART_PRODUCTS)


def set_threads(n: int) -> None:
    """Run independent-row loops in up to ``n`` parts, and large products too (1: never
    split). Loops are generated in parts by ``sg.function`` calls made while ``n > 1``;
    the parts of compiled code follow the setting at run time."""
    if int(n) < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    _CONFIG[0] = int(n)


def get_threads() -> int:
    return int(_CONFIG[0])


def set_min_rows(n: int) -> None:
    """Give each part at least ``n`` rows (fewer parts for small batches)."""
    if int(n) < 1:
        raise ValueError(f"min_rows must be at least 1, got {n}")
    _CONFIG[1] = int(n)


def set_part_products(macs: int) -> None:
    """Cut products of at least ``macs`` multiply-adds into row parts (when there are
    several threads)."""
    if int(macs) < 1:
        raise ValueError(f"the product size must be at least 1, got {macs}")
    _CONFIG[4] = int(macs)


def set_shared_limit(n: int) -> None:
    """Cut a loop into row parts only while the invariants its steps read (weights) take
    at most ``n`` bytes; a loop over larger ones runs whole (its large products are
    still cut into row parts, one product at a time)."""
    if int(n) < 0:
        raise ValueError(f"the shared limit must be at least 0, got {n}")
    _CONFIG[3] = int(n)


def own_cores():
    """While compiled code runs with more than one thread, the BLAS it calls runs on one:
    the parallel work is cut into parts here (loops, large products), and an idle BLAS
    thread spinning for its next task would take a core from a part. (A context manager;
    with one thread, a shared one that does nothing: this is on every call's path.)"""
    if _CONFIG[0] == 1 or _BLAS_GET is None:
        return _UNCHANGED
    return _blas_on_one_thread()


@contextlib.contextmanager
def _blas_on_one_thread():
    with _OWNERS_LOCK:  # the first of concurrent callers saves the count, the last restores
        if _OWNERS[0] == 0:
            _OWNERS[1] = _BLAS_GET()
            _BLAS_SET(1)
        _OWNERS[0] += 1
    try:
        yield
    finally:
        with _OWNERS_LOCK:
            _OWNERS[0] -= 1
            if _OWNERS[0] == 0:
                _BLAS_SET(_OWNERS[1])


_UNCHANGED = contextlib.nullcontext()


def part_argtypes(argtypes: tuple) -> tuple:
    """The types a part function is compiled for: its row range, then the arguments."""
    return (types.intp, types.intp) + tuple(argtypes)


# ---- native symbols the generated code calls ------------------------------------------------

def _address(fn) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value


def _pthread(name: str):
    """``name`` from the C library or libpthread, or None (no pthreads here)."""
    for library in ("c", "pthread"):
        try:
            found = getattr(ctypes.CDLL(ctypes.util.find_library(library)), name, None)
        except (OSError, TypeError):  # pragma: no cover - no such library
            continue
        if found is not None:
            return found
    return None  # pragma: no cover - not a POSIX system


def _register_symbols() -> None:
    """``sg_thread_start`` / ``sg_thread_join`` (pthreads), ``sg_blas_threads_get`` /
    ``_set`` (the compiled products' OpenBLAS) and ``sg_parts_config``; where a library
    lacks one, a stub that starts no thread or leaves the BLAS alone."""
    from numba import cfunc

    start, join = _pthread("pthread_create"), _pthread("pthread_join")
    if pool.available():  # a part goes to a waiting worker (its own thread if none is free)
        start, join = pool.start_address(), pool.join_address()
    elif start is None or join is None:  # pragma: no cover - no pthreads: parts run in turn
        start = cfunc(types.int32(types.voidptr, types.voidptr, types.voidptr,
                                  types.voidptr))(lambda t, a, f, x: 1).ctypes
        join = cfunc(types.int32(types.int64, types.voidptr))(lambda t, r: 0).ctypes
    get, put = _BLAS_GET, _BLAS_SET
    if get is None or put is None:  # pragma: no cover - another BLAS: left as it is
        get = cfunc(types.int32())(lambda: 1).ctypes
        put = cfunc(types.void(types.int32))(lambda n: None).ctypes
    for name, fn in (("sg_thread_start", start), ("sg_thread_join", join),
                     ("sg_blas_threads_get", get), ("sg_blas_threads_set", put)):
        address = fn if isinstance(fn, int) else _address(fn)
        _SYMBOLS[name] = address
        llvm.add_symbol(name, address)
    llvm.add_symbol("sg_parts_config", ctypes.addressof(_CONFIG))


_BLAS_GET, _BLAS_SET = blas._symbol(blas._GETTERS), blas._symbol(blas._SETTERS)
_OWNERS = [0, 1]  # callers inside own_cores, the BLAS thread count before the first
_OWNERS_LOCK = threading.Lock()
_SYMBOLS: dict[str, int] = {}  # the addresses given to the symbols above
_register_symbols()


# ---- the intrinsic -----------------------------------------------------------------------------

@intrinsic
def sg_run_parts(typingctx, kernel, site, addresses, rows, shared, *args):
    """``kernel(lo, hi, *args)`` for the row parts ``lo:hi`` of ``range(rows)``, side by
    side on threads (see the module docstring); ``kernel`` is called through
    ``addresses[site]`` as in ``glue.sg_call``. ``shared``: the bytes every part reads
    (the loop's weights); above the shared limit the loop runs as one part."""
    if not (isinstance(site, types.IntegerLiteral) and isinstance(rows, types.Integer)
            and isinstance(shared, types.Integer)):
        return None
    argtys = part_argtypes(kernel_argtypes(args))
    resty = _compiled_here(kernel.dispatcher, argtys)
    star = types.StarArgTuple.from_types(args)

    def callee(context, builder, signature, llargs):
        table = context.make_array(signature.args[2])(context, builder, llargs[2])
        return builder.load(cgutils.gep(builder, table.data, signature.args[1].literal_value))

    return (types.none(kernel, site, addresses, rows, shared, star),
            _run_parts(resty, argtys, callee, rows_at=3, shared_at=4))


@intrinsic
def sg_parts_of(typingctx, function, rows, *args):
    """``sg_run_parts`` for a library function called by name (linked into the caller):
    ``function(lo, hi, *args)`` over the row parts of ``range(rows)``."""
    if not (isinstance(function, types.Dispatcher) and isinstance(rows, types.Integer)):
        return None
    dispatcher = function.dispatcher
    argtys = part_argtypes(kernel_argtypes(args))
    dispatcher.compile(argtys)
    compiled = dispatcher.overloads[argtys]
    star = types.StarArgTuple.from_types(args)

    def callee(context, builder, signature, llargs):
        context.active_code_library.add_linking_library(compiled.library)
        fnty = context.call_conv.get_function_type(compiled.signature.return_type, argtys)
        fn = cgutils.get_or_insert_function(builder.module, fnty,
                                            compiled.fndesc.mangled_name)
        return builder.ptrtoint(fn, _I64)

    return (types.none(function, rows, star),
            _run_parts(compiled.signature.return_type, argtys, callee, rows_at=1))


@intrinsic
def sg_part_count(typingctx, rows):
    """How many row parts ``sg_parts_of`` would cut ``range(rows)`` into now (1 inside a
    part, or with one thread)."""
    if not isinstance(rows, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        count = context.cast(builder, args[0], signature.args[0], types.intp)
        return _part_count(builder, _config(builder.module), count)

    return types.intp(rows), codegen


@intrinsic
def sg_part_products(typingctx):
    """Multiply-adds from which a product is cut into row parts (``set_part_products``)."""
    def codegen(context, builder, signature, args):
        return builder.load(cgutils.gep_inbounds(builder, _config(builder.module), 0, 4))

    return types.int64(), codegen


@intrinsic
def sg_one_thread(typingctx):
    """True when the thread setting is 1: no row parts, and the BLAS of compiled code
    keeps its own threads (``own_cores`` leaves it alone)."""
    def codegen(context, builder, signature, args):
        threads = builder.load(cgutils.gep_inbounds(builder, _config(builder.module), 0, 0))
        return builder.icmp_signed("==", threads, _I64(1))

    return types.boolean(), codegen


def _run_parts(resty, argtys, callee_of, rows_at: int, shared_at: int | None = None):
    def codegen(context, builder, signature, llargs):
        module = builder.module
        fnty = context.call_conv.get_function_type(resty, argtys)
        callee = callee_of(context, builder, signature, llargs)
        star = signature.args[-1]
        values = [context.cast(builder, v, t, want) for v, t, want in
                  zip(cgutils.unpack_tuple(builder, llargs[-1], len(star.types)), star.types,
                      argtys[2:])]
        shared_type = ir.LiteralStructType([v.type for v in values])
        shared = cgutils.alloca_once(builder, shared_type)
        packed = cgutils.get_null_value(shared_type)
        for k, v in enumerate(values):
            packed = builder.insert_value(packed, v, k)
        builder.store(packed, shared)
        # closure of a part: callee, shared arguments, lo, hi, failed
        closure_type = ir.LiteralStructType([_I64, _I8P, _I64, _I64, _I32])
        closures = cgutils.alloca_once(builder, closure_type, size=MAX_PARTS)
        handles = cgutils.alloca_once(builder, _I64, size=MAX_PARTS)
        started = cgutils.alloca_once(builder, ir.IntType(1), size=MAX_PARTS)
        trampoline = _trampoline(context, module, fnty, resty, argtys, closure_type,
                                 shared_type)
        rows = context.cast(builder, llargs[rows_at], signature.args[rows_at], types.intp)
        config = _config(module)
        parts = _part_count(builder, config, rows)
        if shared_at is not None:
            read_by_all = context.cast(builder, llargs[shared_at], signature.args[shared_at],
                                       types.intp)
            limit = builder.load(cgutils.gep_inbounds(builder, config, 0, 3))
            parts = builder.select(builder.icmp_signed(">", read_by_all, limit), _I64(1), parts)
        several = builder.icmp_signed(">", parts, _I64(1))
        depth = cgutils.gep_inbounds(builder, config, 0, 2)
        blas_get = cgutils.get_or_insert_function(module, ir.FunctionType(_I32, []),
                                                  "sg_blas_threads_get")
        blas_set = cgutils.get_or_insert_function(module, ir.FunctionType(ir.VoidType(), [_I32]),
                                                  "sg_blas_threads_set")
        start = cgutils.get_or_insert_function(
            module, ir.FunctionType(_I32, [_I64.as_pointer(), _I8P, _START_TYPE.as_pointer(),
                                           _I8P]), "sg_thread_start")
        join = cgutils.get_or_insert_function(
            module, ir.FunctionType(_I32, [_I64, _I8P.as_pointer()]), "sg_thread_join")
        blas_before = cgutils.alloca_once(builder, _I32)
        with builder.if_then(several):  # parts do not split again, nor use BLAS threads
            builder.store(builder.call(blas_get, []), blas_before)
            builder.call(blas_set, [_I32(1)])
            builder.store(_I64(1), depth)

        def bound(p):
            return builder.sdiv(builder.mul(p, rows), parts)

        with cgutils.for_range(builder, builder.sub(parts, _I64(1))) as loop:
            p = builder.add(loop.index, _I64(1))
            closure = builder.gep(closures, [p])
            fields = [callee, builder.bitcast(shared, _I8P), bound(p),
                      bound(builder.add(p, _I64(1))), _I32(0)]
            for k, value in enumerate(fields):
                builder.store(value, cgutils.gep_inbounds(builder, closure, 0, k))
            code = builder.call(start, [builder.gep(handles, [p]), ir.Constant(_I8P, None),
                                        trampoline, builder.bitcast(closure, _I8P)])
            ok = builder.icmp_signed("==", code, _I32(0))
            builder.store(ok, builder.gep(started, [p]))
            with builder.if_then(builder.not_(ok), likely=False):  # run it here instead
                builder.call(trampoline, [builder.bitcast(closure, _I8P)])
        first = _call_part(context, builder, builder.inttoptr(callee, fnty.as_pointer()),
                           resty, argtys, _I64(0), bound(_I64(1)), values)
        failed = cgutils.alloca_once_value(builder, _I32(0))
        with cgutils.for_range(builder, builder.sub(parts, _I64(1))) as loop:
            p = builder.add(loop.index, _I64(1))
            with builder.if_then(builder.load(builder.gep(started, [p]))):
                builder.call(join, [builder.load(builder.gep(handles, [p])),
                                    ir.Constant(_I8P.as_pointer(), None)])
            status = builder.load(cgutils.gep_inbounds(builder, builder.gep(closures, [p]),
                                                       0, 4))
            builder.store(builder.or_(builder.load(failed), status), failed)
        with builder.if_then(several):
            builder.call(blas_set, [builder.load(blas_before)])
            builder.store(_I64(0), depth)
        with cgutils.if_unlikely(builder, first.is_error):
            context.call_conv.return_status_propagate(builder, first)
        with cgutils.if_unlikely(builder, builder.icmp_signed("!=", builder.load(failed),
                                                              _I32(0))):
            context.call_conv.return_user_exc(builder, SGRuntimeError, ())
        return context.get_dummy_value()

    return codegen


def _config(module):
    """The global ``sg_parts_config``: threads, min_rows, 1 while parts run, and the
    shared limit."""
    config = module.globals.get("sg_parts_config")
    if config is None:
        config = ir.GlobalVariable(module, ir.ArrayType(_I64, 5), "sg_parts_config")
        config.linkage = "external"
    return config


def _part_count(builder, config, rows):
    """``max(1, min(threads, rows // min_rows, MAX_PARTS))``, or 1 inside a part."""
    threads = builder.load(cgutils.gep_inbounds(builder, config, 0, 0))
    min_rows = builder.load(cgutils.gep_inbounds(builder, config, 0, 1))
    inside = builder.load(cgutils.gep_inbounds(builder, config, 0, 2))
    by_rows = builder.sdiv(rows, _max(builder, min_rows, _I64(1)))
    parts = _min(builder, _min(builder, threads, by_rows), _I64(MAX_PARTS))
    parts = builder.select(builder.icmp_signed("!=", inside, _I64(0)), _I64(1), parts)
    return _max(builder, parts, _I64(1))


def _min(builder, a, b):
    return builder.select(builder.icmp_signed("<", a, b), a, b)


def _max(builder, a, b):
    return builder.select(builder.icmp_signed(">", a, b), a, b)


def _call_part(context, builder, callee, resty, argtys, lo, hi, values):
    """Call the part function (numba's calling convention) on rows ``lo:hi``; its
    status."""
    cc = context.call_conv
    retty = cc.get_return_type(resty).pointee
    retval = cgutils.alloca_once(builder, retty)
    builder.store(cgutils.get_null_value(retty), retval)
    excinfo = cgutils.alloca_once(builder, ir.PointerType(excinfo_t), name="excinfo")
    packed = list(cc._get_arg_packer(argtys).as_arguments(builder, [lo, hi] + values))
    code = builder.call(callee, [retval, excinfo] + packed)
    return cc._get_return_status(builder, code, builder.load(excinfo))


def _trampoline(context, module, fnty, resty, argtys, closure_type, shared_type):
    """``void *start(void *closure)`` for ``pthread_create``: calls the part described by
    the closure and records whether it failed."""
    fn = ir.Function(module, _START_TYPE, name=f"sg_part_start_{next(_names)}_{id(module)}")
    fn.linkage = "internal"
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    closure = builder.bitcast(fn.args[0], closure_type.as_pointer())

    def field(k):
        return builder.load(cgutils.gep_inbounds(builder, closure, 0, k))

    callee = builder.inttoptr(field(0), fnty.as_pointer())
    shared = builder.load(builder.bitcast(field(1), shared_type.as_pointer()))
    values = [builder.extract_value(shared, k) for k in range(len(shared_type.elements))]
    status = _call_part(context, builder, callee, resty, argtys, field(2), field(3), values)
    builder.store(builder.zext(status.is_error, _I32), cgutils.gep_inbounds(builder, closure,
                                                                              0, 4))
    builder.ret(ir.Constant(_I8P, None))
    return fn
