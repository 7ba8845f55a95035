"""Heap policy for tracking processes: freed tensor memory is kept for the next frame.

glibc returns large freed blocks to the kernel (a block over the mmap threshold is unmapped; a
free top of heap over the trim threshold is trimmed), and the next frame's tensors of the same
sizes fault every page back in. With 8 targets of the bundled model that was 900-2000 page faults
and 3-7 ms of kernel CPU per frame in most runs. Received images are the same story: a process
taking 1920x1080 rgb8 frames over rclpy (Fast DDS shared memory) faulted ~4,600 pages per frame
(the DDS sample, the C message, the Python array): 16 ms from publish to callback and 15 ms of
CPU per frame, against 6 ms and 4 ms with this policy. Raising both thresholds keeps the memory
mapped instead: the process stays at its peak heap size, which it reaches every frame anyway.
When that peak shrinks for good (fewer cached frames), `release_freed_memory` gives the free
memory back once.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Above every per-frame tensor (8 targets of tiny: 16 MB attention maps at bfloat16, a 1080p frame 6 MB).
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 256 * 2**20


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc on Linux (None otherwise)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: other C libraries accept mallopt and ignore it
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory(mmap_threshold_bytes: int = MMAP_THRESHOLD_BYTES,
                      trim_threshold_bytes: int = TRIM_THRESHOLD_BYTES) -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where that is not possible.

    Blocks below ``mmap_threshold_bytes`` come from the heap, and up to ``trim_threshold_bytes``
    of free heap stays mapped. A no-op returning False off Linux or with another C library.
    """
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold_bytes)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold_bytes))


def release_freed_memory() -> bool:
    """Return the free heap memory to the kernel now (glibc's ``malloc_trim``): after the memory a
    process needs has shrunk for good. False where that is not possible."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    libc.malloc_trim.restype = ctypes.c_int
    libc.malloc_trim(0)
    return True
