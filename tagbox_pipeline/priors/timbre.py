"""How components sound, as features of their spectra: the register, envelope and harmonics cues
of the share-out.

An instrument plays in a register and keeps its spectral envelope and the balance of its harmonics
from note to note, so the components of one source tend to share them. From each component's
spectrum ``W[:, k]`` (magnitude over the STFT bins of an ``n_fft``-point transform at the input rate):

- **register**: ``log2`` of the frequency (Hz) of its strongest bin, so one unit is an octave;
- **envelope**: the first cepstral coefficients (2nd to 9th) of its log mel spectrum, divided by the
  square root of their number, so the squared distance is the mean over coefficients;
- **harmonics**: the relative strengths of its first :data:`HARMONICS` harmonics (log, centred),
  read at the fundamental that best explains the spectrum: how bright an instrument is from its own
  pitch on, which a note an octave higher keeps (the envelope, on the absolute frequency axis, does not).

Each becomes a :class:`~.consistency.Cue` that pulls a source's components together.
"""

from __future__ import annotations

import functools
import math

import librosa
import numpy as np
import scipy.fft
import torch

from .consistency import Cue

#: mel bands of the envelope, and cepstral coefficients kept (after the 0th, the overall level)
MEL_BANDS = 40
COEFFICIENTS = 8
#: the lowest frequency a register is measured at, in Hz (bins below count as this)
LOWEST_HZ = 20.0
#: smallest spread of a source's register (octaves) and envelope (cepstral units)
REGISTER_MIN_SPREAD = 0.3
ENVELOPE_MIN_SPREAD = 0.3
#: a typical distance between two components of one source: register (octaves), envelope (cepstral units)
REGISTER_UNIT = 0.5
ENVELOPE_UNIT = 0.3
#: harmonics read per component; fundamentals searched from LOWEST_F0_HZ to HIGHEST_F0_HZ on a grid of
#: F0_STEPS_PER_OCTAVE, each scored by the sum of its harmonics' amplitudes weighted HARMONIC_DECAY ** (h - 1)
HARMONICS = 8
LOWEST_F0_HZ = 40.0
HIGHEST_F0_HZ = 2000.0
F0_STEPS_PER_OCTAVE = 768
HARMONIC_DECAY = 0.85
#: smallest spread of a source's harmonic profile, and a typical distance between two of its components
#: (log-amplitude units over the square root of HARMONICS)
HARMONICS_MIN_SPREAD = 0.3
HARMONICS_UNIT = 0.5
#: amplitude floor of a harmonic, as a share of the component's harmonics' sum
HARMONIC_FLOOR = 1e-3
_FLOOR = 1e-6


def register(spectra: torch.Tensor, sample_rate: int, n_fft: int) -> torch.Tensor:
    """``log2`` Hz of each component's strongest bin, ``[K, 1]``, for spectra ``[n_fft // 2 + 1, K]``."""
    peak_hz = spectra.argmax(dim=0).to(torch.float32) * sample_rate / n_fft
    return torch.log2(peak_hz.clamp_min(LOWEST_HZ))[:, None]


@functools.lru_cache(maxsize=8)
def _mel(sample_rate: int, n_fft: int) -> np.ndarray:
    """Mel filter bank ``[MEL_BANDS, n_fft // 2 + 1]`` in float64."""
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=MEL_BANDS).astype(np.float64)


def envelope(spectra: torch.Tensor, sample_rate: int, n_fft: int) -> torch.Tensor:
    """Cepstral coefficients 1..:data:`COEFFICIENTS` of each component's log mel spectrum, ``[K, 8]``.

    The mel bands are summed by ``np.einsum`` rather than a BLAS product, whose rounding depends on
    its thread count: the stems of a resumed or Dask-run track must not depend on it.
    """
    log_mel = np.log(np.einsum("mf,fk->mk", _mel(sample_rate, n_fft), spectra.detach().cpu().double().numpy())
                     + _FLOOR)
    cepstrum = scipy.fft.dct(log_mel, axis=0, norm="ortho")[1:COEFFICIENTS + 1].T
    return torch.from_numpy(cepstrum / math.sqrt(COEFFICIENTS)).to(spectra.dtype).to(spectra.device)


