"""The CUDA backend (``mode='cuda'``, numba-cuda): a graph becomes a host-side list of
steps that launch ``@cuda.jit`` kernels on device-resident values.

Modules, in the order data flows through them:

- ``device``: is numba-cuda installed, is there a GPU (or the simulator)? One clear
  error otherwise. Nothing else here is imported before that check passes.
- ``program``: plans a graph (the numba backend's elementwise fusion plan, views,
  transposes read in place) into steps; the runner that ``Function`` calls.
- ``context``: what lowerings see (slots, host/device placement, buffer sites, the
  error flag), the lowering registry and the host fallback for ops without one.
- ``memory``: output buffers reused per shape, views made once per buffer, shared
  variables resident on the device, results copied to the host only when asked for.
- ``jit``: kernel source to compiled kernel (cached by the source's hash), the
  prelude of device functions, launch configuration.
- ``launcher``: launches past numba-cuda's per-call dispatch, on the current stream.
- kernels: ``elementwise`` (fused groups), ``gemm`` (Dot), ``reduce``, ``nnet``
  (softmax family, cross-entropies), ``rows`` (gather, scatter-add), ``regions``
  (basic indexing, inc/set_subtensor, join, alloc), ``shapes`` (views, reshape).
- ``scan``: the time loop on the host driving the inner program's kernels;
  ``graphs``: the loop captured as a CUDA graph and replayed when it meets the same
  inputs again.

Tests run in numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``) when there is no GPU.
"""
