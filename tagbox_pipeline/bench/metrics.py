"""Separation metrics: scale-invariant SDR (in dB) and its improvement over the mixture."""

from __future__ import annotations

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
