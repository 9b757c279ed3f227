"""STFT helpers and masks shared by the priors (NMF, Jukebox).

All transforms use a periodic Hann window, centred frames with zero padding, so any length works
(even shorter than one FFT) and ``istft(stft(x)) == x`` to float precision.
"""

from __future__ import annotations

import torch


def stft(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT of ``[..., samples]`` audio -> ``[..., n_fft // 2 + 1, frames]``."""
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    shape = audio.shape
    spec = torch.stft(audio.reshape(-1, shape[-1]), n_fft, hop, window=window, center=True,
                      pad_mode="constant", return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """Inverse of :func:`stft`: ``[..., freqs, frames]`` -> ``[..., length]`` samples."""
    window = torch.hann_window(n_fft, device=spec.device, dtype=spec.real.dtype)
    shape = spec.shape
    audio = torch.istft(spec.reshape(-1, *shape[-2:]), n_fft, hop, window=window, center=True, length=length)
    return audio.reshape(*shape[:-2], length)


def ratio_mask(estimate_mag: torch.Tensor, mix_mag: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """TagBox's ratio mask ``|G| / max(|X|, |G|)`` in [0, 1] (same shapes, magnitudes)."""
    return estimate_mag / torch.maximum(mix_mag, estimate_mag).clamp_min(eps)


def wiener_shares(magnitudes: torch.Tensor, power: float = 1.0, eps: float = 1e-10) -> torch.Tensor:
    """Soft masks from non-negative magnitude models ``[K, F, T]``: ``m_k^p / Σ m^p``; they sum to one."""
    weighted = magnitudes.clamp_min(0) ** power
    return weighted / (weighted.sum(dim=0, keepdim=True) + eps)