def harmonic_profile(spectra: torch.Tensor, sample_rate: int, n_fft: int) -> torch.Tensor:
    """Log relative amplitudes of each component's first :data:`HARMONICS` harmonics, ``[K, HARMONICS]``.

    The fundamental is the grid frequency (:data:`LOWEST_F0_HZ`..:data:`HIGHEST_F0_HZ` Hz) whose
    decaying sum of harmonic peaks is largest: a harmonic counts there only where one of the two bins
    around its frequency is a spectral peak (a local maximum), so a window's leakage around a peak
    does not make a subharmonic look harmonic. At that fundamental a harmonic's amplitude is the
    larger of those two bins, peak or not (a component that holds several close pitches has broad
    partials); 0 above the Nyquist frequency. The log amplitudes (floored at
    :data:`HARMONIC_FLOOR` of their sum) are centred per component and divided by √HARMONICS.
    """
    bins = spectra.shape[0]
    octaves = math.log2(HIGHEST_F0_HZ / LOWEST_F0_HZ)
    f0 = LOWEST_F0_HZ * 2 ** (torch.arange(int(octaves * F0_STEPS_PER_OCTAVE) + 1, dtype=torch.float64)
                              / F0_STEPS_PER_OCTAVE)
    order = torch.arange(1, HARMONICS + 1, dtype=torch.float64)
    below = (f0[:, None] * order * n_fft / sample_rate).floor().long()  # [F0s, HARMONICS] bin under each harmonic
    row = torch.where(below < bins - 1, below, bins)  # row `bins` of the tables below is zero (above Nyquist)
    magnitude = spectra.detach().double().cpu()
    peaks = torch.zeros_like(magnitude)  # local maxima only
    is_peak = (magnitude[1:-1] >= magnitude[:-2]) & (magnitude[1:-1] >= magnitude[2:])
    peaks[1:-1] = torch.where(is_peak, magnitude[1:-1], 0.0)

    def around(values: torch.Tensor) -> torch.Tensor:
        """The larger of bins ``b`` and ``b + 1`` of ``values`` in row ``b``, ``[bins + 1, K]`` (row ``bins``: 0)."""
        return torch.nn.functional.pad(torch.maximum(values[:-1], values[1:]), (0, 0, 0, 2))

    # one [F0s, K] gather per harmonic, not an [F0s, HARMONICS, K] array (tens of MB per call)
    peak_around, salience = around(peaks), torch.zeros(len(f0), spectra.shape[1], dtype=torch.float64)
    for h in range(HARMONICS):
        salience += HARMONIC_DECAY ** h * peak_around[row[:, h]]
    profile = around(magnitude).gather(0, row[salience.argmax(dim=0)].T).T  # [K, HARMONICS]
    log_profile = torch.log(profile / profile.sum(dim=1, keepdim=True).clamp_min(_FLOOR) + HARMONIC_FLOOR)
    centred = (log_profile - log_profile.mean(dim=1, keepdim=True)) / math.sqrt(HARMONICS)
    return centred.to(spectra.dtype).to(spectra.device)


def timbre_cues(spectra: torch.Tensor, sample_rate: int, n_fft: int, register_weight: float,
                envelope_weight: float, harmonics_weight: float) -> list[Cue]:
    """The register, envelope and harmonics cues of components with spectra ``[n_fft // 2 + 1, K]``
    (those of weight > 0)."""
    cues = []
    if register_weight > 0:
        cues.append(Cue(register(spectra, sample_rate, n_fft), register_weight, REGISTER_MIN_SPREAD,
                        REGISTER_UNIT))
    if envelope_weight > 0:
        cues.append(Cue(envelope(spectra, sample_rate, n_fft), envelope_weight, ENVELOPE_MIN_SPREAD,
                        ENVELOPE_UNIT))
    if harmonics_weight > 0:
        cues.append(Cue(harmonic_profile(spectra, sample_rate, n_fft), harmonics_weight, HARMONICS_MIN_SPREAD,
                        HARMONICS_UNIT))
    return cues
