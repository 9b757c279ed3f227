"""Bench conditions: the bench-dev clips as rendered, remixed like a studio mix, and folded to mono.

The rendered clips spread every instrument to its own wide pan position, which flatters any
spatial cue. The two derived sets (issue 12) are what users' mixes look like:

- ``studio``: each true stem folded to mono (channel mean) and panned with constant-power gains
  (angle ``(pan + 1)·π/4``, both gains × √2): bass, drums, choir and vocals at the centre; of the
  other sources (in manifest order) the first at +0.1 unless a choir or vocals is present, the rest at
  −0.35, +0.35, −0.2, +0.2. Every source except bass and drums gets a send of 0.25 × a shared
  pedalboard ``Reverb`` of its panned signal, added to its own stem, so the mixture stays the exact
  sum of the stems. All stems × 0.7.
- ``mono``: each stem folded to mono on both channels, × 0.7.

Derived in memory from the rendered files (nothing is written).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from pedalboard import Reverb

from .separation import Clip

#: sources mixed at the centre of a studio mix
CENTRE = ("bass", "drums", "choir", "vocals")
#: lead voices: when one is present, no other source takes the near-centre slot
LEAD_VOICES = ("choir", "vocals")
#: sources that get no reverb send
DRY = ("bass", "drums")
#: pans of the non-centre sources in manifest order (after the near-centre slot)
SIDE_PANS = (-0.35, 0.35, -0.2, 0.2)
NEAR_CENTRE_PAN = 0.1
REVERB_SEND = 0.25
STEM_GAIN = 0.7


def studio_pans(sources: list[str]) -> dict[str, float]:
    """Pan position (−1 left … +1 right) of every source of a clip in the studio remix.

    Raises:
        ValueError: when a clip has more side sources than there are side pan positions.
    """
    side = [s for s in sources if s not in CENTRE]
    slots = list(SIDE_PANS) if any(s in LEAD_VOICES for s in sources) else [NEAR_CENTRE_PAN, *SIDE_PANS]
    if len(side) > len(slots):
        raise ValueError(f"{len(side)} side sources, only {len(slots)} pan positions")
    pans = dict(zip(side, slots))
    return {s: pans.get(s, 0.0) for s in sources}


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power stereo ``[2, samples]`` of a 1-D signal; at the centre both gains are 1."""
    angle = (position + 1) * math.pi / 4
    return np.stack([math.cos(angle) * mono, math.sin(angle) * mono]) * math.sqrt(2)


def studio(clip: Clip) -> Clip:
    """The studio remix of a clip (see module docstring)."""
    reverb = Reverb(room_size=0.6, damping=0.5, wet_level=1.0, dry_level=0.0, width=1.0)
    stems = {}
    for source, position in studio_pans(clip.sources).items():
        panned = pan(clip.stems[source].mean(axis=0), position).astype(np.float32)
        if source not in DRY:
            panned = panned + REVERB_SEND * reverb(panned, clip.sample_rate, reset=True)
        stems[source] = (STEM_GAIN * panned).astype(np.float32)
    return _from_stems(clip, stems)


def mono_fold(clip: Clip) -> Clip:
    """Every stem folded to mono on both channels, × 0.7."""
    stems = {s: np.repeat(STEM_GAIN * x.mean(axis=0, keepdims=True), 2, axis=0).astype(np.float32)
             for s, x in clip.stems.items()}
    return _from_stems(clip, stems)


def _from_stems(clip: Clip, stems: dict[str, np.ndarray]) -> Clip:
    mixture = np.sum(list(stems.values()), axis=0, dtype=np.float64).astype(np.float32)
    return Clip(clip.id, clip.sample_rate, mixture, stems)


#: set variant name -> how a rendered clip becomes that variant
VARIANTS: dict[str, Callable[[Clip], Clip]] = {
    "rendered": lambda clip: clip,
    "studio": studio,
    "mono": mono_fold,
}
