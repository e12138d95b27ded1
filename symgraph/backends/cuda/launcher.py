"""Kernel launches past numba-cuda's per-call dispatch.

``kernel[blocks, threads, 0, shared](*args)`` costs about 55 us of host time in
numba-cuda 0.30 (measured on an H100's host): it types every argument, looks up the
compiled overload, configures the launch and marshals each argument through several
layers. A recurrent step launches a handful of kernels that run for a few microseconds
each, so that cost is the step's time. :func:`launch` does the same work once per
kernel and argument types and then launches with what it kept:

- the compiled overload of the argument types (``dispatcher.overloads[types]``, which
  numba-cuda fills on the first launch, made the ordinary way);
- its ``cuda.core`` kernel and the launch configuration of each grid shape;
- the arguments marshalled as numba-cuda does (``_Kernel._prepare_args``): an array is
  ``meminfo, parent, size, itemsize, data pointer, *shape, *strides`` (the values its
  cached ``_strided_memory_view_shim`` holds), a scalar a ctypes value of its type.

Anything unexpected (another numba-cuda, an argument type not listed here, the
simulator) takes the ordinary launch, which gives the same result. Launches and the
copies of scan loops (:func:`copy`) go to the default stream, or to the stream a loop
is being captured on (:func:`on_stream`, :mod:`~symgraph.backends.cuda.graphs`).
"""

from __future__ import annotations

import contextlib
import ctypes

from numba.cuda import types

__all__ = ["launch", "copy", "on_stream", "direct_launches"]

_ORDINARY = object()  # marks a (kernel, types) key that takes the ordinary launch
_ENTRIES: dict = {}
_CONFIGS: dict = {}
_SCALAR_TYPES: dict = {}
#: ``stream``: the cuda.core stream of direct launches; ``numba_stream``: the same
#: stream for numba-cuda (0: the default stream); ``log``: where the arrays of launches
#: and copies are kept while a graph is captured (None otherwise).
_STATE = {"direct": 0, "enabled": None, "stream": None, "config": None, "launch": None,
          "numba_stream": 0, "log": None}


def direct_launches() -> int:
    """How many launches took the direct path so far (for tests and profiles)."""
    return _STATE["direct"]


def launch(kernel, blocks, threads, args, shared_bytes: int = 0) -> None:
    """``kernel[blocks, threads, stream, shared_bytes](*args)`` on the current stream
    (:func:`on_stream`), directly when it can be."""
    if _STATE["log"] is not None:
        _STATE["log"].append(args)
    if not (_enabled() and _direct(kernel, blocks, threads, args, shared_bytes)):
        kernel[blocks, threads, _STATE["numba_stream"], shared_bytes](*args)


def copy(dest, source) -> None:
    """Copy the device array ``source`` into ``dest`` on the current stream."""
    if _STATE["log"] is not None:
        _STATE["log"].append((dest, source))
    dest.copy_to_device(source, stream=_STATE["numba_stream"])


@contextlib.contextmanager
def on_stream(stream, log: list):
    """Launch and copy on the numba-cuda ``stream`` inside the block (a graph being
    captured), appending the arrays of every launch and copy to ``log`` (the graph
    uses their memory, so it must outlive them)."""
    from numba.cuda.cudadrv import driver

    direct = _enabled()  # sets up the default stream first, so that it is restored
    saved = dict(_STATE)
    _STATE.update(numba_stream=stream, log=log,
                  stream=driver._to_core_stream(stream) if direct else None)
    try:
        yield
    finally:
        for name in ("numba_stream", "log", "stream"):
            _STATE[name] = saved[name]


def _enabled() -> bool:
    enabled = _STATE["enabled"]
    if enabled is None:
        enabled = _STATE["enabled"] = _set_up()
    return enabled


