"""Where components sit between the channels, and a share-out that keeps each source in one place.

A stereo mix places each instrument at a pan position, and the stereo factorisation
(:func:`tagbox_pipeline.priors.nmf.kl_ntf`) gives every component its channel gains. Tagging alone
shares components between sources by timbre; this module adds the spatial cue: each source's
components should come from about one direction. It alternates (a few EM-like rounds) between
estimating each source's direction and spread from its current shares, and adding the resulting
Gaussian log-likelihood of every component's direction to the sources' gate logits.

Directions are unit vectors of the channel gains (for stereo, a point on the quarter circle from
left to right: the distance between two of them is about their pan-angle difference in radians).
On a mono mix, or when the sources sit at the same place, every source gets the same likelihood
and the tags alone decide.
"""

from __future__ import annotations

import math

import torch

from .gates import shares

_EPS = 1e-12


def directions(gains: torch.Tensor) -> torch.Tensor:
    """Unit direction of every component ``[K, channels]`` from its channel gains ``[channels, K]``."""
    return (gains / gains.norm(dim=0, keepdim=True).clamp_min(_EPS)).T


def refine_by_direction(logits: torch.Tensor, component_directions: torch.Tensor, energies: torch.Tensor,
                        weight: float, min_spread_degrees: float, rounds: int) -> torch.Tensor:
    """Add a per-source spatial log-likelihood to tag-based gate logits.

    Args:
        logits: ``[S + 1, K, blocks]`` gate logits from the tags; the last row is the residual's
            and is left as it is.
        component_directions: ``[K, channels]`` from :func:`directions`.
        energies: ``[K]`` magnitude energy of each component in the mixture (any unit).
        weight: scale of the spatial term (0: return ``logits`` unchanged).
        min_spread_degrees: lower bound of a source's angular spread (standard deviation), in degrees,
            so a source that owns one component does not collapse onto it.
        rounds: alternations of (directions from shares, shares from directions).

    Returns:
        New logits, same shape; the spatial term is constant over time blocks.
    """
    if weight == 0 or rounds == 0 or component_directions.shape[1] < 2:
        return logits
    floor = math.radians(min_spread_degrees) ** 2
    refined = logits
    for _ in range(rounds):
        owned = shares(refined)[:-1].mean(dim=-1) * energies  # [S, K]
        total = owned.sum(dim=1, keepdim=True).clamp_min(_EPS)
        centre = owned @ component_directions / total  # [S, channels]
        distance = (component_directions[None] - centre[:, None]).pow(2).sum(dim=-1)  # [S, K]
        spread = ((owned * distance).sum(dim=1, keepdim=True) / total).clamp_min(floor)
        likelihood = -distance / (2 * spread) - 0.5 * torch.log(spread)
        likelihood = likelihood - likelihood.max(dim=0, keepdim=True).values
        refined = logits.clone()
        refined[:-1] = refined[:-1] + weight * likelihood[:, :, None]
    return refined
