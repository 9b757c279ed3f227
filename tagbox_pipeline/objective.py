"""What the taggers say about candidate estimates: per-source probabilities and the steering loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .errors import UserError
from .taggers.base import Tagger, to_tagger_rate
from .taggers.vocabulary import Source, resolve_source, tag_indices
from .timeline import stretch


@dataclass
class SourceTags:
    """For each requested source, the output indices it reads in each tagger (empty = tagger skipped;
    empty for every tagger = the source is scored as the complement of the named ones)."""

    sources: list[Source]
    indices: list[list[list[int]]]  # [source][tagger] -> tag indices

    @classmethod
    def build(cls, names: list[str], taggers: list[Tagger], only: dict[str, set[str]] | None = None
              ) -> "SourceTags":
        """Resolve source names against the taggers' vocabularies.

        A source that no chosen tagger can name (e.g. organ with MagnaTagATune taggers) is scored
        as the complement of the named ones: ``p(s) = 1 − mean p(named sources)``, so it receives
        what they do not claim.

        Args:
            only: tagger name -> the canonical source names it may score (taggers not listed score
                every source they have tags for); see ``Settings.source_taggers``.

        Raises:
            UserError: when no requested source has a tag in any chosen tagger.
        """
        sources = [resolve_source(name) for name in names]
        only = only or {}
        indices = [[tag_indices(src, t.tags, t.dataset) if src.name in only.get(t.name, {src.name}) else []
                    for t in taggers] for src in sources]
        if not any(any(per_tagger) for per_tagger in indices):
            have = ", ".join(f"{t.name} ({t.dataset})" for t in taggers)
            raise UserError(f"no chosen tagger has a tag for any of the sources {', '.join(names)} "
                            f"(taggers: {have}); add a tagger whose vocabulary describes them with --taggers")
        return cls(sources, indices)

    def uses(self, tagger: int, sources: list[int] | None = None) -> bool:
        """Whether tagger number ``tagger`` scores any requested source, or any of the source numbers
        ``sources`` (if not, it need not run)."""
        return any(self.indices[s][tagger] for s in (range(len(self.indices)) if sources is None else sources))

    def tag_names(self, taggers: list[Tagger]) -> dict[str, list[str]]:
        """The tags used per source, as ``tagger:tag`` strings."""
        return {src.name: [f"{t.name}:{t.tags[i]}" for t, idx in zip(taggers, per) for i in idx]
                for src, per in zip(self.sources, self.indices)}


def source_probabilities(audio: torch.Tensor, sample_rate: int, taggers: list[Tagger],
                         source_tags: SourceTags, blocks: int = 1, skip: float = 0.0,
                         context: torch.Tensor | None = None) -> torch.Tensor:
    """p(source | audio) per time block for a batch ``[B, samples]`` -> ``[B, blocks, S]``.

    The batch is resampled to the taggers' 16 kHz once. Taggers that score none of the requested
    sources are not run. Per tagger: the mean probability
    of the source's tags in each analysis window, its windows stretched evenly over ``blocks`` equal
    time blocks (linear interpolation; one block = the mean over windows); then the mean over the
    taggers that have tags for the source.

    Args:
        skip: the rows are parts of one mixture: a tagger may leave out, in each window, the quietest
            parts holding less than this share of its energy (:meth:`Tagger.tag`); such a window
            gets the tagger's mean over the windows it tagged, so it leans towards no source.
        context: optional ``[samples]`` audio (same rate) every row is heard over (:meth:`Tagger.tag`).
    """
    audio = to_tagger_rate(audio, sample_rate)
    if context is not None:
        context = to_tagger_rate(context[None], sample_rate)[0]
    taggrams = [_fill_untagged(tagger.tag(audio, skip, context)) if source_tags.uses(t) else None  # [B, windows, tags]
                for t, tagger in enumerate(taggers)]
    columns: list[torch.Tensor | None] = []
    for per_tagger in source_tags.indices:
        parts = [_to_blocks(tg[:, :, idx].mean(dim=2), blocks) for tg, idx in zip(taggrams, per_tagger) if idx]
        columns.append(torch.stack(parts, dim=0).mean(dim=0) if parts else None)
    named = torch.stack([c for c in columns if c is not None], dim=0).mean(dim=0)
    return torch.stack([1 - named if c is None else c for c in columns], dim=2)


def _fill_untagged(taggram: torch.Tensor) -> torch.Tensor:
    """``[B, windows, tags]`` with every untagged (NaN) window set to the mean of the tagged ones."""
    untagged = taggram.isnan()
    if not untagged.any():
        return taggram
    return torch.where(untagged, taggram.nanmean(dim=(0, 1), keepdim=True), taggram)


def _to_blocks(per_window: torch.Tensor, blocks: int) -> torch.Tensor:
    """``[B, windows]`` -> ``[B, blocks]`` (mean for one block, else linear interpolation)."""
    if blocks == 1:
        return per_window.mean(dim=1, keepdim=True)
    return stretch(per_window, blocks)


def tag_nll(p: torch.Tensor, heard: bool, eps: float = 1e-6) -> torch.Tensor:
    """One term of the two-sided loss: −log p(own tags | row) for an estimate (``heard``), −log(1 − p)
    for the mixture without it (its source should not be heard there), summed over the entries of ``p``."""
    return -torch.log((p if heard else 1 - p).clamp_min(eps)).sum()


def multi_hot_bce(audio: torch.Tensor, sample_rate: int, taggers: list[Tagger], source_tags: SourceTags,
                  rows_for: list[int] | None = None) -> torch.Tensor:
    """The TagBox seed's loss (``--reference-faithful``): per tagger, binary cross-entropy between the
    window-mean tag vector of estimate s and the multi-hot vector of source s's tags; averaged over the
    taggers that name the source, summed over sources (a source no tagger names adds nothing).

    Args:
        audio: ``[R, samples]`` estimates at ``sample_rate`` Hz.
        rows_for: the source number each row is the estimate of (default: row s for requested source s).
    """
    rows_for = list(range(len(source_tags.sources))) if rows_for is None else rows_for
    per_row: list[list[torch.Tensor]] = [[] for _ in rows_for]
    audio = to_tagger_rate(audio, sample_rate)
    for t, tagger in enumerate(taggers):
        if not source_tags.uses(t, rows_for):
            continue
        mean_tags = tagger.tag(audio).mean(dim=1)  # [R, n_tags]
        for row, s in enumerate(rows_for):
            if source_tags.indices[s][t]:
                target = torch.zeros_like(mean_tags[row])
                target[source_tags.indices[s][t]] = 1.0
                per_row[row].append(F.binary_cross_entropy(mean_tags[row].clamp(1e-7, 1 - 1e-7), target))
    return sum((torch.stack(losses).mean() for losses in per_row if losses), audio.new_zeros(()))