def _set_up() -> bool:
    """Whether this numba-cuda is the one the direct path copies (on a real GPU)."""
    from symgraph.backends.cuda.device import simulator_enabled

    if simulator_enabled():
        return False
    try:
        from cuda.core import LaunchConfig
        from cuda.core import launch as core_launch
        from numba.cuda._compat import CUDA_CORE_GE_1_0
        from numba.cuda.cudadrv import driver
        from numba.cuda.cudadrv.devicearray import DeviceNDArray
        from numba.cuda.errors import normalize_kernel_dimensions
    except ImportError:
        return False
    if not hasattr(DeviceNDArray, "_strided_memory_view_shim"):
        return False

    def config(blocks, threads, shared_bytes):
        grid, block = normalize_kernel_dimensions(blocks, threads)
        cooperative = {"is_cooperative" if CUDA_CORE_GE_1_0 else "cooperative_launch": False}
        return LaunchConfig(grid=grid, block=block, shmem_size=shared_bytes, **cooperative)

    _STATE.update(stream=driver._to_core_stream(0), config=config, launch=core_launch)
    return True


def _arg_type(value):
    """numba's type of a kernel argument (device arrays cache theirs)."""
    array_type = getattr(value, "_numba_type_", None)
    if array_type is not None:
        return array_type
    cls = type(value)
    found = _SCALAR_TYPES.get(cls)
    if found is None:
        from numba.cuda.typing.typeof import Purpose, typeof

        found = typeof(value, Purpose.argument)
        if isinstance(value, int) and not isinstance(value, bool):
            found = types.int64  # any Python int: numba types small and large ones apart
        _SCALAR_TYPES[cls] = found
    return found


def _token(value) -> int:
    """A cheap stand-in for ``_arg_type(value)`` in cache keys: the identity of the
    (interned) numba type of an array, or of a scalar's class. Entries keep their types
    alive, so an identity in a key is never reused by another object."""
    array_type = getattr(value, "_numba_type_", None)
    return id(array_type if array_type is not None else type(value))


def _scalar_packer(ty):
    """The ctypes constructor numba-cuda marshals a scalar of type ``ty`` with."""
    if isinstance(ty, types.Boolean):
        return bool
    if isinstance(ty, types.Integer):
        return getattr(ctypes, f"c_{ty}")
    return {types.float32: ctypes.c_float, types.float64: ctypes.c_double}.get(ty)


def _entry(kernel, args):
    """``(cuda.core kernel, packers, argument types)`` for the compiled overload of the
    types of ``args``, ``_ORDINARY``, or None when it is not compiled yet (the ordinary
    launch compiles it)."""
    arg_types = tuple(_arg_type(a) for a in args)
    overload = kernel.overloads.get(arg_types)
    if overload is None:
        return None
    if getattr(overload, "debug", False) or getattr(overload, "cooperative", False):
        return _ORDINARY
    packers = []
    for ty in arg_types:
        if isinstance(ty, types.Array):
            packers.append(None)
            continue
        pack = _scalar_packer(ty)
        if pack is None:
            return _ORDINARY
        packers.append(pack)
    classes = tuple(type(a) for a in args)  # the scalar classes the key names
    return overload._codelibrary.get_cufunc().kernel, packers, (arg_types, classes)


def _direct(kernel, blocks, threads, args, shared_bytes) -> bool:
    key = (kernel, *map(_token, args))
    entry = _ENTRIES.get(key)
    if entry is None:
        entry = _entry(kernel, args)
        if entry is None:
            return False
        _ENTRIES[key] = entry
    if entry is _ORDINARY:
        return False
    core_kernel, packers, _ = entry
    packed = []
    for pack, value in zip(packers, args):
        if pack is None:
            view = value._strided_memory_view_shim
            packed += (0, 0, view.size, view.dtype.itemsize, view.ptr, *view.shape,
                       *view._layout.strides_in_bytes)
        else:
            packed.append(pack(value))
    config_key = (blocks, threads, shared_bytes)
    config = _CONFIGS.get(config_key)
    if config is None:
        config = _CONFIGS[config_key] = _STATE["config"](blocks, threads, shared_bytes)
    _STATE["launch"](_STATE["stream"], config, core_kernel, *packed)
    _STATE["direct"] += 1
    return True
