"""glibc allocator settings for the engine, applied by the program itself (no environment needed).

The engine allocates and frees tensors of tens of MB many times per chunk (NTF updates, rendered
components, tagger activations). With glibc's defaults, blocks above the dynamic mmap threshold are
mapped and unmapped on every allocation and the top of the heap is trimmed back to the kernel after
each free, so the same pages are faulted in and zeroed again and again (see
``bench/results/speed.md``). :func:`tune_allocator` serves blocks up to 1 GiB from the heap and
keeps freed memory there for reuse within a chunk; :func:`release_free_memory`, called after every
chunk, hands the free pages back, so fragmentation cannot build up over a long track and the peak
stays that of one chunk (the engine's batches are bounded). A thread that finds its arena locked
gets an arena of its own (up to 8 per core), which keeps its freed memory until the next trim; a
watcher runs Prefect, watchdog and chunk threads side by side, so on a busy machine its memory crept
up file by file (the load test in the full suite: windows of 10 files 1549 -> 2058 MiB), and the
arenas are capped at :data:`ARENAS`. ``tagbox``'s entry point applies this at start-up, before its
threads contend; a process that does not start there (a track deployment's run) gets it when it
first builds the engine. It is a no-op where glibc's ``mallopt`` is not available (macOS, musl) and
runs once per process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

#: ``mallopt`` parameter numbers (glibc ``malloc.h``)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8
#: most malloc arenas (one per core of the 2-core machines this runs on)
ARENAS = 2
#: blocks up to this size come from the heap (mallopt takes an int, so at most 2 GiB)
MMAP_THRESHOLD_BYTES = 2**30
#: free memory at the top of the heap kept for reuse instead of being returned to the kernel
TRIM_THRESHOLD_BYTES = 2**31 - 1
#: extra memory requested from the kernel each time the heap grows
TOP_PAD_BYTES = 256 * 2**20


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError, TypeError):
        return None
    return libc


@lru_cache(maxsize=1)
def tune_allocator() -> dict[str, bool]:
    """Apply the settings above through ``mallopt``; returns which ones glibc accepted (empty off glibc)."""
    libc = _libc()
    if libc is None:
        return {}
    mallopt = libc.mallopt
    return {
        "mmap_threshold": bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)),
        "trim_threshold": bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)),
        "top_pad": bool(mallopt(M_TOP_PAD, TOP_PAD_BYTES)),
        "arena_max": bool(mallopt(M_ARENA_MAX, ARENAS)),
    }


def release_free_memory() -> None:
    """Give the heap's free pages back to the kernel (glibc ``malloc_trim``; a no-op elsewhere)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
