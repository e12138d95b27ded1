"""``compile(fgraph, n_inputs) -> runner``: the whole FunctionGraph as one generated,
njit-compiled Python function.

1. Plan: fuse Elemwise subgraphs (``fusion``), and mark values that need no line of
   their own (views read by fused loops through index maps, ``x.shape`` read only as
   ``x.shape[i]``, shape vectors read only by Reshape).
2. Emit one comment line per node (``# [n7] v12 = Op{props}(v3, v9)``) and its code
   (``registry.lower``): a fused kernel, a hand-written kernel (``kernels``, ``products``), a numba
   expression (views, scalar arithmetic), or, for ops without a lowering, the op's
   ``perform`` in object mode. Scan nodes become ``for`` loops with their inner graph
   inline and per-step buffers reused from step to step (``lower_scan``).
3. Kernels are separate functions in files named by the hash of their source
   (``diskcache``): equal structures share one compiled kernel, and numba's
   ``cache=True`` keeps it across processes. The graph function calls them through
   their addresses (``glue.sg_call``) so that their code is not linked, re-optimised
   and re-compiled into it; long graph functions are cut into chunks (``split``); the
   graph function gets a light LLVM pipeline of its own (``pipeline``).
4. Compile eagerly with an explicit signature (arrays C-contiguous, 0-d values as numba
   scalars). Compiled functions are cached in-process by the hash of the generated
   source and signature (a second ``sg.function`` of the same graph does not compile)
   and on disk (a later process loads the machine code).
   Kernels with a declared result type (``glue.sg_call_as``) are queued while the
   graph function is typed and compiled by a helper process meanwhile (``helper``); the
   declared types are checked against the compiled kernels before anything runs.

The runner passes the inputs (and the constants and kernel addresses), returns the
outputs (0-d ones as arrays) and, when the compiled code raises, reruns the graph with
the reference interpreter so that the user gets the reference's error type and message.
``runner.source`` is the generated code, ``runner.compile_s`` the seconds spent compiling
(or loading) it, ``runner.from_disk`` whether it came from the disk cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import time
import warnings

import numba
import numpy as np
from numba import types
from numba.core.errors import NumbaExperimentalFeatureWarning

from symgraph.backends.numba import (
    allocator,
    blas,
    diskcache,
    fusion,
    helper,
    lower_math,
    split,
    threads,
)
from symgraph.backends.numba.emitter import GraphEmitter, ModuleState, result_of
from symgraph.backends.numba.glue import kernel_argtypes
from symgraph.backends.numba.pipeline import GraphCompiler
from symgraph.backends.numba.prelude import JIT_OPTIONS, SGUseReference
from symgraph.backends.numba.registry import lower
from symgraph.fgraph import FunctionGraph
from symgraph.graph import toposort

#: In-process counters (the tests check that a second compile of a graph is a hit).
STATS = {"compiled": 0, "memory_hits": 0, "disk_hits": 0, "wrong_declarations": 0}
_MEMORY: dict[str, tuple] = {}
_CONFIGURED = False
#: Statements per compiled function (longer bodies are split into chunk functions).
CHUNK_LIMIT = int(os.environ.get("SYMGRAPH_NUMBA_CHUNK", "150"))
#: ``SYMGRAPH_NUMBA_PROFILE=1``: count CPU cycles per node (``runner.profile()``).
PROFILE = os.environ.get("SYMGRAPH_NUMBA_PROFILE") == "1"
#: ``SYMGRAPH_NUMBA_STRICT=1`` (the test suite): a wrong declared result type is an error
#: instead of a silent rebuild without declarations.
STRICT = os.environ.get("SYMGRAPH_NUMBA_STRICT") == "1"
_LOWERINGS = ("symgraph.backends.numba.lower_basic", "symgraph.backends.numba.lower_math",
              "symgraph.backends.numba.lower_scan", "symgraph.backends.numba.lower_random")


def compile(fgraph: FunctionGraph, n_inputs: int = 0):  # noqa: A001 - the backend protocol
    """A runner for ``fgraph`` (see the module docstring)."""
    global _CONFIGURED
    if not _CONFIGURED:
        for module in _LOWERINGS:
            importlib.import_module(module)
        blas.configure_from_environment()
        allocator.keep_freed_memory()
        _CONFIGURED = True
    started = time.perf_counter()
    program = Program(fgraph)
    codegen_s = time.perf_counter() - started
    entry = _MEMORY.get(program.key) if program.key else None
    if entry is None:
        try:
            entry = program.build()
        except WrongDeclaration:
            STATS["wrong_declarations"] += 1
            if STRICT:
                raise
            diskcache.forget(program.key)
            program = Program(fgraph, declare=False)
            entry = program.build()
        if program.key:
            _MEMORY[program.key] = entry
    else:
        STATS["memory_hits"] += 1
    dispatcher, addresses, compile_s, from_disk = entry
    return Runner(dispatcher, addresses, program, codegen_s, compile_s, from_disk, fgraph)


# ---- emitting graphs ---------------------------------------------------------------------

def emit_graph(ctx: GraphEmitter, inputs, outputs) -> None:
    """Emit the nodes between ``inputs`` (already named in ``ctx``) and ``outputs``."""
    nodes = toposort(outputs, blockers=inputs)
    clients = fusion.client_map(nodes, outputs)
    out_set = set(outputs)
    steps, virtual = fusion.plan(nodes, clients, out_set)
    steps = fusion.absorb_joins(steps, clients, out_set)
    virtual |= _shape_only(nodes, clients, out_set, virtual)
    ctx.virtual |= virtual
    ctx.clients = clients
    pairs = lower_math.products_added(steps, clients, out_set, ctx.virtual)
    added = {id(group): product for group, product in pairs}
    folded_products = {id(product) for _, product in pairs}
    for group, _ in pairs:  # a bias row read through a view: make the view
        ctx.virtual -= set(group.members[0].inputs)
    for step in steps:
        if id(step) in folded_products:
            ctx.comment(step, "  [computed below, with the addition: sg_gemm_add]")
            continue
        if not isinstance(step, fusion.Group) and all(o in ctx.virtual for o in step.outputs):
            ctx.comment(step, "  [folded into its clients]")
            continue
        if not isinstance(step, fusion.Group) and all(o in ctx.precomputed
                                                      for o in step.outputs):
            ctx.comment(step, "  [computed above, with another node]")
            continue
        slot = ctx.state.profile_slot(step, ctx.loop_depth) if PROFILE else None
        if slot is not None:
            ctx.emit(f"_c{slot} = sg_cycles()")
        if id(step) in added:
            lower_math.emit_gemm_add(ctx, step.members[0], added[id(step)])
        elif isinstance(step, fusion.Group):
            _emit_group(ctx, step)
        else:
            ctx.comment(step)
            lower(step.op, step, ctx)
        if slot is not None:
            ctx.emit(f"_prof[{ctx.profile_bank}, {slot}] += sg_cycles() - _c{slot}")


def _shape_only(nodes, clients, outputs, virtual) -> set:
    """``Shape`` outputs read only by ``Subtensor{int}`` or as a Reshape's shape (both
    lowered as ``x.shape[i]``, ``x`` not itself folded) and ``MakeVector`` outputs read
    only as a Reshape's shape."""
    from symgraph.ops.shape import MakeVector, Reshape, Shape
    from symgraph.ops.subtensor import Subtensor

    found = set()
    for node in nodes:
        out = node.outputs[0]
        users = clients.get(out, [])
        if out in outputs or not users or "output" in users:
            continue
        if isinstance(node.op, Shape) and all(
                (isinstance(c.op, Subtensor) and len(c.op.idx_list) == 1
                 and isinstance(c.op.idx_list[0], int))
                or (isinstance(c.op, Reshape) and c.inputs[1] is out and c.inputs[0] is not out
                    and node.inputs[0] not in virtual) for c in users):
            found.add(out)
        if isinstance(node.op, MakeVector) and all(
                isinstance(c.op, Reshape) and c.inputs[1] is out and c.inputs[0] is not out
                for c in users):
            found.add(out)
    return found


