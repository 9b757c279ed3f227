"""The Jukebox 5b VQ-VAE as frozen PyTorch modules, written from the architecture description.

Three levels with hops of 8, 32 and 128 samples at 44.1 kHz. Every level has its own encoder (raw
audio -> 64-dim latents) and its own decoder (latents -> raw audio); no weights are shared between
levels. Module names reproduce the official state-dict keys exactly (``encoders.L.level_blocks.l
.model.i.j``, ``decoders.L.out``, ``bottleneck.level_blocks.L.k``), so the official file loads
without renaming. Audio is ``[batch, samples]`` here (mono); latents are ``[batch, 64, frames]``.

The model has no training mode: :meth:`JukeboxVQVAE.train` always stays in eval mode, parameters
never require gradients and the codebooks are buffers that no method writes to.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .quantiser import dequantise, nearest_codes


@dataclass(frozen=True)
class VQVAEConfig:
    """Hyper-parameters of the 5b VQ-VAE (the same file serves 5b, 5b_lyrics and 1b_lyrics).

    Attributes:
        downs_t: stride-2 stages per level block (level hop = 2 ** sum(downs_t[:L + 1])).
        width: channels of the residual stacks before the per-level multiplier.
        depth: residual units per stack before the per-level multiplier.
        multipliers: per-level factor applied to both width and depth.
        emb_width: latent (codebook vector) size.
        codes: codebook entries per level.
        dilation_growth: unit d of a stack dilates by ``dilation_growth ** d``.
        sample_rate: audio rate in Hz.
    """

    downs_t: tuple[int, ...] = (3, 2, 2)
    width: int = 32
    depth: int = 4
    multipliers: tuple[int, ...] = (2, 1, 1)
    emb_width: int = 64
    codes: int = 2048
    dilation_growth: int = 3
    sample_rate: int = 44100

    @property
    def levels(self) -> int:
        """Number of levels (3)."""
        return len(self.downs_t)

    def hop(self, level: int) -> int:
        """Samples per latent frame at ``level`` (8, 32, 128)."""
        return 2 ** sum(self.downs_t[: level + 1])

    def level_width(self, level: int) -> int:
        """Residual-stack channels of ``level``'s encoder and decoder (64, 32, 32)."""
        return self.width * self.multipliers[level]

    def level_depth(self, level: int) -> int:
        """Residual units per stack of ``level``'s encoder and decoder (8, 4, 4)."""
        return self.depth * self.multipliers[level]


