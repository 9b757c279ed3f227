"""Consistency cues: each source's components should sit close together in a few feature spaces.

Tags alone share components between sources by how each one sounds to a tagger on its own, which is
a weak cue for a single component. A source's components also have things in common: they come from
about one direction of the stereo field (:mod:`.panning`), one register, one spectral envelope and one
harmonic profile (:mod:`.timbre`). :func:`refine_by_cues` alternates (a few EM-like rounds) between
estimating, per source and per cue, the centre and spread of its components' features from its current shares
(weighted by each component's energy), and adding the resulting Gaussian log-likelihood of every
component's features to the sources' gate logits. A cue whose features are the same for every
component adds the same to every source and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .gates import shares

_EPS = 1e-12


@dataclass
class Cue:
    """One feature space: ``features[k]`` of every component, the cue's weight, and its spreads.

    Attributes:
        features: ``[K, d]`` per component, in units where a squared Euclidean distance makes sense.
        weight: scale of the cue's log-likelihood in the gate logits (0: the cue is ignored).
        min_spread: lower bound of a source's spread (standard deviation, feature units), so a source
            that owns one component does not collapse onto it.
        unit: a typical distance between two components of one source (feature units), the unit the
            cue is measured in when components are grouped (:mod:`.grouping`).
    """

    features: torch.Tensor
    weight: float
    min_spread: float
    unit: float


def refine_by_cues(logits: torch.Tensor, cues: list[Cue], energies: torch.Tensor, rounds: int,
                   trust: torch.Tensor | None = None) -> torch.Tensor:
    """Add each source's Gaussian log-likelihood under every cue to tag-based gate logits.

    Args:
        logits: ``[S + 1, K, blocks]`` gate logits from the tags; the last row is the residual's
            and is left as it is.
        cues: the feature spaces (see :class:`Cue`); those of weight 0 are skipped.
        energies: ``[K]`` magnitude energy of each component in the mixture (any unit).
        rounds: alternations of (centres and spreads from shares, shares from the likelihoods).
        trust: ``[S]`` scale of each source's terms (default all 1): a source that holds only part of
            its instrument (a rival) has a less certain centre and spread.

    Returns:
        New logits, same shape; the added terms are constant over time blocks. Per cue, the
        likelihood is relative to the best-fitting source of each component (≤ 0), so a cue moves
        a component away from the sources it does not fit, never towards the residual by itself.
    """
    cues = [cue for cue in cues if cue.weight > 0]
    if not cues or rounds == 0:
        return logits
    scale = torch.ones(len(logits) - 1) if trust is None else trust
    scale = scale.to(logits.device, logits.dtype)[:, None]
    refined = logits
    for _ in range(rounds):
        owned = shares(refined)[:-1].mean(dim=-1) * energies  # [S, K]
        total = owned.sum(dim=1, keepdim=True).clamp_min(_EPS)
        added = torch.zeros_like(owned)
        for cue in cues:
            centre = owned @ cue.features / total  # [S, d]
            distance = (cue.features[None] - centre[:, None]).pow(2).sum(dim=-1)  # [S, K]
            spread = ((owned * distance).sum(dim=1, keepdim=True) / total).clamp_min(cue.min_spread ** 2)
            likelihood = -distance / (2 * spread) - 0.5 * torch.log(spread)
            added += cue.weight * scale * (likelihood - likelihood.max(dim=0, keepdim=True).values)
        refined = logits.clone()
        refined[:-1] = refined[:-1] + added[:, :, None]
    return refined
