"""What the NMF prior's tests share: the opening seconds of bench-dev d02 with its true stems, channel
gains of components at given pan angles, and a two-"source" scorer by the weight-free low-band share."""

from __future__ import annotations

import math
from pathlib import Path

import soundfile as sf
import torch

from tagbox_pipeline.taggers.registry import get_tagger

#: d02's sample rate, Hz
RATE = 44100


def d02_opening(shared: Path, seconds: float) -> dict[str, torch.Tensor]:
    """The first ``seconds`` s of d02's mixture, flute, guitar and bass, each ``[2, samples]`` float32."""
    folder = shared / "data" / "bench-dev" / "d02"
    read = lambda name: torch.from_numpy(sf.read(folder / f"{name}.flac", dtype="float32",
                                                 frames=int(seconds * RATE))[0].T.copy())
    return {name: read(name) for name in ("mixture", "flute", "guitar", "bass")}


def stereo_gains(angles_degrees: list[float]) -> torch.Tensor:
    """Channel gains ``[2, K]`` of components panned at the given angles (0 = left, 90 = right)."""
    radians = torch.tensor(angles_degrees, dtype=torch.float32) * math.pi / 180
    return torch.stack([torch.cos(radians), torch.sin(radians)])


def low_or_not(audio: torch.Tensor, skip: float = 0.0, context: torch.Tensor | None = None) -> torch.Tensor:
    """A :class:`~tagbox_pipeline.priors.base.SourceScorer` of two "sources" for ``[B, samples]`` at
    :data:`RATE` (each row heard over ``context`` when given): the weight-free low-band share, and the rest
    (it tags every part: no skip) -> ``[B, 1, 2]``."""
    heard = audio if context is None else audio + context
    low = get_tagger("spectral", "cpu").taggram(heard, RATE).mean(1, keepdim=True)
    return torch.log(torch.cat([low, 1 - low], dim=2).clamp_min(1e-6))
