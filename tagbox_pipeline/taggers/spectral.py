"""A weight-free descriptor "tagger" for sources that no trained tagger vocabulary names.

MagnaTagATune and MSD have no bass tag, so with the default (download-free) taggers a bass request
would have nothing to steer by. This tagger has one tag, ``low``: the share of a window's energy
below :data:`LOW_HZ` (a number in [0, 1], differentiable, used like a probability). It is a
description of the signal, not a learned model; the vocabulary maps ``bass`` to it.
"""

from __future__ import annotations

import torch

from .base import Tagger

#: upper edge of the "low" band in Hz
LOW_HZ = 250.0
#: analysis FFT size at 16 kHz (7.8 Hz bins, enough to resolve the low band)
N_FFT = 2048


class SpectralTagger(Tagger):
    """Tag ``low`` = energy share below 250 Hz, per 3 s window (hop 3 s, tail dropped, short input: one window)."""

    name = "spectral"
    dataset = "spectral"
    input_samples = 48000
    window_bytes = 4 * (N_FFT // 2 + 1) * (48000 // (N_FFT // 4) + 1) * 8  # a few copies of its complex STFT
    tags = ["low"]

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT))
        self.low_bins = int(LOW_HZ / (self.sample_rate / N_FFT)) + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        n = audio.shape[-1]
        count = max(1, n // self.input_samples)
        length = min(n, count * self.input_samples)
        chunks = audio[:, :length].reshape(audio.shape[0] * count, -1)
        spec = torch.stft(chunks, N_FFT, N_FFT // 4, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)
        power = (spec.real.square() + spec.imag.square()).sum(dim=-1)  # [B*W, F]
        share = power[:, : self.low_bins].sum(dim=1) / (power.sum(dim=1) + 1e-10)
        return share.reshape(audio.shape[0], count, 1)
