"""Steering: move a prior's parameters until each estimate is tagged as its source.

Knows nothing about files or Prefect: one chunk of audio in, one stem per source out. All
requested sources of a chunk are handled in one batched pass, because their masks compete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import Settings
from .objective import SourceTags, multi_hot_bce, source_probabilities, tag_nll
from .priors.base import Prior
from .priors.nmf import NMFPrior
from .rivals import find_rivals, none_named, rival_offsets
from .taggers.base import Tagger
from .taggers.registry import get_tagger, weights_digest
from .taggers.registry import info as tagger_info
from .taggers.vocabulary import resolve_source

_log = logging.getLogger(__name__)

#: below this RMS (float samples) a chunk is treated as digital silence and not steered
SILENCE_RMS = 1e-6


@dataclass
class Models:
    """Everything loaded once per run: the taggers, the prior and the device they run on.

    ``only`` restricts the per-source extra taggers (``Settings.source_taggers``) to their sources;
    ``skipped`` names extra taggers left out because their weights are not installed, with why.
    """

    taggers: list[Tagger]
    prior: Prior
    device: str
    only: dict[str, set[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def weights_sha256(self) -> dict[str, str]:
        """sha256 of every weights file in use, by tagger / prior name."""
        return {**{t.name: weights_digest(t.name) for t in self.taggers}, **self.prior.weights_sha256()}

    def describe(self) -> dict[str, Any]:
        """Names of the prior and taggers, for manifests."""
        described = {"prior": self.prior.name, "taggers": [t.name for t in self.taggers if t.name not in self.only],
                     "device": self.device}
        if self.only:
            described["source_taggers"] = {name: sorted(sources) for name, sources in self.only.items()}
        if self.skipped:
            described["skipped_taggers"] = dict(self.skipped)
        return described


@dataclass
class ChunkResult:
    """Stems of one chunk ``[S, channels, samples]`` and a report per source (p_tag, tags, seconds, steps...)."""

    stems: torch.Tensor
    report: dict[str, dict[str, Any]] = field(default_factory=dict)


def _jukebox(settings: Settings, device: str) -> Prior:
    from .priors.jukebox import JukeboxPrior  # loads the VQ-VAE weights, see ``[jukebox]``

    return JukeboxPrior.load(settings.jukebox, device)


#: ``settings.prior`` → how to build that prior on a device
PRIORS: dict[str, Callable[[Settings, str], Prior]] = {
    "nmf": lambda settings, device: NMFPrior(settings.nmf),
    "jukebox": _jukebox,
}


def build_prior(settings: Settings, device: str) -> Prior:
    """The prior named by ``settings.prior`` (see :data:`PRIORS`)."""
    return PRIORS[settings.prior](settings, device)


def load_models(settings: Settings, device: str = "cpu") -> Models:
    """Load the taggers and the prior named in ``settings`` onto ``device``.

    The per-source extra taggers of ``settings.source_taggers`` are optional: one whose weights are
    not installed is skipped (logged, and named in the manifest) and its sources are scored by the
    general taggers alone.
    """
    taggers = [get_tagger(name, device) for name in settings.taggers]
    only: dict[str, set[str]] = {}
    skipped: dict[str, str] = {}
    for source, names in settings.source_taggers.items():
        for name in names:
            if name in settings.taggers:
                continue
            if not tagger_info(name).weights_present:
                skipped[name] = f"weights not installed (`{tagger_info(name).fetch_command}`); {source} scored without it"
                _log.warning("tagbox: %s: %s", name, skipped[name])
                continue
            if name not in only:
                taggers.append(get_tagger(name, device))
            only.setdefault(name, set()).add(resolve_source(source).name)
    return Models(taggers, build_prior(settings, device), device, only, skipped)


def steering_step(prior: Prior, state: Any, mono: torch.Tensor, sample_rate: int, taggers: list[Tagger],
                  source_tags: SourceTags, scored: int | None = None) -> Callable[[], None]:
    """One Adam step on the prior's parameters per call: the body of the steering loop.

    The loss is a sum of one term per tagged row (an estimate, or for the two-sided loss with
    ``prior.complements`` also the mixture without it), so it is backpropagated through the taggers
    one row at a time (:func:`backward_by_row`): the taggers' activations of only one row are held at once.

    Args:
        state: the prior's fitted (and warm-started) state of the chunk.
        mono: the chunk's mono downmix ``[samples]`` at ``sample_rate`` Hz (the complement of each
            estimate is ``mono - estimate`` for the two-sided loss).
        scored: how many of the leading sources the two-sided loss scores (default: all); the others
            (rivals) still move, through their competition with the scored ones.
    """
    optimiser = torch.optim.Adam(prior.parameters(state), lr=prior.learning_rate)
    count = len(source_tags.sources) if scored is None else scored

    def two_sided(row: torch.Tensor, r: int) -> torch.Tensor:
        p = source_probabilities(row, sample_rate, taggers, source_tags)[0, 0, r % count]
        return tag_nll(p, heard=r < count)

    def multi_hot(row: torch.Tensor, r: int) -> torch.Tensor:
        return multi_hot_bce(row, sample_rate, taggers, source_tags, [r])

    def step() -> None:
        estimates = prior.estimates(state)
        optimiser.zero_grad()
        if prior.loss == "multi-hot":
            backward_by_row(estimates, multi_hot)
        else:
            estimates = estimates[:count]
            backward_by_row(torch.cat([estimates, mono - estimates]) if prior.complements else estimates,
                            two_sided)
        optimiser.step()

    return step


def backward_by_row(rows: torch.Tensor, row_loss: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Backpropagate ``sum(row_loss(rows[r:r+1], r))`` into whatever ``rows`` ``[R, samples]`` came from,
    one row's loss graph at a time (the gradient is the same as one backward pass of the sum)."""
    held = rows.detach().requires_grad_(True)
    for r in range(len(rows)):
        loss = row_loss(held[r:r + 1], r)
        if loss.requires_grad:  # (a row no tagger scores adds nothing)
            loss.backward()
    if held.grad is not None:
        rows.backward(held.grad)


