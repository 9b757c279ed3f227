"""``--sources auto``: the instruments a track holds, found by the taggers before it is separated.

Every chunk's mono downmix (its whole read region, at the input rate) is tagged for the candidate
instruments of ``[rivals] candidates``; an instrument's evidence is its highest p(instrument | chunk
mixture) over the track's chunks (an instrument may play in part of a song only); a drum kit's is the
chunk mixture's percussive share where that is higher and at least ``[rivals] percussive_share``
(:mod:`.percussive`: the offline taggers hardly hear drums in a full mix). Those with
evidence ≥ ``[detection] threshold`` get a stem, the ``max_sources`` most probable, in that order.
Mixture-level tags are all there is to go on: an instrument no tagger names (organ with the offline
taggers) is never detected and stays in the residual, and a loud instrument can mask a quiet one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .audio_io import SampleReader
from .chunking import Chunk
from .config import Settings
from .errors import UserError
from .objective import SourceTags
from .rivals import candidates_for, heard
from .taggers.base import Tagger


def detect_sources(reader: SampleReader, chunks: Sequence[Chunk], sample_rate: int, taggers: list[Tagger],
                   only: dict[str, set[str]], settings: Settings) -> dict[str, float]:
    """Instruments detected in a track -> their evidence (p in the chunk where it is highest), most probable first.

    Args:
        reader: the track's samples; ``chunks`` its chunk plan; ``sample_rate`` in Hz.

    Raises:
        UserError: when no candidate reaches the threshold (the caller names the file).
    """
    names = candidates_for([], settings.rivals.candidates, taggers, only)
    tags = SourceTags.build(names, taggers, only)
    evidence: dict[str, float] = {}
    for chunk in chunks:
        mono = torch.from_numpy(reader.read(chunk.read_start, chunk.read_stop)).mean(dim=0)
        for p, name in heard(mono, sample_rate, names, taggers, tags, settings.rivals.percussive_share):
            evidence[name] = max(p, evidence.get(name, 0.0))
    ranked = sorted(((p, name) for name, p in evidence.items()), reverse=True)
    found = {name: round(p, 4) for p, name in ranked if p >= settings.detection.threshold}
    if not found:
        best = ", ".join(f"{name} {p:.2f}" for p, name in ranked[:3])
        raise UserError(f"--sources auto: no instrument detected with p ≥ {settings.detection.threshold} "
                        f"(most probable: {best}); name the sources instead")
    return dict(list(found.items())[:settings.detection.max_sources])