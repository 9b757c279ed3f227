"""Vector quantisation against a fixed codebook, and our own straight-through step.

The codebook is only read: nothing here updates, re-initialises or revives codes (the original
training-mode bottleneck does all three on every call; see ``priors/jukebox/README`` text in
:mod:`tagbox_pipeline.priors.jukebox`).
"""

from __future__ import annotations

import torch


def nearest_codes(latents: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row for every frame.

    Args:
        latents: ``[B, emb_width, frames]``.
        codebook: ``[codes, emb_width]``.

    Returns:
        ``[B, frames]`` int64 codes; distance ``‖x‖² − 2 x·k + ‖k‖²``, ties go to the lowest index.
    """
    frames = latents.detach().transpose(1, 2).reshape(-1, latents.shape[1]).to(codebook.dtype)
    distance = (frames.pow(2).sum(dim=1, keepdim=True) - 2 * frames @ codebook.T
                + codebook.pow(2).sum(dim=1)[None, :])
    return distance.argmin(dim=1).reshape(latents.shape[0], latents.shape[2])


def dequantise(codes: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Codebook vectors of ``[B, frames]`` codes as latents ``[B, emb_width, frames]``."""
    return torch.nn.functional.embedding(codes, codebook).transpose(1, 2)


def straight_through(latents: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Quantised latents whose gradient passes to ``latents`` unchanged: ``x + (q(x) − x).detach()``."""
    quantised = dequantise(nearest_codes(latents, codebook), codebook).to(latents.dtype)
    return latents + (quantised - latents).detach()
