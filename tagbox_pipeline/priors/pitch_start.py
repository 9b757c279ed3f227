"""Where the factorisation starts: harmonic spectra at the mixture's most salient pitches.

From random spectra, KL-NTF's multiplicative updates settle on components that often mix partials of
different notes and instruments (about two thirds of a component's energy comes from one source on
bench-dev). Started as harmonic combs, most components stay notes: one pitch with its harmonics,
which one instrument plays, and whose register, envelope and harmonic profile
(:mod:`.timbre`) then say which instrument that is.

:func:`pitch_spectra` picks the pitches greedily from the mixture's long-term magnitude spectrum: on a
semitone grid from :data:`LOWEST_MIDI` to :data:`HIGHEST_MIDI`, each pitch's salience is its comb's
inner product with the square root of the spectrum, over the square root of the comb's sum; the most
salient pitch is taken and the spectrum under its comb is damped by up to :data:`DAMPING` before the
next one, so one loud note (or its octave) is not taken again and again.
"""

from __future__ import annotations

import torch

#: the semitone grid of candidate fundamentals, MIDI note numbers (28: 41.2 Hz, 99: 2489 Hz)
LOWEST_MIDI = 28
HIGHEST_MIDI = 99
#: harmonics in a comb, and the amplitude ratio of each harmonic to the one below
HARMONICS = 12
DECAY = 0.8
#: standard deviation of each harmonic's Gaussian peak, in STFT bins
PEAK_WIDTH_BINS = 1.0
#: share of the residual spectrum removed under a chosen pitch's comb (at its strongest harmonic)
DAMPING = 0.9


def harmonic_combs(freqs: int, sample_rate: int, n_fft: int) -> torch.Tensor:
    """Harmonic combs of every semitone of the grid ``[pitches, freqs]`` (float64, peak 1 at the fundamental).

    Args:
        freqs: STFT bins (``n_fft // 2 + 1``).
        sample_rate: Hz.
        n_fft: STFT size in samples.
    """
    midi = torch.arange(LOWEST_MIDI, HIGHEST_MIDI + 1, dtype=torch.float64)
    fundamental_bins = 440.0 * 2 ** ((midi - 69) / 12) * n_fft / sample_rate  # [P]
    harmonic = torch.arange(1, HARMONICS + 1, dtype=torch.float64)
    centres = fundamental_bins[:, None] * harmonic  # [P, H]
    weights = (DECAY ** (harmonic - 1)) * (centres < freqs - 1)  # harmonics past the last bin are left out
    bins = torch.arange(freqs, dtype=torch.float64)
    peaks = torch.exp(-0.5 * ((bins - centres[..., None]) / PEAK_WIDTH_BINS) ** 2)  # [P, H, F]
    return (weights[..., None] * peaks).sum(dim=1)


def pitch_spectra(magnitude: torch.Tensor, sample_rate: int, n_fft: int, count: int) -> torch.Tensor:
    """Harmonic spectra of the ``count`` most salient pitches of a mixture ``[freqs, count]`` (float64).

    Args:
        magnitude: ``[channels, freqs, frames]`` STFT magnitudes (any scale).
        sample_rate: Hz.
        n_fft: STFT size in samples.
        count: pitches to pick (a pitch may come back once the damping has left its bins loud).
    """
    # the long-term spectrum in float64: a float32 sum would depend on the thread count's split
    residual = magnitude.double().mean(dim=(0, 2))
    combs = harmonic_combs(magnitude.shape[1], sample_rate, n_fft)
    sizes = combs.sum(dim=1).sqrt()
    chosen = []
    for _ in range(count):
        best = int(((combs @ residual.sqrt()) / sizes).argmax())
        chosen.append(best)
        residual = residual * (1 - DAMPING * combs[best] / combs[best].max())
    return combs[chosen].T
