"""Benchmarks: speed and quality targets, measured and written to ``bench/results/<name>.md``."""

from __future__ import annotations

import platform
from pathlib import Path

import psutil
import torch

from ..paths import REPO_DIR

RESULTS_DIR = REPO_DIR / "bench" / "results"


def machine_line() -> str:
    """One line describing the machine a bench ran on (CPU, cores, memory, torch, threads)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = psutil.virtual_memory().total / 2**30
    return (
        f"{cpu}, {psutil.cpu_count()} cores, {memory_gib:.0f} GiB RAM, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads"
    )


def write_result(name: str, markdown: str) -> Path:
    """Write ``bench/results/<name>.md`` (atomically) and print it; returns the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(markdown, encoding="utf-8")
    tmp.replace(path)
    print(markdown)
    return path
