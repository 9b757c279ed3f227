"""The default CPU prior: KL-NMF components of the mixture, shared out between sources by gates.

The mono mixture's magnitude |X| (n_fft, hop at the input rate) is factorised into K components
(KL-divergence NMF, multiplicative updates). Each component k gets a Wiener-style soft mask
``M_k = W_k H_k / Σ_j W_j H_j``. Gate logits ``g[s, k]`` for the S sources plus one "rest" row are
turned into shares by a softmax over that axis, so the masks of one chunk compete: the sources'
masks sum to at most one and the rest goes to the residual. Only the gates move; the factorisation
is fixed once per chunk. The prior is restrictive by construction: an estimate can only be a
combination of whole components of the mixture, so a tagger cannot be fooled by an arbitrary mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..config import NMFSettings
from ..masks import istft, stft, wiener_shares
from .base import Prior, SourceScorer

_EPS = 1e-10


@dataclass
class NMFState:
    """Per-chunk state: fixed spectra and component masks, and the gate logits being optimised."""

    spec: torch.Tensor  # [channels, F, T] complex STFT of every channel
    mono_spec: torch.Tensor  # [F, T] complex STFT of the mono sum
    component_masks: torch.Tensor  # [K, F, T], sum over K = 1
    logits: torch.Tensor  # [S + 1, K, blocks] gates (last row: rest), requires grad
    samples: int


def kl_nmf(magnitude: torch.Tensor, components: int, iterations: int, generator: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """KL-divergence NMF ``V ≈ W H`` by multiplicative updates; returns W ``[F, K]``, H ``[K, T]``."""
    freqs, frames = magnitude.shape
    scale = magnitude.mean().clamp_min(_EPS)
    v = magnitude / scale + _EPS
    w = torch.rand(freqs, components, generator=generator, dtype=v.dtype).to(v.device) + 0.1
    h = torch.rand(components, frames, generator=generator, dtype=v.dtype).to(v.device) + 0.1
    for _ in range(iterations):
        h = h * (w.T @ (v / (w @ h))) / w.sum(dim=0, keepdim=True).T
        w = w * ((v / (w @ h)) @ h.T) / h.sum(dim=1, keepdim=True).T
        norm = w.sum(dim=0, keepdim=True).clamp_min(_EPS)
        w, h = w / norm, h * norm.T
    return w, h * scale


class NMFPrior(Prior):
    """Gated KL-NMF components (see module docstring)."""

    name = "nmf"

    def __init__(self, settings: NMFSettings) -> None:
        self.settings = settings

    def fit(self, mix: torch.Tensor, sample_rate: int, n_sources: int, seed: int = 0) -> NMFState:
        s = self.settings
        spec = stft(mix, s.n_fft, s.hop)
        mono_spec = spec.mean(dim=0)
        generator = torch.Generator().manual_seed(seed)
        w, h = kl_nmf(mono_spec.abs(), s.components, s.nmf_iterations, generator)
        component_masks = wiener_shares(w.T[:, :, None] * h[:, None, :])
        logits = torch.zeros(n_sources + 1, s.components, 1, device=mix.device)
        logits[-1] = s.rest_logit
        logits.requires_grad_(True)
        return NMFState(spec, mono_spec, component_masks, logits, mix.shape[-1])

    def components(self, state: NMFState) -> torch.Tensor:
        """Mono audio of every component alone ``[K, samples]``."""
        s = self.settings
        return istft(state.component_masks * state.mono_spec, s.n_fft, s.hop, state.samples)

    def warm_start(self, state: NMFState, score: SourceScorer) -> None:
        """Share components competitively by how each one is tagged, relative to the other components.

        ``g[s, k, b] = (log p_kb(s) − log mean_jc p_jc(s)) / T`` for component k in time block b; the
        rest row is ``settings.rest_logit`` (default 0), so a component that sounds less like every
        source than an average component (in an average block) goes mostly to the residual. The
        gates become time-varying with as many blocks as the scorer returns.
        """
        with torch.no_grad():
            log_p = score(self.components(state))  # [K, blocks, S]
            count = torch.tensor(float(log_p.shape[0] * log_p.shape[1]))
            relative = log_p - torch.logsumexp(log_p.flatten(0, 1), dim=0) + torch.log(count)
            logits = torch.full((state.logits.shape[0], *log_p.shape[:2]), self.settings.rest_logit,
                                device=log_p.device)
            logits[:-1] = relative.permute(2, 0, 1) / self.settings.temperature
            state.logits = logits.requires_grad_(True)

    def parameters(self, state: NMFState) -> list[torch.Tensor]:
        return [state.logits]

    def masks(self, state: NMFState) -> torch.Tensor:
        """Source masks ``[S, F, T]``, each in [0, 1], summing to at most one over sources.

        Block gates are interpolated linearly to STFT frames (block centres evenly spread).
        """
        shares = torch.softmax(state.logits, dim=0)[:-1]  # [S, K, blocks]
        frames = state.component_masks.shape[-1]
        if shares.shape[-1] == 1:
            return torch.einsum("sk,kft->sft", shares[..., 0], state.component_masks)
        per_frame = F.interpolate(shares, size=frames, mode="linear", align_corners=False)
        return torch.einsum("skt,kft->sft", per_frame, state.component_masks)

    def estimates(self, state: NMFState) -> torch.Tensor:
        s = self.settings
        return istft(self.masks(state) * state.mono_spec, s.n_fft, s.hop, state.samples)

    def stems(self, state: NMFState) -> torch.Tensor:
        s = self.settings
        with torch.no_grad():
            masks = self.masks(state)
            return istft(masks[:, None] * state.spec[None], s.n_fft, s.hop, state.samples)
