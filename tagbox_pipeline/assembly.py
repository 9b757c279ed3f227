"""Streaming overlap-add: chunk results in, finished track regions out as soon as they are complete.

Only the crossfade tail of the previous chunk is held between calls, so memory is flat in track
length (about one chunk's result plus one overlap). Weights come from :meth:`Chunk.weights` and sum
to one, so regions are final when emitted; nothing is normalised afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from .chunking import Chunk
from .steering import ChunkResult

#: receives ``(start, block)``: the finished samples ``[start, start + block.shape[-1])`` of the track
Sink = Callable[[int, np.ndarray], None]


class OverlapAdd:
    """Accumulates per-chunk results (any leading shape, samples last) for the chunks of one plan.

    Args:
        chunks: the plan, in order; results must be added in this order.
        sink: called with each finished region, in track order, covering the track exactly once.
    """

    def __init__(self, chunks: Sequence[Chunk], sink: Sink) -> None:
        self._chunks = chunks
        self._sink = sink
        self._next = 0
        self._tail: np.ndarray | None = None

    def add(self, result: np.ndarray) -> None:
        """Add the result of the next chunk, computed over its read region (samples on the last axis).

        Raises:
            ValueError: when the result's length is not the chunk's read length, or all chunks were added.
        """
        if self._next >= len(self._chunks):
            raise ValueError(f"all {len(self._chunks)} chunks were already added")
        chunk = self._chunks[self._next]
        if result.shape[-1] != chunk.read_stop - chunk.read_start:
            raise ValueError(f"chunk {chunk.index}: result has {result.shape[-1]} samples, "
                             f"expected {chunk.read_stop - chunk.read_start}")
        block = chunk.core(result) * chunk.weights()
        if self._tail is not None:
            block[..., : self._tail.shape[-1]] += self._tail
        done = block.shape[-1] - chunk.fade_out
        self._tail = block[..., done:] if chunk.fade_out else None
        self._next += 1
        self._sink(chunk.start, block[..., :done])

    @property
    def finished(self) -> bool:
        """True once every chunk was added (and so every sample was emitted)."""
        return self._next == len(self._chunks)


def chunk_entry(chunk: Chunk, sample_rate: int, report: dict[str, Any]) -> dict[str, Any]:
    """A chunk's line of the manifest: its regions in s and the steering report."""
    return {"index": chunk.index, "start_s": chunk.start / sample_rate, "stop_s": chunk.stop / sample_rate,
            "read_start_s": chunk.read_start / sample_rate, "read_stop_s": chunk.read_stop / sample_rate,
            "report": report}


def assemble(chunks: Sequence[Chunk], results: Iterable[ChunkResult], sink: Sink, n_sources: int, channels: int,
             sample_rate: int) -> list[dict[str, Any]]:
    """Crossfade the chunk results (in chunk order) into ``sink``; returns the chunks' manifest entries.

    Args:
        results: one per chunk, stems ``[n_sources, channels, read length]``.
        sample_rate: of the track, in Hz (for the entries' times in s).

    Raises:
        ValueError: when results are missing, extra, or of the wrong shape.
    """
    accumulator = OverlapAdd(chunks, sink)
    entries = []
    for chunk, result in zip(chunks, results, strict=True):
        stems = result.stems.detach().cpu().numpy() if isinstance(result.stems, torch.Tensor) else result.stems
        expected = (n_sources, channels, chunk.read_stop - chunk.read_start)
        if stems.shape != expected:
            raise ValueError(f"chunk {chunk.index}: stems have shape {stems.shape}, expected {expected}")
        accumulator.add(stems)
        entries.append(chunk_entry(chunk, sample_rate, result.report))
    return entries
