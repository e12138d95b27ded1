"""The compiler pipeline of generated graph functions: numba's, with LLVM's optimisation
level lowered while the graph function itself is optimised.

A graph function is glue: allocations, views, loops over time and calls of kernels
(through pointers; the kernels are compiled separately at full optimisation). LLVM's -O3
spent 5 s on the LSTM training function's glue for no measurable speed-up; at -O1 it
takes a fraction of that (``SYMGRAPH_NUMBA_GRAPH_OPT`` overrides the level).
"""

from __future__ import annotations

import os

from numba.core import config
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import AnalysisPass, register_pass
from numba.core.typed_passes import NativeLowering, NopythonTypeInference

from symgraph.backends.numba import helper

GRAPH_OPT = int(os.environ.get("SYMGRAPH_NUMBA_GRAPH_OPT", "1"))


@register_pass(mutates_CFG=True, analysis_only=False)
class GraphNativeLowering(NativeLowering):
    """Numba's native lowering with ``config.OPT`` set to :data:`GRAPH_OPT` (callees
    were compiled during type inference, at their own level)."""

    _name = "symgraph_graph_native_lowering"

    def run_pass(self, state):
        saved = config.OPT
        config.OPT = config._OptLevel(GRAPH_OPT)
        try:
            return super().run_pass(state)
        finally:
            config.OPT = saved


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
