"""Groups of components that sit and sound alike: what the warm start tags beside single components.

A single NMF component is a fragment (a few notes, one partial's worth of a chord) that rarely
sounds like an instrument to a tagger. Components that come from about one direction and share a
register, a spectral envelope and a harmonic profile (the :class:`~.consistency.Cue` features) often
come from one instrument, and their sum sounds more like it. :func:`group_components` clusters the
components by k-means (scikit-learn) in the cues' joint feature space, each cue measured in its ``unit`` and
scaled by the square root of its weight, every component weighted by its energy in the mixture.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.cluster import KMeans

from .consistency import Cue

#: k-means restarts (the one of least inertia is kept)
RESTARTS = 4


def group_features(cues: list[Cue]) -> np.ndarray:
    """The cues' features side by side, ``[K, Σd]`` float64, each in its unit × √weight (weight-0 cues left out)."""
    return np.concatenate([cue.features.detach().cpu().double().numpy() * math.sqrt(cue.weight) / cue.unit
                           for cue in cues if cue.weight > 0], axis=1)


def group_components(cues: list[Cue], energies: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor | None:
    """Cluster K components into ``count`` groups by their cues -> group number per component ``[K]``.

    Args:
        energies: ``[K]`` each component's energy in the mixture (any unit), its k-means weight.
        seed: seeds the k-means initialisation.

    Returns:
        None when ``count`` is 0, there is nothing to group by (no cue of weight > 0) or there are fewer
        than two components per group (most groups would be a single component, tagged a second time for
        nothing).
    """
    if count < 1 or not any(cue.weight > 0 for cue in cues) or len(energies) < 2 * count:
        return None
    weights = energies.detach().cpu().double().numpy()
    fit = KMeans(n_clusters=count, n_init=RESTARTS, random_state=seed).fit(
        group_features(cues), sample_weight=weights / weights.sum())
    return torch.from_numpy(fit.labels_).long().to(energies.device)
