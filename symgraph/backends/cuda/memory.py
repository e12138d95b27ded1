"""Device memory: output buffers reused from run to run, shared variables resident on the
device between calls, and results that stay there until someone asks for them.

Every device value this backend makes is a C-contiguous array, so reshapes and
leading-axis slices are views and copies are plain memory copies. numba-cuda takes
about 40-60 us of host time to allocate an array or to make a view of one (measured on
an H100's host), longer than most kernels of a recurrent step run, so buffers are kept
per shape (:class:`Site`) and the views of a buffer are made once (:func:`row`,
:func:`reshaped`).

Residency. :data:`RESIDENT` keeps one device copy per shared variable and is the
*holder* of :meth:`symgraph.SharedVariable.hold`:

- a compiled function reads a shared variable from its device copy, uploading the host
  value only when it changed (``set_value`` gives a new array);
- an update does not come back to the host: the runner returns the new value as a
  :class:`DeviceResult`, and ``Function`` calls its ``assign_to(shared)``, which makes it
  the resident value (the buffer that held the old value becomes the buffer the next
  call writes the update into: double buffering, no allocation) and marks the variable
  held;
- ``shared.get_value()`` of a held variable calls :meth:`ResidentValues.fetch`, the one
  device-to-host copy, after which host and device agree until the next update.
"""

from __future__ import annotations

import weakref

import numpy as np
from numba import cuda

from symgraph.graph import HELD


def to_device(value) -> object:
    """A C-contiguous device copy of the host array ``value``."""
    return cuda.to_device(np.ascontiguousarray(value))


def upload(site: Site, value) -> object:
    """The host array ``value`` copied into the buffer ``site`` keeps for its shape."""
    value = np.ascontiguousarray(value, dtype=site.dtype)
    array = site.get(value.shape)
    if value.size:
        array.copy_to_device(value)
    return array


def device_copy(array) -> object:
    """A new device array equal to the device array ``array`` (device-to-device)."""
    out = cuda.device_array(array.shape, array.dtype)
    if array.size:
        out.copy_to_device(array)
    return out


_VIEWS: dict[int, dict] = {}


def _views_of(array) -> dict:
    """The views made of ``array`` so far (forgotten when ``array`` dies)."""
    views = _VIEWS.get(id(array))
    if views is None:
        views = _VIEWS[id(array)] = {}
        weakref.finalize(array, _VIEWS.pop, id(array), None)
    return views


def _view(array, key: tuple, make):
    """The view of ``array`` named ``key``, made by ``make()`` the first time."""
    views = _views_of(array)
    view = views.get(key)
    if view is None:
        view = views[key] = make()
    return view


def row(array, t: int):
    """``array[t]``, a view made once per array and row."""
    return _view(array, ("row", t), lambda: array[t])


def reshaped(array, shape: tuple):
    """``array.reshape(shape)`` (a view of the C-contiguous ``array``), made once per
    array and shape; ``array`` itself when ``shape`` is its own."""
    if array.shape == shape:
        return array
    return _view(array, ("shape", shape), lambda: array.reshape(shape))


def sliced(array, key: tuple):
    """``array[key]`` for a key of indices and ``(start, stop)`` pairs (a view), made
    once per array and key."""
    return _view(array, ("key", key), lambda: array[
        tuple(slice(*k) if isinstance(k, tuple) else k for k in key)])


def flat(array):
    """``array`` as a vector (a view)."""
    return reshaped(array, (array.size,))


class Site:
    """Where a compiled program keeps the output buffer of one variable between runs.

    A run's values die when it ends (outputs are copied to the host, updates handed to
    :data:`RESIDENT`, which gives a buffer back), so the next run reuses the buffer when
    the shape is the same. Buffers of the last :data:`SPARE` other shapes are kept too
    (padded batches come in a few lengths). ``sink``, when set, is used instead: a scan
    points it at the history slot of the current step so that the step writes its new
    carry there.
    """

    #: Buffers of other shapes a site keeps (the least recently used goes first): the
    #: padded lengths of a bucketed corpus (lstm-dinos has 10) all stay.
    SPARE = 16

    __slots__ = ("dtype", "array", "sink", "spare")

    def __init__(self, dtype: str) -> None:
        self.dtype = np.dtype(dtype)
        self.array = None
        self.sink = None
        self.spare: dict[tuple, object] = {}

    def get(self, shape: tuple):
        """A device array of ``shape`` (the sink, the kept buffer, a spare one of that
        shape, or a new one)."""
        sink = self.sink
        if sink is not None and sink.shape == shape:
            return sink
        array = self.array
        if array is None or array.shape != shape:
            if array is not None:
                self.spare[array.shape] = array
            array = self.spare.pop(shape, None)
            if array is None:
                array = cuda.device_array(shape, self.dtype)
            if len(self.spare) > self.SPARE:
                del self.spare[next(iter(self.spare))]
            self.array = array
        return array


class _Resident:
    __slots__ = ("array", "host")

    def __init__(self, array, host) -> None:
        self.array = array  # the current value, on the device
        self.host = host  # the host array it equals (None: the device copy is newer)


class ResidentValues:
    """Device copies of shared variables (see the module docstring)."""

    def __init__(self) -> None:
        self._values: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.uploads = 0  # host-to-device copies of shared values so far
        self.fetches = 0  # device-to-host copies (``get_value`` of held variables)

    def device_value(self, var, value):
        """The device array of shared variable ``var``. ``value`` is what ``Function``
        passed: ``HELD`` (the resident copy is current) or the host value, uploaded
        unless it is the array the resident copy was last synchronised with."""
        entry = self._values.get(var)
        if entry is not None and (value is HELD or entry.host is value):
            return entry.array
        array = to_device(value)
        self._values[var] = _Resident(array, value)
        self.uploads += 1
        return array

    def fetch(self, var) -> np.ndarray:
        """The current value of a held variable, copied to the host (the holder
        protocol of ``SharedVariable.get_value``)."""
        entry = self._values[var]
        entry.host = entry.array.copy_to_host()
        self.fetches += 1
        return entry.host

    def device_array(self, var):
        """The resident device array of ``var`` (None when it has none)."""
        entry = self._values.get(var)
        return None if entry is None else entry.array

    def keep(self, var, array, site: Site | None) -> None:
        """Make ``array`` the value of ``var`` (an update). When ``array`` is the buffer
        of ``site``, the site takes the old value's memory for its next result;
        otherwise (a view, an input) ``array`` is copied."""
        old = self._values.get(var)
        if site is None or site.array is not array:
            array = device_copy(array)
        elif old is not None and old.array.shape == array.shape:
            site.array = old.array
        else:
            site.array = None
        self._values[var] = _Resident(array, None)
        var.hold(self)


#: The device copies of all shared variables used by ``mode='cuda'`` functions.
RESIDENT = ResidentValues()


class DeviceResult:
    """A result left on the device: ``np.asarray`` copies it to the host; as the value
    of an update, ``assign_to(shared)`` keeps it on the device (see the module
    docstring)."""

    __slots__ = ("array", "site")

    def __init__(self, array, site: Site | None) -> None:
        self.array, self.site = array, site

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        host = self.array.copy_to_host()
        return host if dtype is None else host.astype(dtype, copy=False)

    def assign_to(self, var) -> None:
        RESIDENT.keep(var, self.array, self.site)
