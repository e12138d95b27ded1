"""Scan loops replayed as CUDA graphs.

A scan's loop launches a few kernels per step from Python, and on a GPU the host time
of those launches, not the kernels, is the loop's time. The same loop over inputs of
the same shapes at the same addresses launches the same kernels with the same arguments,
so the second time a loop meets such inputs its launches are *captured* into a CUDA
graph (``cuStreamBeginCapture`` on a stream of its own: nothing runs, every launch and
copy is recorded), and from then on one ``cuGraphLaunch`` replays the whole loop.

The key of a loop is everything its launches depend on: the number of steps; the
address, shape, strides and type of every device array it reads or writes (sequences,
initial carries, non-sequences, the buffers of its carries); the bytes of every host
value it reads (0-d non-sequences and carries). Its own step buffers are fixed once made
(:class:`~symgraph.backends.cuda.memory.Site`), and a graph keeps every array it
touches alive. A replay is refused when a stacked output's buffer is no longer its
site's (handed to a shared variable by an update).

What cannot be captured: a loop with 0-d carries or step outputs, or 1-d sequences
(kept on the host, element by element, by the Python loop; such scans are never
captured), and a loop that copies a device value to the host or a host value to the
device (its first capture fails, and that scan then always runs its loop from Python).
``SYMGRAPH_CUDA_GRAPHS=0`` turns graphs off; the simulator has none.
"""

from __future__ import annotations

import collections
import os
import weakref

import numpy as np

from symgraph.backends.cuda import launcher

__all__ = ["LoopGraphs", "STATS", "enabled"]

#: Counts for tests and profiles: loops captured, replayed, captures that failed, and
#: replays refused because an output buffer changed hands.
STATS = {"captured": 0, "replayed": 0, "failed": 0, "stale": 0}
_STATE = {"capturing": False, "stream": None}


class CaptureError(RuntimeError):
    """A loop could not be captured (the driver refused an operation while capturing)."""


def enabled() -> bool:
    """Whether loops are captured here: a real GPU, and not turned off."""
    from symgraph.backends.cuda.device import simulator_enabled

    return os.environ.get("SYMGRAPH_CUDA_GRAPHS", "1") != "0" and not simulator_enabled()


def _driver():
    from cuda.bindings import driver

    return driver


def _call(result):
    """The value of a ``cuda.bindings`` call (``(error, value...)``), or CaptureError."""
    error, *values = result
    if error != _driver().CUresult.CUDA_SUCCESS:
        raise CaptureError(f"CUDA driver: {error}")
    return values[0] if values else None


def _key_part(value):
    """What a loop's launches read of one input value."""
    if value is None:
        return None
    if not hasattr(value, "copy_to_host"):  # a host value: a number or a numpy array
        host = np.asarray(value)
        return ("host", host.dtype.str, host.shape, host.tobytes())
    view = getattr(value, "_strided_memory_view_shim", None)  # numba-cuda's, cached
    if view is not None:
        return (view.ptr, view.shape, view._layout.strides_in_bytes, view.dtype.str)
    interface = (value.__cuda_array_interface__ if hasattr(value, "__cuda_array_interface__")
                 else value.__array_interface__)  # the simulator's arrays are numpy's
    return (interface["data"][0], interface["shape"], interface["strides"],
            interface["typestr"])


class _Replay:
    """One captured loop: its graph, its results, and the arrays it uses."""

    def __init__(self, graph, executable, results, arrays: list, owned: list) -> None:
        self.executable, self.results = executable, results
        self.arrays, self.owned = arrays, owned
        driver = _driver()
        weakref.finalize(self, _destroy, driver, graph, executable)

    def valid(self) -> bool:
        """Whether every stacked output's site still gives the captured buffer for its
        shape (asking makes it the site's current buffer, as the loop would)."""
        return all(site.get(array.shape) is array for site, array in self.owned)

    def launch(self) -> None:
        driver = _driver()
        _call(driver.cuGraphLaunch(self.executable, driver.CUstream(0)))


def _destroy(driver, graph, executable) -> None:
    driver.cuGraphExecDestroy(executable)
    driver.cuGraphDestroy(graph)


def _capture(loop, owned) -> _Replay:
    """Run ``loop()`` while capturing its launches; the graph (not yet launched)."""
    from numba import cuda

    driver = _driver()
    if _STATE["stream"] is None:
        _STATE["stream"] = cuda.stream()
    stream = _STATE["stream"]
    handle = driver.CUstream(int(stream.handle))
    arrays: list = []
    mode = driver.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
    _call(driver.cuStreamBeginCapture(handle, mode))
    _STATE["capturing"] = True
    try:  # no deferred frees while capturing: freeing memory waits for the device
        with cuda.defer_cleanup(), launcher.on_stream(stream, arrays):
            results = loop()
    except Exception as exc:
        driver.cuStreamEndCapture(handle)  # ends the (now invalid) capture
        raise CaptureError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        _STATE["capturing"] = False
    graph = _call(driver.cuStreamEndCapture(handle))
    executable = _call(driver.cuGraphInstantiate(graph, 0))
    return _Replay(graph, executable, results, arrays, owned(results))


class LoopGraphs:
    """The captured loops of one scan (see the module docstring), the most recently
    used :data:`MAX` of them."""

    MAX = 32

    def __init__(self) -> None:
        self.replays: collections.OrderedDict = collections.OrderedDict()
        self.seen: set = set()
        self.broken = not enabled()

    def run(self, parts, loop, owned):
        """``loop()``'s results: from a replay, a new capture, or by running it.

        ``parts``: the loop's inputs (:func:`_key_part` of each), None when it cannot
        be captured; ``owned(results)``: the ``(site, array)`` pairs whose arrays must
        still be their sites' for a replay."""
        if self.broken or parts is None or _STATE["capturing"]:
            return loop()
        key = tuple(_key_part(p) for p in parts)
        replay = self.replays.get(key)
        if replay is not None:
            if replay.valid():
                self.replays.move_to_end(key)
                replay.launch()
                STATS["replayed"] += 1
                return replay.results
            del self.replays[key]
            STATS["stale"] += 1
        if key not in self.seen:  # the first run makes the buffers and compiles
            if len(self.seen) > 16 * self.MAX:
                self.seen.clear()
            self.seen.add(key)
            return loop()
        try:
            replay = _capture(loop, owned)
        except CaptureError:
            self.broken = True
            STATS["failed"] += 1
            return loop()
        STATS["captured"] += 1
        self.replays[key] = replay
        if len(self.replays) > self.MAX:
            self.replays.popitem(last=False)
        replay.launch()
        return replay.results
