"""The program's own allocator settings: applied in-process, and free memory handed back after a chunk."""

import subprocess
import sys

import pytest

pytest.importorskip("ctypes")

_PROBE = """
import psutil, torch
from tagbox_pipeline.allocator import release_free_memory, tune_allocator
accepted = tune_allocator()
process = psutil.Process()
before = process.memory_info().rss
block = torch.ones(256 * 2**20 // 4)  # 256 MiB, served from the heap (below the 1 GiB mmap threshold)
held = process.memory_info().rss
del block
kept = process.memory_info().rss  # freed, but kept in the heap for reuse (no trimming)
release_free_memory()
released = process.memory_info().rss
print(accepted, (held - before) >> 20, (kept - before) >> 20, (released - before) >> 20)
"""


def test_settings_apply_in_process_and_free_pages_go_back_after_release():
    """In a fresh interpreter with no MALLOC_* environment: glibc accepts every setting, a freed
    256 MiB block stays resident until :func:`release_free_memory` hands it back."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc mallopt/malloc_trim: Linux only")
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, env=env).stdout
    accepted, held, kept, released = out.rsplit(" ", 3)
    assert accepted == "{'mmap_threshold': True, 'trim_threshold': True, 'top_pad': True, 'arena_max': True}"
    assert int(held) >= 250 and int(kept) >= 250, out
    assert int(released) < 50, out
