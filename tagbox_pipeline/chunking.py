"""Cutting a track into windows whose results crossfade back together seamlessly.

Each :class:`Chunk` has a *read* region (what the separator sees, at most one window long) and a
*core* region inside it (what is kept). The core is the read region less a margin on each side
that is not at the track's edge, so the separator's own edge effects are discarded; the first and
last cores, with the track's edge on one side, keep all of their window but the inner margin, so a
track needs ``1 + ceil((n − window) / (window − 2·margin − overlap))`` windows. Adjacent cores
overlap by ``overlap`` samples and crossfade there with complementary raised-cosine weights
(``w`` and ``1 - w``), so the weights of all chunks sum to one at every sample of the track;
at most two chunks overlap anywhere. The first window sits at the track's start and the last one
ends at the track's end, so every chunk sees a full window when the track has one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class Chunk:
    """One window of a track, in samples at the track's rate.

    Attributes:
        index: position in the plan (0-based).
        start, stop: the core region kept from this chunk's result.
        read_start, read_stop: the region read and separated (contains the core).
        fade_in: samples at the core's start shared with the previous chunk (0 for the first).
        fade_out: samples at the core's end shared with the next chunk (0 for the last).
    """

    index: int
    start: int
    stop: int
    read_start: int
    read_stop: int
    fade_in: int
    fade_out: int

    def weights(self) -> np.ndarray:
        """Crossfade weight of every core sample, float64 ``[stop - start]``, in [0, 1]."""
        weights = np.ones(self.stop - self.start)
        if self.fade_in:
            weights[: self.fade_in] = 1.0 - fade_out_curve(self.fade_in)
        if self.fade_out:
            weights[-self.fade_out:] = fade_out_curve(self.fade_out)
        return weights

    def core(self, result: np.ndarray) -> np.ndarray:
        """The core part of a result computed over the read region (last axis in samples)."""
        return result[..., self.start - self.read_start: self.stop - self.read_start]


def fade_out_curve(length: int) -> np.ndarray:
    """Raised-cosine fade from 1 towards 0 over ``length`` samples (its complement fades in)."""
    return np.cos(0.5 * np.pi * (np.arange(length) + 0.5) / length) ** 2


def plan(n_samples: int, sample_rate: int, window_seconds: float, overlap_seconds: float,
         margin_seconds: float = 0.0) -> list[Chunk]:
    """Cut ``n_samples`` into chunks of at most ``window_seconds`` (read region) each.

    Args:
        n_samples: track length in samples (> 0).
        sample_rate: in Hz; the window, overlap and margin are converted at this rate.
        window_seconds: read-region length in s (e.g. 1048576 / 44100 = Jukebox's context).
        overlap_seconds: crossfade length between adjacent cores in s.
        margin_seconds: context on each side of a core that is read but discarded, in s.

    Raises:
        ConfigError: when the window leaves no room for its margins and two overlaps.
    """
    window = max(1, round(window_seconds * sample_rate))
    overlap = round(overlap_seconds * sample_rate)
    margin = round(margin_seconds * sample_rate)
    core = window - 2 * margin
    if core < 2 * overlap or core <= 0:
        raise ConfigError(f"setting 'chunk.window_seconds': {window_seconds} s must exceed 2 × margin_seconds + "
                          f"2 × overlap_seconds ({margin_seconds} s, {overlap_seconds} s)")
    if n_samples <= window:
        return [Chunk(0, 0, n_samples, 0, n_samples, 0, 0)]
    hop = core - overlap
    edge = window - margin  # the first and last cores need a margin on their inner side only
    count = 1 + math.ceil((n_samples - window) / hop)
    chunks, start = [], 0
    for index in range(count):
        last = index == count - 1
        stop = n_samples if last else start + (edge if index == 0 else core)
        read_start = 0 if index == 0 else n_samples - window if last else start - margin
        chunks.append(Chunk(index, start, stop, read_start, read_start + window,
                            overlap if index > 0 else 0, 0 if last else overlap))
        start = stop - overlap
    return chunks
