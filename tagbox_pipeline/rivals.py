"""Rivals: the other instruments a chunk holds besides the requested sources.

A source requested alone from a full mix otherwise competes only against the residual, which
takes what no source claims: every component that sounds a little like the source goes to it.
With rivals, the chunk's mixture is first tagged for a list of candidate instruments
(``[rivals] candidates``); those the taggers hear (p ≥ ``threshold``, the ``max_count`` most
probable) are steered beside the requested source. A drum kit, which the offline taggers hardly hear
in a full mix, is also heard when the percussive share of the mixture's energy reaches
``percussive_share`` (:mod:`.percussive`); that share is then its evidence. Rivals are steered
with ``logit_offset`` added to their share-out logits (they take what is clearly theirs), a faint
one (p < ``faint_below``) with ``faint_logit_offset`` (:func:`rival_offsets`), and their
stems go to the residual. A candidate that
shares a tag with a requested source (strings for cello, vocals for choir) is never its rival.
A requested source that no chosen tagger names (organ with the MagnaTagATune taggers) is scored
as the complement of the named ones, which the rivals now are: it receives what none of them
claims (so ``organ`` alone is separated instead of refused).

Rivals are looked for only when at most ``max_requested`` sources are requested (default one), or
when none of the requested ones has a tag: on bench-dev they raise a single source's SI-SDRi
(studio remix +0.8 dB on the tuning clips, +0.55 dB on the confirmation clips) but cost 0.2–0.5 dB
when every source of a clip is requested, since the mixture's tags then name instruments that are
not there (bench/results/quality.md).
"""

from __future__ import annotations

import torch

from .config import RivalSettings
from .objective import SourceTags, source_probabilities
from .percussive import percussive_share
from .taggers.base import Tagger


def candidates_for(requested: list[str], candidates: list[str], taggers: list[Tagger],
                   only: dict[str, set[str]]) -> list[str]:
    """The ``candidates`` some chosen tagger names and that share no tag with a requested source."""
    everything = SourceTags.build([*requested, *candidates], taggers, only)
    taken = [{(t, i) for t, per in enumerate(indices) for i in per} for indices in everything.indices]
    claimed = set().union(*taken[:len(requested)])
    return [name for name, tags in zip(candidates, taken[len(requested):])
            if tags and not tags & claimed and name not in requested]


def heard(mono: torch.Tensor, sample_rate: int, names: list[str], taggers: list[Tagger], tags: SourceTags,
          percussive_from: float = 1.0) -> list[tuple[float, str]]:
    """(evidence, name) of every one of ``names``, most probable first: p(instrument | mixture), and for a
    drum kit the mixture's percussive share instead where that is at least ``percussive_from`` and higher.

    Args:
        mono: a mixture ``[samples]`` at ``sample_rate`` Hz.
        tags: built for ``[*skipped, *names]``: the skipped sources in front (a requested source
            without a tag is scored as what the named ones leave) are scored but not returned.
        percussive_from: smallest percussive share (:func:`.percussive.percussive_share`) that counts
            (1: none, the tags alone; it is measured only when a drum kit is among ``names`` and this
            is below 1).
    """
    with torch.no_grad():
        p = source_probabilities(mono[None], sample_rate, taggers, tags)[0, 0, len(tags.sources) - len(names):]
    evidence = [float(v) for v in p]
    drum_kits = [i for i, src in enumerate(tags.sources[len(tags.sources) - len(names):]) if src.percussive]
    if drum_kits and percussive_from < 1.0:
        share = percussive_share(mono, sample_rate)
        if share >= percussive_from:
            for i in drum_kits:
                evidence[i] = max(evidence[i], share)
    return sorted(zip(evidence, names), reverse=True)


def none_named(tags: SourceTags, requested: int) -> bool:
    """Whether none of the ``requested`` leading sources of ``tags`` has a tag in any chosen tagger."""
    return not any(any(per) for per in tags.indices[:requested])


def rival_offsets(rivals: dict[str, float], unnamed: bool, settings: RivalSettings) -> list[float]:
    """The logit offset of every rival (in ``rivals``' order) in the warm start's share-out.

    A rival heard with p(instrument | mixture) ≥ ``faint_below`` gets ``logit_offset``; a fainter one
    gets ``faint_logit_offset`` (far below): the taggers barely hear it, or they hear the requested
    source as it (piano and bass in a harp), and at the usual offset it takes the request's own
    components. It still takes what sounds far more like it than like the request (a harp's rivals
    hold a violin's components). When no requested source has a tag (``unnamed``), the rivals define
    what it is (what they leave), and every one gets ``logit_offset``.
    """
    return [settings.logit_offset if unnamed or p >= settings.faint_below else settings.faint_logit_offset
            for p in rivals.values()]


def find_rivals(mono: torch.Tensor, sample_rate: int, requested: list[str], taggers: list[Tagger],
                only: dict[str, set[str]], settings: RivalSettings) -> dict[str, float]:
    """Rivals of ``requested`` in one chunk, with p(instrument | mixture) as their evidence.

    Args:
        mono: the chunk's mono downmix ``[samples]`` at ``sample_rate`` Hz.

    Returns:
        rival name -> probability, most probable first: those heard (p ≥ ``threshold``), and when no
        requested source has a tag, the ``unnamed_min`` most probable in any case (without a named
        source the requested ones would have nothing to be the complement of); at most
        ``max_count``; empty when disabled or when more than ``max_requested`` named sources are asked for.
    """
    if not settings.enabled or not settings.max_count:
        return {}
    names = candidates_for(requested, settings.candidates, taggers, only)
    if not names:
        return {}
    tags = SourceTags.build([*requested, *names], taggers, only)
    unnamed = none_named(tags, len(requested))
    if len(requested) > settings.max_requested and not unnamed:
        return {}
    ranked = heard(mono, sample_rate, names, taggers, tags, settings.percussive_share)[:settings.max_count]
    keep = settings.unnamed_min if unnamed else 0
    return {name: round(prob, 4) for i, (prob, name) in enumerate(ranked) if prob >= settings.threshold or i < keep}