def separate_chunk(mix: torch.Tensor, sample_rate: int, sources: list[str], settings: Settings,
                   models: Models, seed: int) -> ChunkResult:
    """Separate one chunk.

    Args:
        mix: ``[channels, samples]`` float32 at ``sample_rate`` Hz.
        sources: requested source names (validated against the taggers' vocabularies).
        settings: ``steps`` Adam steps after the warm start (0 = warm start only; none for a request
            of more than ``prior.max_stepped_sources`` sources, see :meth:`Prior.steps_for`).
        seed: makes the result deterministic.

    The requested sources are steered against the chunk's rivals (:mod:`.rivals`), whose stems
    are left in the residual; each source's report names them with their p(instrument | mixture).

    Returns:
        stems ``[S, channels, samples]`` whose sum never exceeds the mixture (the rest is the residual),
        and a report per source: p_tag, tags, seconds, rivals and the steps run.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    taggers, prior = models.taggers, models.prior
    mix = mix.to(models.device, torch.float32)
    if mix.pow(2).mean().sqrt() < SILENCE_RMS:  # (with the candidates: a source no tagger names is no error here)
        tag_names = SourceTags.build([*sources, *settings.rivals.candidates], taggers, models.only).tag_names(taggers)
        stems = torch.zeros(len(sources), *mix.shape)
        report = {s: {"p_tag": None, "tags": tag_names[s], "seconds": time.perf_counter() - started, "steps": 0}
                  for s in sources}
        return ChunkResult(stems, report)
    rivals = find_rivals(mix.mean(dim=0), sample_rate, sources, taggers, models.only, settings.rivals)
    steered = [*sources, *rivals]
    source_tags = SourceTags.build(steered, taggers, models.only)
    tag_names = source_tags.tag_names(taggers)

    def probabilities(audio: torch.Tensor) -> torch.Tensor:
        return source_probabilities(audio, sample_rate, taggers, source_tags)[:, 0]

    blocks = prior.score_blocks(mix.shape[-1] / sample_rate)
    state = prior.fit(mix, sample_rate, len(steered), seed)
    unnamed = none_named(source_tags, len(sources))
    bias = torch.tensor([0.0] * len(sources) + rival_offsets(rivals, unnamed, settings.rivals))
    trust = torch.tensor([1.0] * len(sources) + [settings.rivals.cue_trust] * len(rivals))
    percussive = torch.tensor([source.percussive for source in source_tags.sources])

    def log_probabilities(audio: torch.Tensor, skip: float = 0.0, context: torch.Tensor | None = None) -> torch.Tensor:
        return torch.log(source_probabilities(audio, sample_rate, taggers, source_tags, blocks, skip,
                                              context).clamp_min(1e-6))

    prior.warm_start(state, log_probabilities, bias, trust, percussive)
    steps = prior.steps_for(settings.steps, len(sources))
    # (checked before building the optimiser: its first construction imports torch's compiler stack, about 2 s)
    if steps:
        scored = None if settings.rivals.in_loss else len(sources)
        step = steering_step(prior, state, mix.mean(dim=0), sample_rate, taggers, source_tags, scored)
        for _ in range(steps):
            step()
    diagonal = torch.arange(len(sources))
    estimates, stems = prior.final(state)
    with torch.no_grad():
        final = probabilities(estimates[:len(sources)])[diagonal, diagonal]
    stems = stems[:len(sources)].float().cpu()  # the rivals' share stays in the residual
    seconds = time.perf_counter() - started
    report = {s: {"p_tag": float(final[i]), "tags": tag_names[s], "seconds": seconds, "rivals": rivals,
                  "steps": steps} for i, s in enumerate(sources)}
    return ChunkResult(stems, report)
