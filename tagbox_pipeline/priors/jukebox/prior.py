"""The Jukebox prior: steer VQ-VAE latents, one latent set per requested source, all in one batch.

Per chunk (:meth:`JukeboxPrior.fit`): the mono downmix (channel mean, optionally peak-normalised) is
resampled to 44.1 kHz and encoded to continuous pre-quantisation latents at the steered level(s);
every source starts from a copy. Per step (:meth:`JukeboxPrior.estimates`): our straight-through
quantiser, the steered level's decoder (only that one), and ratio masks ``|G| / max(|X|, |G|)`` of
the decoded audio G against the mixture X at each FFT size; the masks compete (where the sources'
masks add up to more than one they are scaled to sum to one; the rest is the residual), are applied
to the mixture's STFT and the masked signals are averaged over the FFT sizes. The mixture's STFTs and
the resampling kernels are computed once per chunk, not per step. :meth:`JukeboxPrior.stems` applies
the final masks to every channel of the real mixture at its own rate.

``reference_faithful`` reproduces the seed implementation's choices instead: mono, peak-normalised
44.1 kHz; the "mixture" being masked is the VQ-VAE's own level-0 reconstruction of it; masks do not
compete; hop n_fft / 2; the final stems are the last FFT size's (512) mask applied to that
reconstruction (mono, copied to every channel). What it does *not* reproduce is the seed's bug: it
put the VQ-VAE's bottleneck in training mode to get gradients through the quantiser, and in that mode
every forward call re-initialised (first call) and then EMA-updated and "revived" the codebooks from
the song being separated — so the model drifted during steering, away from the released weights.
Here the codebooks are buffers that nothing writes to, and the straight-through step is our own.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import julius
import torch

from ...config import JukeboxSettings
from ...stft import istft, ratio_mask, stft
from ...files import sha256_file
from ..base import Prior
from .checkpoint import VQVAE_SPEC, load_vqvae, resolve_weights
from .quantiser import nearest_codes, straight_through
from .vqvae import JukeboxVQVAE

#: printed once per process when the Jukebox prior is built
LICENCE_NOTICE = ("tagbox: note: the Jukebox VQ-VAE weights are under OpenAI's Noncommercial Use License, which "
                  "also covers what they create: stems made with --prior jukebox may not be used commercially.")
_notice_shown = False

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: the FFT size whose mask the seed applied at the end (the last of its list 2048, 1024, 512)
_FAITHFUL_FINAL_FFT = 512


@dataclass
class JukeboxState:
    """Per-chunk state. "Reference" is the signal the masks apply to and its rate (see module doc)."""

    latents: list[torch.Tensor]  # per steered level: [S, 64, frames], leaf, requires grad
    mix: torch.Tensor  # [channels, samples] the real chunk at its own rate
    sample_rate: int  # Hz, the chunk's own rate
    reference_rate: int  # Hz: the chunk's rate, or 44100 when reference-faithful
    reference_specs: dict[int, torch.Tensor]  # n_fft -> [F, T] complex STFT of the mono reference
    model_samples: int  # samples of the mono signal at 44.1 kHz before padding
    scale: float  # peak-normalisation factor applied before encoding (1.0 when off)
    to_model: torch.nn.Module  # resampler chunk rate -> 44.1 kHz (identity when equal)
    to_reference: torch.nn.Module  # resampler 44.1 kHz -> reference rate
    to_chunk: torch.nn.Module  # resampler reference rate -> chunk rate
    reference: torch.Tensor | None = None  # [samples] mono reference audio when reference-faithful
    channel_specs: dict[int, torch.Tensor] = field(default_factory=dict)  # n_fft -> [ch, F, T], made once by stems


def _resampler(old: int, new: int, device: torch.device) -> torch.nn.Module:
    """A differentiable resampler whose kernel is computed once (identity when the rates match)."""
    return torch.nn.Identity() if old == new else julius.ResampleFrac(old, new).to(device)


def _fit_length(audio: torch.Tensor, samples: int) -> torch.Tensor:
    """Trim or zero-pad the last axis to ``samples``."""
    if audio.shape[-1] >= samples:
        return audio[..., :samples]
    return torch.nn.functional.pad(audio, (0, samples - audio.shape[-1]))


class JukeboxPrior(Prior):
    """Steered Jukebox VQ-VAE latents (see module docstring).

    Args:
        model: the frozen VQ-VAE (its weights are never modified).
        settings: the ``[jukebox]`` settings section.
        weights_path: the file the weights came from (for :meth:`weights_sha256`).
    """

    name = "jukebox"

    def __init__(self, model: JukeboxVQVAE, settings: JukeboxSettings, weights_path: Path | None = None) -> None:
        self.model = model.freeze()
        self.settings = settings
        self.weights_path = weights_path
        self._sha256: str | None = None
        self.device = next(model.parameters()).device
        self.faithful = settings.reference_faithful
        self.learning_rate = settings.learning_rate
        self.loss = "multi-hot" if self.faithful else "two-sided"
        self.levels = [0] if self.faithful else sorted(set(settings.levels))
        self.fft_sizes = list(settings.fft_sizes)

    @classmethod
    def load(cls, settings: JukeboxSettings, device: str = "cpu") -> "JukeboxPrior":
        """Load the weights named by the settings (``--weights``, ``$TAGBOX_JUKEBOX_WEIGHTS``, or the
        cache) onto ``device``; print the non-commercial licence notice once per process."""
        global _notice_shown
        path = resolve_weights(settings.weights)
        prior = cls(load_vqvae(path, device), settings, path)
        if not _notice_shown:
            print(LICENCE_NOTICE, file=sys.stderr)
            _notice_shown = True
        return prior

    def weights_sha256(self) -> dict[str, str]:
        if self.weights_path is None:
            return {}
        if self._sha256 is None:
            self._sha256 = sha256_file(self.weights_path)
        return {VQVAE_SPEC.name: self._sha256}

    def _hop(self, n_fft: int) -> int:
        return n_fft // 2 if self.faithful else n_fft // 4

    def _autocast(self) -> torch.autocast:
        """Mixed precision for the decoder when asked for (CUDA: bf16/fp16; CPU: bf16 only)."""
        dtype = _AUTOCAST.get(self.settings.autocast)
        kind = self.device.type
        enabled = dtype is not None and (kind == "cuda" or dtype == torch.bfloat16)
        return torch.autocast(kind, dtype=dtype or torch.bfloat16, enabled=enabled)

    def fit(self, mix: torch.Tensor, sample_rate: int, n_sources: int, seed: int = 0) -> JukeboxState:
        rate = self.model.config.sample_rate
        mix = mix.to(self.device, torch.float32)
        peak = float(mix.mean(dim=0).abs().max())
        scale = 1.0 / peak if (self.faithful or self.settings.peak_normalise) and peak > 0 else 1.0
        to_model = _resampler(sample_rate, rate, self.device)
        reference_rate = rate if self.faithful else sample_rate
        with torch.no_grad():
            audio = to_model(mix.mean(dim=0) * scale)
            samples = audio.shape[-1]
            hop = max(self.model.config.hop(level) for level in self.levels)
            padded = _fit_length(audio, max(hop, -(-samples // hop) * hop))[None]
            reference = None
            if self.faithful:  # the seed masks the VQ-VAE's own reconstruction and encodes that
                padded = self.model.decode(self.model.encode(padded, 0), 0)
                reference = padded[0, :samples]
                mono = reference
            else:
                mono = mix.mean(dim=0)
            latents = [self.model.latents(padded, level).expand(n_sources, -1, -1).clone().requires_grad_(True)
                       for level in self.levels]
            specs = {n: stft(mono, n, self._hop(n)) for n in self.fft_sizes}
        return JukeboxState(latents, mix, sample_rate, reference_rate, specs, samples, scale, to_model,
                            _resampler(rate, reference_rate, self.device),
                            _resampler(reference_rate, sample_rate, self.device), reference)

    def parameters(self, state: JukeboxState) -> list[torch.Tensor]:
        return list(state.latents)

    def codes(self, state: JukeboxState) -> list[torch.Tensor]:
        """Current codes ``[S, frames]`` per steered level (what the latents quantise to)."""
        return [nearest_codes(lat, self.model.codebook(level)) for lat, level in zip(state.latents, self.levels)]

    def decoded(self, state: JukeboxState) -> torch.Tensor:
        """VQ-VAE audio G ``[S, samples]`` at the reference rate: straight-through quantised latents of every
        steered level decoded by that level's decoder alone, averaged over levels (peak scale undone
        unless reference-faithful, whose reference is the normalised reconstruction)."""
        with self._autocast():
            outputs = [self.model.decode_latents(straight_through(lat, self.model.codebook(level)), level)
                       for lat, level in zip(state.latents, self.levels)]
        audio = torch.stack(outputs).float().mean(dim=0)[:, : state.model_samples]
        if not self.faithful:  # compared with the real mixture, so back to its level
            audio = audio / state.scale
        return _fit_length(state.to_reference(audio), self._reference_length(state))

    def masks(self, state: JukeboxState, decoded: torch.Tensor) -> dict[int, torch.Tensor]:
        """Ratio masks ``[S, F, T]`` per FFT size; competitive (sum over sources ≤ 1) unless reference-faithful."""
        out = {}
        for n_fft, reference in state.reference_specs.items():
            mask = ratio_mask(stft(decoded, n_fft, self._hop(n_fft)).abs(), reference.abs())
            if not self.faithful:
                mask = mask / mask.sum(dim=0, keepdim=True).clamp_min(1.0)
            out[n_fft] = mask
        return out

    def _reference_length(self, state: JukeboxState) -> int:
        return state.model_samples if self.faithful else state.mix.shape[-1]

    def _masked_mean(self, masks: dict[int, torch.Tensor], specs: dict[int, torch.Tensor], length: int
                     ) -> torch.Tensor:
        """Mean over FFT sizes of ``istft(masks[n] * specs[n])``, ``length`` samples (shapes must broadcast)."""
        return torch.stack([istft(mask * specs[n], n, self._hop(n), length) for n, mask in masks.items()]).mean(dim=0)

    def estimates(self, state: JukeboxState) -> torch.Tensor:
        return self._estimates(state, self.masks(state, self.decoded(state)))

    def _estimates(self, state: JukeboxState, masks: dict[int, torch.Tensor]) -> torch.Tensor:
        masked = self._masked_mean(masks, state.reference_specs, self._reference_length(state))
        return _fit_length(state.to_chunk(masked), state.mix.shape[-1])

    def stems(self, state: JukeboxState) -> torch.Tensor:
        with torch.no_grad():
            return self._stems(state, self.masks(state, self.decoded(state)))

    def final(self, state: JukeboxState) -> tuple[torch.Tensor, torch.Tensor]:
        """Estimates and stems from one decode of the final latents."""
        with torch.no_grad():
            masks = self.masks(state, self.decoded(state))
            return self._estimates(state, masks), self._stems(state, masks)

    def _stems(self, state: JukeboxState, masks: dict[int, torch.Tensor]) -> torch.Tensor:
        if self.faithful:
            n = _FAITHFUL_FINAL_FFT if _FAITHFUL_FINAL_FFT in masks else self.fft_sizes[-1]
            mono = istft(masks[n] * state.reference_specs[n], n, self._hop(n), state.model_samples)
            mono = _fit_length(state.to_chunk(mono / state.scale), state.mix.shape[-1])
            return mono[:, None, :].expand(-1, state.mix.shape[0], -1).contiguous()
        if not state.channel_specs:
            state.channel_specs.update({n: stft(state.mix, n, self._hop(n)) for n in self.fft_sizes})
        return self._masked_mean({n: mask[:, None] for n, mask in masks.items()},
                                 {n: spec[None] for n, spec in state.channel_specs.items()}, state.mix.shape[-1])