def _emit_group(ctx: GraphEmitter, group: fusion.Group) -> None:
    name, source, args, outs = fusion.group_kernel(group, ctx.virtual)
    ctx.kernel(name, source)
    for node in group.members + group.joins:
        ctx.comment(node, f"  [fused: {name}]")
    declared = result_of(*outs) if all(o.ndim for o in outs) else ()
    call = ctx.call(name, [ctx.ref(a) for a in args] + [ctx.buffer(o) for o in outs], declared)
    if len(outs) == 1:
        ctx.bind(outs[0], call)
    else:
        ctx.bind_many(outs, call)


# ---- the program ---------------------------------------------------------------------------

def numba_type(var):
    """Argument type: a numba scalar for 0-d values, else a C-contiguous array."""
    dtype = numba.from_dtype(np.dtype(var.dtype))
    return dtype if var.ndim == 0 else types.Array(dtype, var.ndim, "C")


class Program:
    """The generated source of one FunctionGraph, ready to compile."""

    def __init__(self, fgraph: FunctionGraph, declare: bool = True) -> None:
        state = ModuleState(declare)
        lines: list[str] = []
        ctx = GraphEmitter(state, lines)
        params = []
        for var in fgraph.inputs:
            params.append(ctx.name_for(var))
            ctx.note(var, "C", owned=False)
        emit_graph(ctx, fgraph.inputs, fgraph.outputs)
        results = []
        for out in fgraph.outputs:
            expr = ctx.ref(out)
            if out.ndim and not ctx.owned.get(out, False):
                expr = f"{expr}.copy()"
            results.append(expr)
        if PROFILE:
            state.const_args.append(("_prof", np.zeros((2, len(state.profiled)), np.int64)))
            self.profiled = state.profiled
        params += [name for name, _ in state.const_args] + ["_kp"]
        self.consts = [value for _, value in state.const_args]
        self.kernels = state.kernels
        self.dynamic = state.dynamic
        self.arg_types = ([numba_type(v) for v in fgraph.inputs]
                          + [types.Array(numba.from_dtype(c.dtype), c.ndim, "C")
                             for c in self.consts] + [types.Array(types.int64, 1, "C")])
        self.scalar_inputs = [v.ndim == 0 for v in fgraph.inputs]
        self.scalar_outputs = [out.dtype if out.ndim == 0 else None for out in fgraph.outputs]
        ret = ", ".join(results) + ("," if len(results) == 1 else "")
        body = [line[4:] for line in lines]
        stmts = split.parse(state.preamble + body)
        splitter = split.Splitter(CHUNK_LIMIT, lambda name, args: ctx.call(name, args))
        stmts = splitter.split(stmts, set(split.LOCAL.findall(ret)), set(params))
        self.chunks = splitter.chunks + state.functions
        self.sites = state.sites
        self.declarations = "".join(f"{n} = {src}\n" for src, n in state.declared.items())
        text = [line for st in stmts for line in st.render(1)]
        self.main = (f"def sg_graph({', '.join(params)}):\n" + "\n".join(text)
                     + f"\n    return ({ret})\n")
        signature = repr(self.arg_types)
        everything = "".join([diskcache.VERSION, signature, self.declarations, self.main]
                             + [c for _, c in self.chunks])
        self.key = None if self.dynamic else hashlib.sha1(everything.encode()).hexdigest()[:20]

    @property
    def source(self) -> str:
        """The graph function, its chunks and the kernels they call."""
        return "\n\n".join([self.main] + [c for _, c in self.chunks]
                             + list(self.kernels.values()))

    def build(self) -> tuple:
        """Compile (or load from numba's disk cache): ``(dispatcher, addresses, seconds,
        loaded)``; ``addresses`` are the kernels' entry points, one per call site. With a
        disk cache, kernels compile in a helper process while the graph function is
        lowered (``helper``). Raises :class:`WrongDeclaration` when a kernel's result
        type is not the one the graph function was typed with."""
        started = time.perf_counter()
        for name, source in self.kernels.items():
            diskcache.define_kernel(name, source)
        loads = "".join(f"{n} = load_kernel({n!r})\n" for n in self.kernels)
        text = "\n\n".join([diskcache.HEADER + loads + self.declarations, self.main]
                             + [c for _, c in self.chunks])
        if self.key:
            namespace = diskcache.load_module(f"g_{self.key}", text)
        else:
            namespace = diskcache.exec_module(text)
        sites = diskcache.load_sites(self.key) if self.key else None
        parallel = helper.available() and diskcache.cache_dir() is not None
        with (helper.deferring() if parallel else contextlib.nullcontext(),
              warnings.catch_warnings()):
            # a chunk function passed to sg_call is typed as a first-class function
            warnings.filterwarnings("ignore", category=NumbaExperimentalFeatureWarning)
            if sites is None:  # compiling: the helper takes kernels as typing queues them
                helper.start(early=True)
            dispatcher = self._jit(namespace, cache=self.key is not None)
            loaded = sum(dispatcher.stats.cache_hits.values()) > 0
            if sites is None and loaded:  # cached code without its call sites: compile again
                dispatcher, loaded = self._jit(namespace, cache=False), False
            helper.finish()
        found = sites is None
        if found:
            sites = _call_sites([dispatcher] + [namespace[n] for n, _ in self.chunks])
        missing = set(range(len(self.sites))) - {site for site, *_ in sites}
        if missing:  # never call address 0: rebuild (see ``compile``)
            raise WrongDeclaration(f"call sites {sorted(missing)[:5]} have no kernel")
        addresses = np.zeros(max(len(self.sites), 1), np.int64)
        for site, name, argtypes, restype in sites:
            kernel = namespace[name]
            kernel.compile(argtypes)
            cres = kernel.overloads[argtypes]
            if cres.signature.return_type != restype:
                raise WrongDeclaration(f"{name} returns {cres.signature.return_type}, the "
                                       f"graph function was typed with {restype}")
            addresses[site] = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
        if found and self.key:
            diskcache.save_sites(self.key, sites)
        STATS["disk_hits" if loaded else "compiled"] += 1
        return dispatcher, addresses, time.perf_counter() - started, loaded

    def _jit(self, namespace: dict, cache: bool):
        """The graph function (and its chunks) as numba dispatchers."""
        options = dict(JIT_OPTIONS, cache=cache, pipeline_class=GraphCompiler)
        for name, _ in self.chunks:  # called through pointers only: no wrappers needed
            py_func = getattr(namespace[name], "py_func", namespace[name])
            namespace[name] = numba.njit(no_cpython_wrapper=True, no_cfunc_wrapper=True,
                                         **options)(py_func)
        return numba.njit(tuple(self.arg_types), **options)(namespace["sg_graph"])


