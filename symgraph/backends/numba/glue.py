"""What graph functions call besides kernels: calls of kernels through their addresses,
allocation, views, and run-time checks.

A graph function is glue around kernels, and numba compiles it afresh for every new
graph, so what it calls is chosen to lower into little code: each intrinsic here is a
few LLVM instructions where the Python construct it replaces (a ``raise`` statement, a
conditional expression over arrays, ``a.ctypes.data``, numba's ``reshape``, a tuple of
arguments) costs hundreds, most of them reference counting; and ``sg_empty`` is kept in
numba's disk cache where numba's own ``np.empty`` is compiled again in every process.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.callconv import excinfo_t
from numba.core.imputils import impl_ret_borrowed, impl_ret_new_ref
from numba.extending import intrinsic

from symgraph.backends.numba import helper
from symgraph.backends.numba.prelude import JIT_OPTIONS, SGRuntimeError, SGUseReference

__all__ = ["sg_call", "sg_call_as", "sg_cycles", "sg_empty", "sg_fail_if", "sg_out",
           "sg_reference_if", "sg_reshape", "sg_rows", "sg_same_data", "sg_slot",
           "sg_stack_for"]


@intrinsic
def sg_call(typingctx, kernel, site, addresses, *args):
    """``kernel(*args)`` called through the address ``addresses[site]`` instead of by
    name. A call by name links the callee's code into the caller, where LLVM optimises
    and compiles it again (inlined): for a graph function calling 30 kernels that was
    most of a 30 s compile. Through a pointer the caller stays small and each kernel is
    compiled (and disk-cached) once. ``kernel`` (a dispatcher) only gives the types;
    the runner fills ``addresses`` with the native entry points of the specialisations
    chosen here (numba's calling convention, so exceptions propagate). The arguments
    come one by one, not as a tuple: a tuple in the graph function holds a reference to
    each array, taken and released around every call."""
    if not isinstance(site, types.IntegerLiteral):
        return None
    argtys = kernel_argtypes(args)
    resty = _compiled_here(kernel.dispatcher, argtys)
    star = types.StarArgTuple.from_types(args)
    return resty(kernel, site, addresses, star), _indirect_call(resty, argtys)


@intrinsic
def sg_call_as(typingctx, kernel, site, addresses, declared, *args):
    """``sg_call`` of a kernel whose result type the generator declared (``declared``,
    a type passed as a value). While the graph function is typed for a parallel build
    (``helper.deferring``), the kernel is not compiled here but queued, and the
    declared type stands in for its result; the build checks it against the compiled
    kernel before anything runs. Otherwise the kernel is compiled and its own result
    type used, as in ``sg_call``."""
    if not isinstance(site, types.IntegerLiteral):
        return None
    argtys = kernel_argtypes(args)
    resty = declared.instance_type
    if not helper.defer(kernel.dispatcher, argtys):
        resty = _compiled_here(kernel.dispatcher, argtys)
    star = types.StarArgTuple.from_types(args)
    return resty(kernel, site, addresses, declared, star), _indirect_call(resty, argtys)


def _compiled_here(dispatcher, argtys):
    """Compile ``dispatcher`` for ``argtys`` in this process (after the helper let go of
    it) and return its result type."""
    helper.compiling_here(dispatcher)
    dispatcher.compile(argtys)
    return dispatcher.overloads[argtys].signature.return_type


def kernel_argtypes(args) -> tuple:
    """The types a kernel is compiled for, given the types of a call's arguments (a
    constant argument is a numba literal at the call; the kernel takes its type)."""
    return tuple(types.unliteral(a) for a in args)


def _indirect_call(resty, argtys):
    """The code of a call through ``addresses[site]`` (see ``sg_call``)."""

    def codegen(context, builder, signature, llargs):
        cc = context.call_conv
        fnty = cc.get_function_type(resty, argtys)
        table = context.make_array(signature.args[2])(context, builder, llargs[2])
        slot = cgutils.gep(builder, table.data, signature.args[1].literal_value)
        callee = builder.inttoptr(builder.load(slot), fnty.as_pointer())
        retty = cc.get_return_type(resty).pointee
        retval = cgutils.alloca_once(builder, retty)
        builder.store(cgutils.get_null_value(retty), retval)
        excinfo = cgutils.alloca_once(builder, ir.PointerType(excinfo_t), name="excinfo")
        star = signature.args[-1]
        values = [context.cast(builder, v, t, want) for v, t, want in
                  zip(cgutils.unpack_tuple(builder, llargs[-1], len(argtys)), star.types,
                      argtys)]
        packed = list(cc._get_arg_packer(argtys).as_arguments(builder, values))
        code = builder.call(callee, [retval, excinfo] + packed)
        status = cc._get_return_status(builder, code, builder.load(excinfo))
        with cgutils.if_unlikely(builder, status.is_error):
            cc.return_status_propagate(builder, status)
        return context.get_returned_value(builder, resty, builder.load(retval))

    return codegen


def _raise_if(exc_class):
    def raise_if(typingctx, condition):
        if not isinstance(condition, types.Boolean):
            return None

        def codegen(context, builder, signature, args):
            with cgutils.if_unlikely(builder, args[0]):
                context.call_conv.return_user_exc(builder, exc_class, ())
            return context.get_dummy_value()

        return types.none(condition), codegen

    return raise_if


sg_fail_if = intrinsic(_raise_if(SGRuntimeError))
sg_fail_if.__doc__ = """``if condition: raise SGRuntimeError()`` in a graph function. numba
lowers a ``raise`` statement with a release of every array alive at that point (hundreds
of instructions in a long graph function, for a path that never runs when the inputs
are right); this returns the error at once, as a kernel's error does (the failing call's
arrays are not released)."""
sg_reference_if = intrinsic(_raise_if(SGUseReference))
sg_reference_if.__doc__ = """``if condition: raise SGUseReference()``, as ``sg_fail_if``."""


@intrinsic
def sg_same_data(typingctx, a, b):
    """Whether arrays ``a`` and ``b`` start at the same address (a kernel wrote into the
    buffer it was given): two loads and a compare, where ``a.ctypes.data`` builds a
    ctypes view of each array."""
    if not isinstance(a, types.Array) or not isinstance(b, types.Array):
        return None

    def codegen(context, builder, signature, args):
        first = context.make_array(signature.args[0])(context, builder, args[0])
        second = context.make_array(signature.args[1])(context, builder, args[1])
        return builder.icmp_unsigned("==", builder.ptrtoint(first.data, ir.IntType(64)),
                                     builder.ptrtoint(second.data, ir.IntType(64)))

    return types.boolean(a, b), codegen


@intrinsic
def sg_slot(typingctx, stack, index, step, first):
    """``stack[index] if step else first``: where a loop's kernel writes a step output,
    its slot in the stack (which exists from the second step on) or, at the first step,
    its own buffer. A view and a select, where a conditional expression in the graph
    function costs two branches and the reference counting of both arms. ``stack`` is
    C-contiguous and ``0 <= index < len(stack)`` whenever ``step`` is not 0."""
    if not (isinstance(stack, types.Array) and isinstance(first, types.Array)
            and stack.layout == first.layout == "C" and first.ndim == stack.ndim - 1
            and first.dtype == stack.dtype and isinstance(index, types.Integer)
            and isinstance(step, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import populate_array

        stack_value, index_value, step_value, first_value = args
        whole = context.make_array(signature.args[0])(context, builder, stack_value)
        view = context.make_array(signature.return_type)(context, builder)
        shape = cgutils.unpack_tuple(builder, whole.shape)
        strides = cgutils.unpack_tuple(builder, whole.strides)
        index = context.cast(builder, index_value, signature.args[1], types.intp)
        offset = builder.mul(index, strides[0])
        populate_array(view, data=cgutils.pointer_add(builder, whole.data, offset),
                       shape=shape[1:], strides=strides[1:], itemsize=whole.itemsize,
                       meminfo=whole.meminfo, parent=whole.parent)
        later = builder.icmp_signed("!=", step_value, step_value.type(0))
        picked = builder.select(later, view._getvalue(), first_value)
        return impl_ret_borrowed(context, builder, signature.return_type, picked)

    return first(stack, index, step, first), codegen


@intrinsic
def sg_rows(typingctx, array, index, lo, hi):
    """``array[index, lo:hi]`` (``index`` an integer) or ``array[lo:hi]`` (``index``
    None) of a C-contiguous array, as a C-contiguous view: a loop's row part reading or
    writing its rows of a step. A pointer offset and a shape, where numba's slicing
    lowers into bounds and step arithmetic; ``0 <= lo <= hi <= rows`` (the caller cuts
    the parts)."""
    step = not isinstance(index, types.NoneType)
    if not (isinstance(array, types.Array) and array.layout == "C"
            and array.ndim >= (2 if step else 1) and isinstance(lo, types.Integer)
            and isinstance(hi, types.Integer)
            and (not step or isinstance(index, types.Integer))):
        return None
    result = array.copy(ndim=array.ndim - step, layout="C")

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import populate_array

        whole = context.make_array(array)(context, builder, args[0])
        view = context.make_array(result)(context, builder)
        shape = cgutils.unpack_tuple(builder, whole.shape)
        strides = cgutils.unpack_tuple(builder, whole.strides)
        first, stop = (context.cast(builder, v, t, types.intp)
                       for v, t in zip(args[2:], signature.args[2:]))
        offset = builder.mul(first, strides[int(step)])
        if step:
            at = context.cast(builder, args[1], signature.args[1], types.intp)
            offset = builder.add(offset, builder.mul(at, strides[0]))
        populate_array(view, data=cgutils.pointer_add(builder, whole.data, offset),
                       shape=[builder.sub(stop, first)] + shape[1 + step:],
                       strides=strides[step:], itemsize=whole.itemsize,
                       meminfo=whole.meminfo, parent=whole.parent)
        return impl_ret_borrowed(context, builder, result, view._getvalue())

    return result(array, index, lo, hi), codegen


@intrinsic
def sg_out(typingctx, buffer, shape):
    """The array a kernel writes an output of ``shape`` into: ``buffer`` when it has that
    shape, else a new C array (``buffer``'s dtype; ``buffer`` typed C or A). The branch
    and the allocation are a few instructions here; written in the kernel as
    ``if ...: out = sg_empty(...)`` they made numba merge two arrays in one variable,
    which cost the two LSTM step kernels 0.1-0.2 s of compile time each."""
    if not (isinstance(buffer, types.Array) and buffer.layout in ("C", "A")
            and isinstance(shape, types.BaseTuple) and len(shape) == buffer.ndim
            and all(isinstance(t, types.Integer) for t in shape.types)):
        return None

    def codegen(context, builder, signature, args):
        given = context.make_array(buffer)(context, builder, args[0])
        dims = _intp_items(context, builder, args[1], signature.args[1])
        same = cgutils.true_bit
        for have, want in zip(cgutils.unpack_tuple(builder, given.shape), dims):
            same = builder.and_(same, builder.icmp_signed("==", have, want))
        return _kept_or_new(context, builder, buffer, args[0], same, dims)

    return buffer(buffer, shape), codegen


@intrinsic
def sg_stack_for(typingctx, stack, length, value, step):
    """The stack of a loop's step outputs: at step 0 a new C array of ``length`` slots
    shaped like ``value`` (which exists only once the first step ran), later ``stack``
    itself. It replaces ``if step == 0: stack = sg_empty((length,) + value.shape, ...)``
    in the loop body, whose merge of two arrays numba lowers into a few hundred
    instructions."""
    ndim = value.ndim + 1 if isinstance(value, types.Array) else 1
    if not (isinstance(stack, types.Array) and stack.layout == "C" and stack.ndim == ndim
            and isinstance(length, types.Integer) and isinstance(step, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        stack_value, length_value, value_value, step_value = args
        dims = [context.cast(builder, length_value, signature.args[1], types.intp)]
        if isinstance(value, types.Array):
            shaped = context.make_array(value)(context, builder, value_value)
            dims += cgutils.unpack_tuple(builder, shaped.shape)
        later = builder.icmp_signed("!=", step_value, step_value.type(0))
        return _kept_or_new(context, builder, stack, stack_value, later, dims)

    return stack(stack, length, value, step), codegen


def _intp_items(context, builder, value, tuple_type) -> list:
    return [context.cast(builder, v, t, types.intp)
            for v, t in zip(cgutils.unpack_tuple(builder, value), tuple_type.types)]


def _kept_or_new(context, builder, array_type, array, keep, dims):
    """``array`` (a new reference) where ``keep`` is true, else a new C array of shape
    ``dims``."""
    with builder.if_else(keep, likely=True) as (kept, fresh):
        with kept:
            context.nrt.incref(builder, array_type, array)
            kept_block = builder.basic_block
        with fresh:
            allocated = _allocate(context, builder, array_type, dims)
            fresh_block = builder.basic_block
    result = builder.phi(array.type)
    result.add_incoming(array, kept_block)
    result.add_incoming(allocated, fresh_block)
    return impl_ret_new_ref(context, builder, array_type, result)


def _allocate(context, builder, array_type, dims):
    """A new C array of ``array_type`` and shape ``dims`` through numba's runtime, in
    line (numba's ``np.empty`` compiles an allocator function in every process).
    Negative or overflowing sizes return SGRuntimeError."""
    from numba.np.arrayobj import populate_array

    intp = context.get_value_type(types.intp)
    element = context.get_data_type(array_type.dtype)
    itemsize = intp(context.get_abi_sizeof(element))
    size, bad = itemsize, cgutils.false_bit
    for d in dims:
        bad = builder.or_(bad, builder.icmp_signed("<", d, intp(0)))
        product = builder.smul_with_overflow(size, d)
        size = builder.extract_value(product, 0)
        bad = builder.or_(bad, builder.extract_value(product, 1))
    with cgutils.if_unlikely(builder, bad):
        context.call_conv.return_user_exc(builder, SGRuntimeError, ())
    align = context.get_preferred_array_alignment(array_type.dtype)
    meminfo = context.nrt.meminfo_alloc_aligned(builder, size, align)
    data = builder.bitcast(context.nrt.meminfo_data(builder, meminfo), element.as_pointer())
    strides = [itemsize]
    for d in reversed(dims[1:]):
        strides.insert(0, builder.mul(strides[0], d))
    array = context.make_array(array_type)(context, builder)
    populate_array(array, data=data, shape=dims, strides=strides, itemsize=itemsize,
                   meminfo=meminfo)
    return array._getvalue()


@intrinsic
def sg_reshape(typingctx, array, shape):
    """``array.reshape(shape)`` of a C-contiguous array: a view, with numpy's rules (one
    ``-1`` stands for the rest; the sizes must agree, else SGRuntimeError). numba's own
    ``reshape`` calls a subroutine that also handles strided arrays; this is a few
    multiplications and compares in line. The generator passes C-typed arrays; one typed
    otherwise is checked when it runs (SGRuntimeError unless its elements are in C
    order)."""
    if not (isinstance(array, types.Array) and isinstance(shape, types.BaseTuple)
            and len(shape) > 0 and all(isinstance(t, types.Integer) for t in shape.types)):
        return None
    result = array.copy(ndim=len(shape), layout="C")

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import populate_array

        whole = context.make_array(signature.args[0])(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        dims = _intp_items(context, builder, args[1], signature.args[1])
        one, zero, minus_one = intp(1), intp(0), intp(-1)
        known, unknowns, bad = one, zero, cgutils.false_bit
        for d in dims:
            free = builder.icmp_signed("==", d, minus_one)
            bad = builder.or_(bad, builder.icmp_signed("<", d, minus_one))
            unknowns = builder.add(unknowns, builder.zext(free, intp))
            known = builder.mul(known, builder.select(free, one, d))
        size = whole.nitems
        no_known = builder.icmp_signed("==", known, zero)
        inferred = builder.sdiv(size, builder.select(no_known, one, known))
        dims = [builder.select(builder.icmp_signed("==", d, minus_one), inferred, d)
                for d in dims]
        total = one
        for d in dims:
            total = builder.mul(total, d)
        bad = builder.or_(bad, builder.icmp_signed(">", unknowns, one))
        bad = builder.or_(bad, builder.and_(builder.icmp_signed("==", unknowns, one), no_known))
        bad = builder.or_(bad, builder.icmp_signed("!=", total, size))
        if signature.args[0].layout != "C":
            bad = builder.or_(bad, builder.not_(_in_c_order(builder, whole)))
        with cgutils.if_unlikely(builder, bad):
            context.call_conv.return_user_exc(builder, SGRuntimeError, ())
        strides = [whole.itemsize]
        for d in reversed(dims[1:]):
            strides.insert(0, builder.mul(strides[0], d))
        view = context.make_array(signature.return_type)(context, builder)
        populate_array(view, data=whole.data, shape=dims, strides=strides,
                       itemsize=whole.itemsize, meminfo=whole.meminfo, parent=whole.parent)
        return impl_ret_borrowed(context, builder, signature.return_type, view._getvalue())

    return result(array, shape), codegen


def _in_c_order(builder, array):
    """Whether ``array``'s elements lie in C order (numpy's C-contiguity: the strides of
    axes of length 1 do not matter; an empty array is contiguous)."""
    shape = cgutils.unpack_tuple(builder, array.shape)
    strides = cgutils.unpack_tuple(builder, array.strides)
    expected, ok = array.itemsize, cgutils.true_bit
    for n, stride in zip(reversed(shape), reversed(strides)):
        fits = builder.or_(builder.icmp_signed("==", n, n.type(1)),
                           builder.icmp_signed("==", stride, expected))
        ok = builder.and_(ok, fits)
        expected = builder.mul(expected, n)
    return builder.or_(ok, builder.icmp_signed("==", array.nitems, array.nitems.type(0)))


@intrinsic
def sg_cycles(typingctx):
    """The CPU's cycle counter (for the backend's profiling mode)."""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.readcyclecounter", fnty=ir.FunctionType(
            ir.IntType(64), []))
        return builder.call(fn, [])

    return sig, codegen


@numba.njit(**JIT_OPTIONS)
def sg_empty(shape, dtype):
    """``np.empty(shape, dtype)``. Generated code allocates through this so that each
    (rank, dtype) is compiled once per machine and then loaded from numba's disk cache:
    numba compiles its own ``np.empty`` afresh in every process, 40-100 ms for each
    shape type and dtype, several times per cold build."""
    return np.empty(shape, dtype)
