"""The default CPU prior: KL-NTF components of the mixture, shared out between sources by gates.

The magnitude spectrogram of every channel ``|X_c|`` (n_fft, hop at the input rate) is factorised
jointly into K components (KL-divergence non-negative tensor factorisation, multiplicative updates):
``|X_c(f, t)| ≈ Σ_k Q[c, k] W[f, k] H[k, t]`` — a spectrum, an activation and channel gains (where
the component sits between the channels) per component. On a mono mix, or with ``stereo = false``
(the downmix alone), this is plain KL-NMF. Component k gets the Wiener-style soft mask
``M_kc = Q_ck W_k H_k / Σ_j Q_cj W_j H_j`` on channel c. Gate logits ``g[s, k, block]`` for the S
sources plus one "rest" row are turned into shares by a softmax over that axis, so the masks of one
chunk compete: the sources' masks sum to at most one and the rest goes to the residual. Only the
gates move; the factorisation is fixed once per chunk. The prior is restrictive by construction: an
estimate can only be a combination of whole components of the mixture, so a tagger cannot be fooled
by an arbitrary mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import NMFSettings
from ..percussive import percussive_share
from ..stft import istft, stft
from ..timeline import stretch
from .base import Prior, SourceScorer
from .consistency import Cue, refine_by_cues
from .gates import shares
from .grouping import group_components
from .panning import spatial_cue
from .pitch_start import pitch_spectra
from .timbre import timbre_cues
from .transients import transience

_EPS = 1e-10
#: the random spectra's weight beside given start spectra (peak 1) in :func:`kl_ntf`
START_FLOOR = 0.2
#: bytes :meth:`NMFPrior.components` may use at once for the masks and masked spectra of a batch
_RENDER_BUDGET = 128 * 2**20


@dataclass
class Factorisation:
    """``|X_c(f, t)| ≈ Σ_k gains[c, k] spectra[f, k] activations[k, t]``; gains and spectra sum to one per k."""

    gains: torch.Tensor  # [C, K]
    spectra: torch.Tensor  # [F, K]
    activations: torch.Tensor  # [K, T]

    def model(self) -> torch.Tensor:
        """The modelled magnitude ``[C, F, T]`` (plus a small floor, so it can divide)."""
        return self.mask_numerator(torch.ones_like(self.activations)[None])[0] + _EPS

    def channel_spectra(self) -> torch.Tensor:
        """``Q[c, k] W[f, k]`` -> ``[C, F, K]``."""
        return self.spectra[None] * self.gains[:, None, :]

    def mask_numerator(self, weights: torch.Tensor) -> torch.Tensor:
        """``Σ_k weights[s, k, t] Q[c, k] W[f, k] H[k, t]`` -> ``[S, C, F, T]`` for weights ``[S, K, T]``."""
        return torch.matmul(self.channel_spectra()[None], (weights * self.activations)[:, None])


def kl_ntf(magnitude: torch.Tensor, components: int, iterations: int, generator: torch.Generator,
           exponent: float = 1.0, start_spectra: torch.Tensor | None = None) -> Factorisation:
    """KL-divergence NTF of ``[C, F, T]`` magnitudes by multiplicative updates (C = 1: KL-NMF).

    Spectra and activations start random (uniform in [0.1, 1.1)); ``start_spectra`` ``[F, P]`` (P ≤
    K, any positive scale: normalised per column) replace the first P random spectra, with
    :data:`START_FLOOR` × the random ones added so no bin starts at zero (a multiplicative update
    cannot leave zero); see :mod:`.pitch_start`.

    Updates H, then W, then the channel gains Q, each from the ratio ``V / V̂``; after every
    iteration W's and Q's columns are scaled to sum to one and the scale moved into H. Each
    update multiplies by its factor raised to ``exponent`` (1: the plain updates; above 1 a longer
    step in the same direction, the exponent step of Badeau, Bertin & Vincent, IEEE TNN 2010):
    measured on bench-dev mixtures, 150 updates at 1.5 fit as closely as 300 plain ones.

    The ratios are formed :data:`FRAME_BLOCK` frames at a time (:func:`_blocked_ratio_products`),
    so each block's model, ratio and products stay in the CPU's cache instead of streaming whole
    ``[C, F, T]`` arrays through memory three times per update.
    """
    channels, freqs, frames = magnitude.shape
    # summed in float64: a float32 sum of millions of bins depends on the thread count's split, and so
    # would every bit of the stems (a resumed or Dask-run track must equal an uninterrupted one)
    scale = magnitude.double().mean().to(magnitude.dtype).clamp_min(_EPS)
    v = (magnitude / scale + _EPS).reshape(channels * freqs, frames)
    w = torch.rand(freqs, components, generator=generator, dtype=v.dtype).to(v.device) + 0.1
    h = torch.rand(components, frames, generator=generator, dtype=v.dtype).to(v.device) + 0.1
    if start_spectra is not None:
        given = start_spectra[:, :components].to(v)
        w[:, :given.shape[1]] = given / given.amax(dim=0) + START_FLOOR * w[:, :given.shape[1]]
    q = torch.full((channels, components), 1.0 / channels, dtype=v.dtype, device=v.device)

    def step(factors: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
        """``factors × (numerator / denominator) ** exponent`` (with 1, in the plain updates' order of operations)."""
        if exponent == 1:
            return factors * numerator / denominator
        return factors * (numerator / denominator).pow(exponent)

    for _ in range(iterations):
        h_denominator = (q.sum(dim=0) * w.sum(dim=0))[:, None]
        h, ratio_h = _blocked_ratio_products(v, Factorisation(q, w, h),
                                             lambda wq, h_b, ratio: step(h_b, wq.T @ ratio, h_denominator))
        w = step(w, (ratio_h * q[:, None, :]).sum(dim=0), (q.sum(dim=0) * h.sum(dim=1))[None])
        ratio_h = _blocked_ratio_products(v, Factorisation(q, w, h))[1]
        q = step(q, (ratio_h * w[None]).sum(dim=1), (w.sum(dim=0) * h.sum(dim=1))[None])
        w_norm, q_norm = w.sum(dim=0).clamp_min(_EPS), q.sum(dim=0).clamp_min(_EPS)
        w, q, h = w / w_norm, q / q_norm, h * (w_norm * q_norm)[:, None]
    return Factorisation(q, w, h * scale)


#: frames per block of :func:`_blocked_ratio_products`: 150 updates of a 25.8 s stereo chunk (K = 32) took
#: 6.0-7.0 s with whole arrays and 4.0-4.8 s in blocks of 256 frames (128: 4.6-4.8 s, 512: 5.0-5.4 s) on
#: the 2-core AMD EPYC bench machine
FRAME_BLOCK = 256


def _blocked_ratio_products(v: torch.Tensor, factors: Factorisation,
                            update_h: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(H', (V / QW H') H'ᵀ)`` for ``V`` ``[C·F, T]`` and the factors' ``Q``, ``W``, ``H``, formed
    :data:`FRAME_BLOCK` frames at a time -> ``(H' [K, T], [C, F, K])``.

    ``H' = H`` without ``update_h``; with it, each block of H's columns is first replaced by
    ``update_h(wq, h_block, V_block / (WQ h_block))`` (``wq``: ``[C·F, K]``; an H update reads only its
    own frames' ratio).
    """
    spectra = factors.channel_spectra()  # [C, F, K]
    wq, h = spectra.flatten(0, 1), factors.activations
    products = v.new_zeros(wq.shape)
    blocks = []
    for start in range(0, v.shape[1], FRAME_BLOCK):
        v_b, h_b = v[:, start:start + FRAME_BLOCK], h[:, start:start + FRAME_BLOCK]
        if update_h is not None:
            h_b = update_h(wq, h_b, v_b / (wq @ h_b))
        products += (v_b / (wq @ h_b)) @ h_b.T
        blocks.append(h_b)
    return torch.cat(blocks, dim=1), products.view_as(spectra)


@dataclass
class NMFState:
    """Per-chunk state: the mixture's spectra, its fixed factorisation and the gate logits being optimised."""

    spec: torch.Tensor  # [channels, F, T] complex STFT of every channel
    factorised: torch.Tensor  # [C', F, T] complex STFT the factorisation models (all channels, or the mean)
    factors: Factorisation
    modelled: torch.Tensor  # [C', F, T] the factorisation's magnitude, the masks' denominator
    logits: torch.Tensor  # [S + 1, K, blocks] gates (last row: rest), requires grad
    samples: int
    sample_rate: int  # Hz


def _relative(log_p: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-probabilities ``[N, blocks, S]`` of N parts relative to their mean part and block, over ``temperature``:
    ``(log p_nb(s) − log mean_mc p_mc(s)) / T``."""
    count = torch.tensor(float(log_p.shape[0] * log_p.shape[1]))
    return (log_p - torch.logsumexp(log_p.flatten(0, 1), dim=0) + torch.log(count)) / temperature


class NMFPrior(Prior):
    """Gated KL-NTF components (see module docstring)."""

    name = "nmf"

    def __init__(self, settings: NMFSettings) -> None:
        self.settings = settings
        self.learning_rate = settings.learning_rate
        self.complements = settings.step_complements
        self.max_stepped_sources = settings.step_max_sources

    def score_blocks(self, seconds: float) -> int:
        """One gate block per ``block_seconds`` of the chunk (at least one; one in all when 0)."""
        block = self.settings.block_seconds
        return max(1, round(seconds / block)) if block > 0 else 1

    def pitched_count(self, mix: torch.Tensor, sample_rate: int) -> int:
        """How many NTF spectra start as harmonic combs for ``mix`` ``[channels, samples]`` at ``sample_rate`` Hz:
        ``pitched_start`` (at most K), or with "auto" K × (1 − the mixture's percussive share), the rest left
        random for the drum hits (28–31 of 32 on bench-dev mixes without drums, 14–23 with)."""
        s = self.settings
        if s.pitched_start == "auto":
            return round(s.components * (1.0 - percussive_share(mix.mean(dim=0), sample_rate)))
        return min(s.pitched_start, s.components)

    def fit(self, mix: torch.Tensor, sample_rate: int, n_sources: int, seed: int = 0) -> NMFState:
        s = self.settings
        spec = stft(mix, s.n_fft, s.hop)
        factorised = spec if s.stereo else spec.mean(dim=0, keepdim=True)
        generator = torch.Generator().manual_seed(seed)
        magnitude = factorised.abs()
        pitched = self.pitched_count(mix, sample_rate)
        start = pitch_spectra(magnitude, sample_rate, s.n_fft, pitched) if pitched else None
        factors = kl_ntf(magnitude, s.components, s.nmf_iterations, generator, s.update_exponent, start)
        logits = torch.zeros(n_sources + 1, s.components, 1, device=mix.device)
        logits[-1] = s.rest_logit
        logits.requires_grad_(True)
        return NMFState(spec, factorised, factors, factors.model(), logits, mix.shape[-1], sample_rate)

    def components(self, state: NMFState) -> torch.Tensor:
        """Mono audio (channel mean) of every component alone ``[K, samples]``.

        Rendered a few components at a time: as many as fit :data:`_RENDER_BUDGET` bytes (a float32
        mask and a complex64 masked spectrum per bin of the factorised STFT).
        """
        s = self.settings
        spectra = state.factors.channel_spectra().permute(2, 0, 1)[..., None]  # [K, C', F, 1]
        activations = state.factors.activations[:, None, None, :]  # [K, 1, 1, T]
        batch = max(1, _RENDER_BUDGET // (12 * state.factorised.numel()))
        parts = []
        for start in range(0, len(spectra), batch):
            part = slice(start, start + batch)
            masks = spectra[part] * activations[part] / state.modelled
            parts.append(istft((masks * state.factorised).mean(dim=1), s.n_fft, s.hop, state.samples))
        return torch.cat(parts)

    def energies(self, state: NMFState, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Magnitude energy ``Σ_cft M_kc |X_c| w`` of every component in the mixture -> ``[..., K]``.

        Args:
            weights: optional ``[..., C', F, T]`` weighting (e.g. true stems' magnitudes, for an oracle).
        """
        ratio = state.factorised.abs() / state.modelled  # [C', F, T]
        if weights is not None:
            ratio = ratio * weights
        f = state.factors
        return (torch.matmul(f.channel_spectra().transpose(1, 2), ratio) * f.activations).sum(dim=(-3, -1))

    def warm_start(self, state: NMFState, score: SourceScorer, bias: torch.Tensor | None = None,
                   trust: torch.Tensor | None = None, percussive: torch.Tensor | None = None) -> None:
        """Share components competitively by how each one is tagged, then by what a source's components share.

        The tag logits ``g[s, k, b]`` of component k in time block b come from
        :meth:`tag_evidence` (components heard over the mixture ``context_gain`` down, and ``groups``
        groups of components that sit and sound alike, :mod:`.grouping`); the rest row is
        ``settings.rest_logit`` (default −2), so a component that sounds much less like every steered
        source than an average component (in an average block) goes mostly to the residual. Then
        :func:`.consistency.refine_by_cues` pulls each source's components together (:meth:`cues`):
        towards one direction (:func:`.panning.spatial_cue`, ``spatial_*`` settings), one register,
        one spectral envelope and one harmonic profile (:func:`.timbre.timbre_cues`,
        ``register_weight``, ``envelope_weight``, ``harmonics_weight``). The gates become
        time-varying with as many blocks as the scorer returns. ``bias[s]`` is added to source s's tag
        logits; ``trust[s]`` scales source s's cue terms. A ``percussive`` source (a drum kit) also gets
        ``transient_weight`` × each component's transience (:func:`.transients.transience`) added to its
        tag logits: drum hits are what the offline taggers hear least as drums on their own.
        """
        s = self.settings
        f = state.factors
        with torch.no_grad():
            cues = self.cues(state)
            energies = self.energies(state)
            evidence = self.tag_evidence(state, score, group_components(cues, energies, s.groups))  # [K, blocks, S]
            logits = torch.full((state.logits.shape[0], *evidence.shape[:2]), s.rest_logit, device=evidence.device)
            logits[:-1] = evidence.permute(2, 0, 1)
            if bias is not None:
                logits[:-1] += bias.to(logits.device)[:, None, None]
            if percussive is not None and percussive.any() and s.transient_weight > 0:
                burst = transience(f.activations, state.sample_rate, s.hop).to(logits.device)
                logits[:-1][percussive.to(logits.device)] += s.transient_weight * burst[:, None]
            logits = refine_by_cues(logits, cues, energies, s.spatial_rounds, trust)
            state.logits = logits.requires_grad_(True)

    def cues(self, state: NMFState) -> list[Cue]:
        """The consistency cues of the chunk's components (those of weight > 0): direction
        (:func:`.panning.spatial_cue`), register, envelope and harmonics (:func:`.timbre.timbre_cues`)."""
        s, f = self.settings, state.factors
        return [*spatial_cue(f.gains, s.spatial_weight, s.spatial_min_spread_degrees),
                *timbre_cues(f.spectra, state.sample_rate, s.n_fft, s.register_weight, s.envelope_weight,
                             s.harmonics_weight)]

    def tag_evidence(self, state: NMFState, score: SourceScorer, groups: torch.Tensor | None = None) -> torch.Tensor:
        """How much each component sounds like each source, as share-out logits ``[K, blocks, S]``.

        ``isolated`` (``settings.evidence``): component k is tagged over the chunk's mixture at
        ``context_gain`` (default 0.1, 20 dB down; 0: alone): the taggers were trained on whole mixes,
        and a fragment heard in the music it belongs to sounds more like its instrument than on its
        own; its evidence is relative to the average component: ``(log p_kb(s) − log mean_jc
        p_jc(s)) / T`` (T = ``temperature``). ``occlusion``: the mixture is tagged without component
        k, and the drop ``log p_b(s | mix) − log p_b(s | mix − k)`` is standardised per source over
        components and blocks (a tagger hears a component in the context it was trained on, but a
        source spread over many components barely misses one). ``both``: the sum. In each tagger
        window, the quietest components holding less than ``quiet_share`` of its energy (their own,
        not with the context) are not tagged (neutral evidence there).

        Args:
            groups: optional group number of every component ``[K]`` (:mod:`.grouping`): each group's
                sum is tagged too, and ``group_weight`` × its relative evidence (as for isolated
                components, over groups) is added to each of its components.
        """
        s = self.settings
        parts = self.components(state)  # [K, samples]
        evidence = 0
        mixture = parts.sum(dim=0, keepdim=True)
        if s.evidence != "occlusion":
            context = s.context_gain * mixture[0] if s.context_gain > 0 else None
            evidence += _relative(score(parts, s.quiet_share, context), s.temperature)
        if s.evidence != "isolated":
            log_p = score(torch.cat([mixture, mixture - parts]), 0.0)
            drop = log_p[:1] - log_p[1:]
            evidence += (drop - drop.mean(dim=(0, 1))) / drop.std(dim=(0, 1)).clamp_min(_EPS)
        if groups is not None:
            sums = parts.new_zeros(s.groups, parts.shape[-1]).index_add_(0, groups, parts)  # [G, samples]
            evidence += s.group_weight * _relative(score(sums, 0.0), s.temperature)[groups]
        return evidence

    def parameters(self, state: NMFState) -> list[torch.Tensor]:
        return [state.logits]

    def masks(self, state: NMFState) -> torch.Tensor:
        """Source masks ``[S, C', F, T]`` (C' = channels factorised), in [0, 1], summing to at most one.

        Block gates are interpolated linearly to STFT frames (block centres evenly spread).
        """
        return self.masks_for(state, shares(state.logits)[:-1])

    def masks_for(self, state: NMFState, share: torch.Tensor) -> torch.Tensor:
        """Masks ``[S, C', F, T]`` giving source s the share ``share[s, k, block]`` of component k."""
        return state.factors.mask_numerator(stretch(share, state.spec.shape[-1])) / state.modelled

    def estimates(self, state: NMFState) -> torch.Tensor:
        s = self.settings
        return istft((self.masks(state) * state.factorised).mean(dim=1), s.n_fft, s.hop, state.samples)

    def stems(self, state: NMFState) -> torch.Tensor:
        s = self.settings
        with torch.no_grad():
            return istft(self.masks(state) * state.spec, s.n_fft, s.hop, state.samples)