class ResidualUnit(nn.Module):
    """``h + Conv1x1(ReLU(Conv_k3,dilated(ReLU(h))))``, both convs width -> width.

    ``model`` indices 1 and 3 hold the convs so the state-dict keys match the official layout.
    """

    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.ReLU(), nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation),
                                   nn.ReLU(), nn.Conv1d(width, width, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.model(h)


class ResidualStack(nn.Module):
    """``depth`` residual units with dilations 1, 3, 9, ... (largest first when ``reverse``)."""

    def __init__(self, width: int, depth: int, growth: int, reverse: bool) -> None:
        super().__init__()
        dilations = [growth ** d for d in range(depth)]
        self.model = nn.Sequential(*(ResidualUnit(width, d) for d in (dilations[::-1] if reverse else dilations)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.model(h)


class EncoderBlock(nn.Module):
    """``stages`` × [Conv1d(k4, stride 2) -> residual stack], then Conv1d(k3) width -> emb_width."""

    def __init__(self, channels_in: int, width: int, depth: int, stages: int, config: VQVAEConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv1d(channels_in if i == 0 else width, width, 4, stride=2, padding=1),
                          ResidualStack(width, depth, config.dilation_growth, reverse=False))
            for i in range(stages)]
        layers.append(nn.Conv1d(width, config.emb_width, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DecoderBlock(nn.Module):
    """Conv1d(k3) emb_width -> width, then ``stages`` × [residual stack (reversed) -> ConvTranspose1d(k4,
    stride 2)], the last transpose conv going back to emb_width."""

    def __init__(self, width: int, depth: int, stages: int, config: VQVAEConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(config.emb_width, width, 3, padding=1)]
        for i in range(stages):
            out = config.emb_width if i == stages - 1 else width
            layers.append(nn.Sequential(ResidualStack(width, depth, config.dilation_growth, reverse=True),
                                        nn.ConvTranspose1d(width, out, 4, stride=2, padding=1)))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Encoder(nn.Module):
    """Level L's encoder: blocks 0 … L in sequence, ``[B, 1, T]`` audio -> ``[B, 64, T / hop_L]`` latents."""

    def __init__(self, level: int, config: VQVAEConfig) -> None:
        super().__init__()
        width, depth = config.level_width(level), config.level_depth(level)
        self.level_blocks = nn.ModuleList(
            EncoderBlock(1 if block == 0 else config.emb_width, width, depth, config.downs_t[block], config)
            for block in range(level + 1))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        for block in self.level_blocks:
            audio = block(audio)
        return audio


class Decoder(nn.Module):
    """Level L's decoder: blocks L … 0 (coarsest first), then ``out`` Conv1d(k3) 64 -> 1."""

    def __init__(self, level: int, config: VQVAEConfig) -> None:
        super().__init__()
        width, depth = config.level_width(level), config.level_depth(level)
        self.level_blocks = nn.ModuleList(DecoderBlock(width, depth, config.downs_t[block], config)
                                          for block in range(level + 1))
        self.out = nn.Conv1d(config.emb_width, 1, 3, padding=1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        for block in reversed(self.level_blocks):
            latents = block(latents)
        return self.out(latents)


class Codebook(nn.Module):
    """One level's codebook ``k`` ``[codes, emb_width]``, a buffer (in the state dict, never trained)."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.register_buffer("k", torch.zeros(config.codes, config.emb_width))


class Bottleneck(nn.Module):
    """The codebooks of all levels (``bottleneck.level_blocks.L.k``)."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.level_blocks = nn.ModuleList(Codebook(config) for _ in range(config.levels))


class JukeboxVQVAE(nn.Module):
    """The frozen VQ-VAE: encode audio to latents or codes, decode latents or codes to audio, per level.

    Args:
        config: hyper-parameters (default: the released 5b VQ-VAE).
    """

    def __init__(self, config: VQVAEConfig = VQVAEConfig()) -> None:
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleList(Encoder(level, config) for level in range(config.levels))
        self.decoders = nn.ModuleList(Decoder(level, config) for level in range(config.levels))
        self.bottleneck = Bottleneck(config)
        self.freeze()

    def freeze(self) -> "JukeboxVQVAE":
        """Eval mode and ``requires_grad=False`` on every parameter (called on construction)."""
        super().train(False)
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "JukeboxVQVAE":
        """The VQ-VAE never enters training mode (the original's training forward rewrites its codebooks)."""
        return super().train(False)

    def codebook(self, level: int) -> torch.Tensor:
        """``[codes, emb_width]`` codebook of ``level`` (a buffer; do not modify)."""
        return self.bottleneck.level_blocks[level].k

    def latents(self, audio: torch.Tensor, level: int) -> torch.Tensor:
        """Pre-quantisation latents ``[B, 64, T // hop]`` of ``[B, T]`` audio at 44.1 kHz (T ≥ hop)."""
        return self.encoders[level](audio[:, None, :])

    def encode(self, audio: torch.Tensor, level: int) -> torch.Tensor:
        """Codes ``[B, T // hop]`` (int64) of ``[B, T]`` audio at ``level``."""
        return nearest_codes(self.latents(audio, level), self.codebook(level))

    def decode_latents(self, latents: torch.Tensor, level: int) -> torch.Tensor:
        """Audio ``[B, frames * hop]`` from (quantised or not) latents ``[B, 64, frames]`` at ``level``."""
        return self.decoders[level](latents)[:, 0, :]

    def decode(self, codes: torch.Tensor, level: int) -> torch.Tensor:
        """Audio ``[B, frames * hop]`` from codes ``[B, frames]`` at ``level``."""
        return self.decode_latents(dequantise(codes, self.codebook(level)), level)
