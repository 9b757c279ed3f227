"""How much of a mixture is drum hits: the percussive share of its energy, a weight-free drum detector.

The offline taggers barely hear a drum kit in a full mix (p(drums) 0.05–0.09 on bench-dev clips that
have one), so rival detection and ``--sources auto`` missed it. Harmonic/percussive separation
(librosa's median-filtering HPSS, Fitzgerald 2010) splits a spectrogram into what is smooth in time
(notes) and what is smooth across frequency (hits); the share of the energy that goes to the
percussive part is 0.03–0.12 on every bench-dev and held-out mixture without drums (studio, mono
and as rendered), and 0.26–0.57 on every one with drums (``bench/results/quality.md``). Plucked
and struck notes have percussive attacks too, so a mix of staccato piano can come near; it is a
description of the signal, not a learned model.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

from .taggers.base import TAGGER_RATE, to_tagger_rate

#: STFT size and hop in samples at :data:`TAGGER_RATE` (64 ms, 16 ms)
N_FFT, HOP = 1024, 256
#: median-filter length of the HPSS in frames (272 ms) and bins (265 Hz)
KERNEL = 17


def percussive_share(mono: torch.Tensor, sample_rate: int) -> float:
    """Share (in [0, 1]) of the energy of ``mono`` ``[samples]`` at ``sample_rate`` Hz that HPSS calls percussive."""
    audio = to_tagger_rate(mono.detach().float().cpu()[None], sample_rate)[0].numpy()
    magnitude = np.abs(librosa.stft(audio, n_fft=N_FFT, hop_length=HOP))
    energy = np.square(magnitude)
    total = float(energy.sum())
    if total <= 0.0:
        return 0.0
    _, percussive = librosa.decompose.hpss(magnitude, kernel_size=KERNEL, power=2.0, mask=True)
    return float((energy * percussive).sum() / total)
