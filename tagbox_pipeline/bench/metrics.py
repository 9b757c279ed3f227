"""Separation metrics: scale-invariant SDR (in dB), its improvement over the mixture, speed and memory."""

from __future__ import annotations

import resource

import numpy as np


def si_sdr(estimate: np.ndarray, reference: np.ndarray, eps: float = 1e-12) -> float:
    """Scale-invariant SDR in dB of a 1-D ``estimate`` against ``reference`` (both zero-meaned first)."""
    estimate = estimate - estimate.mean()
    reference = reference - reference.mean()
    scale = np.dot(estimate, reference) / (np.dot(reference, reference) + eps)
    target = scale * reference
    noise = estimate - target
    return float(10 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


def si_sdr_improvement(estimate: np.ndarray, reference: np.ndarray, mixture: np.ndarray) -> float:
    """SI-SDR of the estimate minus SI-SDR of the mixture itself, both against ``reference`` (dB)."""
    return si_sdr(estimate, reference) - si_sdr(mixture, reference)


def mono(audio: np.ndarray) -> np.ndarray:
    """Mono sum of ``[channels, samples]`` (or pass 1-D through)."""
    return audio if audio.ndim == 1 else audio.sum(axis=0)


def real_time_factor(seconds: float, audio_seconds: float, n_sources: int) -> float:
    """Processing time per requested source relative to the audio's duration (1.0 = real time per source)."""
    return seconds / audio_seconds / max(n_sources, 1)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
