"""How components sound, as features of their spectra: the register and envelope cues of the share-out.

An instrument plays in a register and keeps its spectral envelope from note to note, so the
components of one source tend to share both. From each component's spectrum ``W[:, k]`` (magnitude
over the STFT bins of an ``n_fft``-point transform at the input rate):

- **register**: ``log2`` of the frequency (Hz) of its strongest bin, so one unit is an octave;
- **envelope**: the first cepstral coefficients (2nd to 9th) of its log mel spectrum, divided by the
  square root of their number, so the squared distance is the mean over coefficients.

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


def timbre_cues(spectra: torch.Tensor, sample_rate: int, n_fft: int, register_weight: float,
                envelope_weight: float) -> list[Cue]:
    """The register and envelope cues of components with spectra ``[n_fft // 2 + 1, K]`` (those of weight > 0)."""
    cues = []
    if register_weight > 0:
        cues.append(Cue(register(spectra, sample_rate, n_fft), register_weight, REGISTER_MIN_SPREAD,
                        REGISTER_UNIT))
    if envelope_weight > 0:
        cues.append(Cue(envelope(spectra, sample_rate, n_fft), envelope_weight, ENVELOPE_MIN_SPREAD,
                        ENVELOPE_UNIT))
    return cues
