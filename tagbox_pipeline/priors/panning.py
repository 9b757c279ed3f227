"""Where components sit between the channels: the spatial cue of the share-out.

A stereo mix places each instrument at a pan position, and the stereo factorisation
(:func:`tagbox_pipeline.priors.nmf.kl_ntf`) gives every component its channel gains. Directions are
unit vectors of those gains (for stereo, a point on the quarter circle from left to right: the
distance between two of them is about their pan-angle difference in radians). As a
:class:`~.consistency.Cue`, each source's components are pulled towards one direction. On a mono
mix there is no cue; where sources sit at the same place it adds the same to each of them.
"""

from __future__ import annotations

import math

import torch

from .consistency import Cue

_EPS = 1e-12
#: a typical angular distance between two components of one source, in radians (about 11°)
DIRECTION_UNIT = 0.2


def directions(gains: torch.Tensor) -> torch.Tensor:
    """Unit direction of every component ``[K, channels]`` from its channel gains ``[channels, K]``."""
    return (gains / gains.norm(dim=0, keepdim=True).clamp_min(_EPS)).T


def spatial_cue(gains: torch.Tensor, weight: float, min_spread_degrees: float) -> list[Cue]:
    """The direction cue of components with channel gains ``[channels, K]`` (none for one channel).

    Args:
        weight: scale of its log-likelihood in the gate logits.
        min_spread_degrees: smallest angular spread (standard deviation) of a source, in degrees.
    """
    if gains.shape[0] < 2:
        return []
    return [Cue(directions(gains), weight, math.radians(min_spread_degrees), DIRECTION_UNIT)]
