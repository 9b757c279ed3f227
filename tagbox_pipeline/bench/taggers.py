"""Tagger speed: forward and forward+backward of every tagger on 10 s and 60 s of 16 kHz audio.

Each cell is the median wall time (s) of ``REPEATS`` runs after one warm-up run, with torch limited
to 1 and then 2 threads. "forward" runs under ``torch.no_grad()``; "fwd+bwd" makes the audio require
gradients and back-propagates the mean probability to it (what steering does every step).
Taggers whose weights are missing are listed as skipped. Results: ``bench/results/taggers.md``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from . import machine_line, write_result
from ..errors import WeightsError
from ..taggers.registry import get_tagger, list_taggers

SECONDS = (10, 60)
THREADS = (1, 2)
REPEATS = 2
SAMPLE_RATE = 16000


def _median_seconds(run: Callable[[], None]) -> float:
    """Median wall time (s) of ``REPEATS`` calls of ``run`` after one warm-up call."""
    run()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_tagger(name: str, seconds: int, threads: int) -> tuple[float, float]:
    """(forward, forward+backward) median seconds for ``seconds`` s of noise through tagger ``name``."""
    torch.set_num_threads(threads)
    tagger = get_tagger(name)
    audio = 0.1 * torch.randn(1, seconds * SAMPLE_RATE, generator=torch.Generator().manual_seed(0))

    def forward() -> None:
        with torch.no_grad():
            tagger(audio)

    def forward_backward() -> None:
        leaf = audio.clone().requires_grad_(True)
        tagger(leaf).mean().backward()

    return _median_seconds(forward), _median_seconds(forward_backward)


def main() -> None:
    """Time every tagger and write ``bench/results/taggers.md``."""
    threads_before = torch.get_num_threads()
    header = "| tagger | input (s) | " + " | ".join(
        f"{kind} {s} s, {t} thr" for s in SECONDS for t in THREADS for kind in ("fwd", "fwd+bwd")
    ) + " |"
    lines = [
        "# Tagger speed",
        "",
        f"Machine: {machine_line()}",
        "",
        f"Median wall time in seconds of {REPEATS} runs (after one warm-up) for one clip of 10 s or 60 s",
        "of 16 kHz mono audio; fwd = forward without gradients, fwd+bwd = forward plus backward to the",
        "input audio. Timings on a shared machine are contended; compare only within one run.",
        "",
        header,
        "|" + " --- |" * (header.count("|") - 1),
    ]
    skipped = []
    for info in list_taggers():
        try:
            cells = [time_tagger(info.name, s, t) for s in SECONDS for t in THREADS]
        except (WeightsError, ImportError) as error:  # missing weights, or a loader not installed
            skipped.append(f"- {info.name}: skipped ({error})")
            continue
        values = " | ".join(f"{fwd:.3f} | {both:.3f}" for fwd, both in cells)
        lines.append(f"| {info.name} | {info.input_samples / SAMPLE_RATE:g} | {values} |")
        print(lines[-1], flush=True)  # progress: the table takes minutes
    torch.set_num_threads(threads_before)
    write_result("taggers", "\n".join(lines + [""] + skipped) + "\n")


if __name__ == "__main__":
    main()
