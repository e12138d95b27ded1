"""The compiler pipeline of generated graph functions: numba's, with a light LLVM
optimisation of the graph function itself.

A graph function is glue: allocations, views, loops over time and calls of kernels
(through pointers; the kernels are compiled separately at full optimisation). LLVM's -O3
spent 5 s on the LSTM training function's glue for no measurable speed-up. The glue gets
four passes per function (SROA: numba's stack slots become registers; instruction
combining; CFG simplification; numba's reference-count pruning) and, on the module, only
the always-inliner and the pruning again: on the lstm-dinos training function 0.25 s of
optimisation where numba's -O1 pipelines took 0.8 s, with a code generator that then has
slightly more to do. Where numba or llvmlite lack the hooks (older versions), the glue is
optimised by numba's pipelines at -O1 instead (``SYMGRAPH_NUMBA_GRAPH_OPT`` overrides
the level and turns the light pipeline off).
"""

from __future__ import annotations

import os

import llvmlite.binding as llvm
from numba.core import config
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import AnalysisPass, register_pass
from numba.core.typed_passes import NativeLowering, NopythonTypeInference

from symgraph.backends.numba import helper

GRAPH_OPT = int(os.environ.get("SYMGRAPH_NUMBA_GRAPH_OPT", "1"))
LIGHT = "SYMGRAPH_NUMBA_GRAPH_OPT" not in os.environ and hasattr(
    llvm, "create_new_function_pass_manager")


@register_pass(mutates_CFG=True, analysis_only=False)
class GraphNativeLowering(NativeLowering):
    """Numba's native lowering with ``config.OPT`` set to :data:`GRAPH_OPT` (callees
    were compiled during type inference, at their own level)."""

    _name = "symgraph_graph_native_lowering"

    def run_pass(self, state):
        if LIGHT:
            if state.library is None:  # as numba's lowering would create it
                state.library = state.targetctx.codegen().create_library(
                    state.func_id.func_qualname)
                state.library.enable_object_caching()
            _optimise_lightly(state.library)
        saved = config.OPT
        config.OPT = config._OptLevel(GRAPH_OPT)
        try:
            return super().run_pass(state)
        finally:
            config.OPT = saved


def _optimise_lightly(library) -> None:
    """Replace ``library``'s function and module optimisation by the light pipeline (see
    the module docstring)."""
    codegen = library._codegen
    if not all(hasattr(library, a) for a in ("_optimize_functions", "_optimize_final_module")):
        return

    def optimise_functions(ll_module):
        ll_module.data_layout = codegen._data_layout
        builder = codegen._pass_builder(opt=0)
        for function in ll_module.functions:
            if function.is_declaration:
                continue
            passes = llvm.create_new_function_pass_manager()
            passes.add_sroa_pass()
            passes.add_instruction_combine_pass()
            passes.add_simplify_cfg_pass()
            passes.add_refprune_pass()
            passes.run(function, builder)

    def optimise_module():
        passes = llvm.create_new_module_pass_manager()
        passes.add_always_inliner_pass()
        passes.add_refprune_pass()
        passes.run(library._final_module, codegen._pass_builder(opt=0))

    library._optimize_functions = optimise_functions
    library._optimize_final_module = optimise_module


@register_pass(mutates_CFG=False, analysis_only=True)
class StartKernelHelper(AnalysisPass):
    """Once the first function of a build (a chunk, or the graph function) is typed,
    start the helper process on the kernels queued so far (``helper``), so that they
    compile while this process goes on."""

    _name = "symgraph_start_kernel_helper"

    def __init__(self):
        AnalysisPass.__init__(self)

    def run_pass(self, state):
        helper.start()
        return False


class GraphCompiler(CompilerBase):
    """numba's nopython pipeline with :class:`GraphNativeLowering`, and
    :class:`StartKernelHelper` right after type inference."""

    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.passes = [(GraphNativeLowering, d) if p is NativeLowering else (p, d)
                     for p, d in pm.passes]
        pm.add_pass_after(StartKernelHelper, NopythonTypeInference)
        pm.finalize()
        return [pm]
