"""How percussive a component is: the share of its activation that comes in short bursts.

A drum hit's NTF activation jumps and dies away within about 100 ms; a sung, bowed, blown or
plucked note's rises and decays over hundreds of milliseconds. Median-filtering a component's
activation ``H[k, t]`` over :data:`MEDIAN_SECONDS` keeps its slow part; what stands above that is
its burst part. The **transience** of component k is the burst part's share of the activation's
energy, ``Σ_t max(H − median(H), 0)² / Σ_t H²``, in [0, 1]: about 0.7–1 for most components of a
drum kit (hi-hat, snare, kick attack), under 0.2 for those of sustained and most plucked parts (measured on
bench-dev: ``bench/results/quality.md``). It describes the signal; nothing is learned.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch

#: length of the median filter that keeps an activation's slow part, in s
MEDIAN_SECONDS = 0.2
_FLOOR = 1e-30


def transience(activations: torch.Tensor, sample_rate: int, hop: int) -> torch.Tensor:
    """The burst share of each component's activation ``[K]`` (in [0, 1]) for activations ``[K, T]``.

    Args:
        activations: ``[K, T]`` non-negative activations, one frame per ``hop`` samples.
        sample_rate: in Hz.
        hop: STFT hop in samples (the activations' frame step).
    """
    frames = max(3, round(MEDIAN_SECONDS * sample_rate / hop) | 1)  # odd, so the filter is centred
    h = activations.detach().cpu().double().numpy()
    slow = scipy.ndimage.median_filter(h, size=(1, frames), mode="nearest")
    burst = np.square(np.clip(h - slow, 0.0, None)).sum(axis=1) / (np.square(h).sum(axis=1) + _FLOOR)
    return torch.from_numpy(burst).to(activations.dtype).to(activations.device)