class WrongDeclaration(Exception):
    """A kernel's result type differs from the type declared for it, or a call site found
    no kernel (internal errors: ``compile`` forgets the disk cache's entry and rebuilds
    the function without declarations, unless ``STRICT``)."""


def _call_sites(dispatchers) -> list[tuple]:
    """``(site, kernel name, argument types, result type)`` of every ``sg_call`` and
    ``sg_call_as`` in the compiled graph function and its chunks, read from their typed
    call signatures."""
    found = {}
    calltypes = [sig for d in dispatchers for cres in d.overloads.values()
                 for sig in cres.type_annotation.calltypes.values()]
    for sig in calltypes:
        args = getattr(sig, "args", ())
        if (len(args) in (4, 5, 6) and isinstance(args[0], types.Dispatcher)
                and isinstance(args[1], types.IntegerLiteral)
                and isinstance(args[-1], (types.StarArgTuple, types.StarArgUniTuple))):
            name = args[0].dispatcher.py_func.__name__
            site = args[1].literal_value
            argtypes, restype = kernel_argtypes(args[-1].types), sig.return_type
            if len(args) == 6:  # sg_run_parts
                argtypes, restype = threads.part_argtypes(argtypes), types.none
            found[site] = (site, name, argtypes, restype)
    return [found[k] for k in sorted(found)]


