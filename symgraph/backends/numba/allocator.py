"""Keep freed memory in the C heap, so that a training step's large temporaries are not
returned to the operating system and faulted in again by the next step.

glibc's ``malloc`` serves blocks above its *mmap threshold* (128 KiB, raised dynamically)
with fresh ``mmap`` pages and unmaps them on ``free``, and trims the top of the heap once
more than the *trim threshold* is free. A compiled step allocates the same large arrays on
every call (logits of a 10,000-word vocabulary are 16 MB), so each call faults every page
in again, and the kernel zeroes each one: 4.4 million page faults in the PTB recipe, about
5% of its time. Raising both thresholds (``mallopt``) keeps those blocks in the heap for
reuse; the resident size then stays at the step's peak instead of rising and falling with
every call (the training job reports that peak).

Applied once, when the numba backend first compiles; set ``SYMGRAPH_KEEP_FREED_MEMORY=0``
to leave the allocator alone. Does nothing where the C library has no ``mallopt``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc's largest mmap threshold on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``).
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 512 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Raise malloc's mmap and trim thresholds; True when applied."""
    if os.environ.get("SYMGRAPH_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