class Runner:
    """Calls the compiled graph function; see the module docstring."""

    def __init__(self, dispatcher, addresses, program: Program, codegen_s: float,
                 compile_s: float, from_disk: bool, fgraph: FunctionGraph) -> None:
        self.fn = dispatcher
        self.consts = program.consts + [addresses]
        self.scalar_inputs = program.scalar_inputs
        self.scalar_outputs = program.scalar_outputs
        self.source = program.source
        self.codegen_s, self.compile_s, self.from_disk = codegen_s, compile_s, from_disk
        self.fgraph = fgraph
        self.profiled = getattr(program, "profiled", None)

    def profile(self, top: int = 25) -> str:
        """CPU cycles per node since compiling (with ``SYMGRAPH_NUMBA_PROFILE=1``), the
        most in the calling thread first: a table of the share of the calling thread's
        time, its cycles and the cycles of the other row parts (summed over their
        threads). A loop's count includes its body's, whose nodes are indented."""
        counts = self.consts[-2]
        total = max(int(sum(counts[0, k] for k, (depth, _) in enumerate(self.profiled)
                            if depth == 0)), 1)
        order = sorted(range(len(self.profiled)),
                       key=lambda k: (-counts[0, k], -counts[1, k]))[:top]
        lines = [f"{'share':>6} {'calling':>10} {'other parts':>12}  node (Mcycles)"]
        for k in order:
            depth, described = self.profiled[k]
            lines.append(f"{counts[0, k] / total:6.1%} {counts[0, k] / 1e6:10.2f} "
                         f"{counts[1, k] / 1e6:12.2f}  {'  ' * depth}{described}")
        return "\n".join(lines)

    def __call__(self, values):
        args = []
        for value, scalar in zip(values, self.scalar_inputs):
            if scalar:
                args.append(np.asarray(value)[()])
            elif value.flags.c_contiguous and value.flags.writeable:
                args.append(value)
            else:
                args.append(np.array(value, order="C"))
        try:
            with threads.own_cores():
                results = self.fn(*args, *self.consts)
        except SGUseReference:
            from symgraph.backends.numpy_backend import Interpreter

            return Interpreter(self.fgraph)(values)
        except Exception as exc:  # the reference gives the user-facing error
            self._reproduce(values, exc)
        return [np.asarray(r, dtype=d) if d else r
                for r, d in zip(results, self.scalar_outputs)]

    def _reproduce(self, values, exc: Exception):
        from symgraph.backends.numpy_backend import Interpreter

        Interpreter(self.fgraph)(values)
        raise RuntimeError(f"numba backend: the compiled function failed ({type(exc).__name__}"
                           f": {exc}) where the reference interpreter did not") from exc




