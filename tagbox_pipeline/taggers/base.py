"""The one tagger interface every tagger implements.

A tagger is a frozen ``torch.nn.Module`` that maps 16 kHz mono audio to per-window tag
probabilities. It is differentiable with respect to its input audio; its weights never change
(``requires_grad=False``, eval mode). :meth:`Tagger.taggram` accepts any sample rate and resamples
differentiably to 16 kHz first (:func:`to_tagger_rate`, shared by every tagger of a batch), then
tags the rows in groups whose activations fit a share of the process-wide activation budget
(:mod:`.budget`), so memory grows neither with the number of candidates, the chunk length, nor the
number of threads tagging at once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import lru_cache

import julius
import torch
from torch.utils.checkpoint import checkpoint

from . import budget

#: the rate every tagger here reads, in Hz
TAGGER_RATE = 16000


@lru_cache(maxsize=None)
def _resampler(old_rate: int, new_rate: int, device: str) -> julius.ResampleFrac:
    return julius.ResampleFrac(old_rate, new_rate).to(device)


def to_tagger_rate(audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``[..., samples]`` at ``sample_rate`` Hz -> the same at :data:`TAGGER_RATE` (differentiable; the
    resampling filters are built once per rate)."""
    if sample_rate == TAGGER_RATE:
        return audio
    return _resampler(sample_rate, TAGGER_RATE, str(audio.device))(audio)


class Tagger(torch.nn.Module, ABC):
    """A frozen music tagger.

    Attributes:
        name: registry name, e.g. ``"MTT_musicnn"`` or ``"fcn-mtat"``.
        dataset: tag vocabulary, one of ``"mtat"``, ``"msd"``, ``"jamendo"``.
        sample_rate: input rate in Hz (16000 for every tagger here).
        input_samples: samples at 16 kHz of one analysis window.
        window_bytes: activation bytes one analysis window needs at most in :meth:`forward` (sets
            how many rows are tagged at once).
        tags: output names, index = output unit.
    """

    name: str
    dataset: str
    sample_rate: int = TAGGER_RATE
    input_samples: int
    window_bytes: int
    tags: list[str]

    def freeze(self) -> "Tagger":
        """Eval mode, no weight gradients. Call at the end of every loader."""
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "Tagger":
        """Taggers stay in eval mode: batch-norm statistics must never be updated."""
        return super().train(False)

    @abstractmethod
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Tag 16 kHz audio.

        Args:
            audio: ``[batch, samples]`` float32 at 16 kHz.

        Returns:
            ``[batch, windows, n_tags]`` sigmoid probabilities, one row per analysis window.
        """

    def loud_windows(self, audio: torch.Tensor, skip: float) -> torch.Tensor | None:
        """Which analysis windows of the rows of ``audio`` (16 kHz) are worth tagging, ``[batch, windows]``
        bool, when the rows are parts of one mixture (see :meth:`tag`); ``None``: this tagger tags every
        window (the default; a tagger that can leave windows out overrides this and :meth:`tag_loud`)."""
        return None

    def tag_loud(self, audio: torch.Tensor, loud: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` of the rows (plus ``context``, see :meth:`tag`) for the windows where ``loud`` is
        true; NaN for the others (all rows at once: the tagger reserves its batches from
        :data:`.budget.BUDGET` itself)."""
        raise NotImplementedError(f"{self.name} tags every window")

    def windows_in(self, samples: int) -> int:
        """Analysis windows of one row of ``samples`` 16 kHz samples (default: back to back, a partial one counted)."""
        return max(1, math.ceil(samples / self.input_samples))

    def row_bytes(self, samples: int) -> int:
        """Activation bytes of tagging one row of ``samples`` 16 kHz samples (all its windows at once)."""
        return self.windows_in(samples) * self.window_bytes

    def tag(self, audio: torch.Tensor, skip: float = 0.0, context: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` over ``[batch, samples]`` 16 kHz audio, in groups of rows whose activations are
        reserved from :data:`.budget.BUDGET` (a differentiable call recomputes one group at a time in
        the backward pass, outside the reservation).

        Args:
            skip: when above 0, the rows are parts of one mixture (e.g. NMF components): in each
                analysis window, the quietest rows that together hold less than this share of the
                window's energy may be left untagged (NaN), by a tagger whose :meth:`loud_windows`
                says so; the tag of a part that is hardly there is not worth its convolutions.
            context: optional ``[samples]`` 16 kHz audio added to every row as it is tagged (each row
                heard over it); the quiet windows are still chosen from the rows alone.
        """
        loud = self.loud_windows(audio, skip) if skip > 0 else None
        if loud is not None:
            return self.tag_loud(audio, loud, context)
        forward = self._recomputed if torch.is_grad_enabled() and audio.requires_grad else self
        heard = forward if context is None else lambda rows: forward(rows + context)
        return torch.cat(in_groups(heard, audio, self.row_bytes(audio.shape[-1])))

    def _recomputed(self, audio: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` whose activations are not kept for the backward pass but recomputed there
        (``torch.utils.checkpoint``): a differentiable tagging holds one tagger's activations at a
        time, at the cost of a second forward pass."""
        return checkpoint(self, audio, use_reentrant=False)

    def taggram(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Resample ``[batch, samples]`` audio at ``sample_rate`` Hz to 16 kHz (differentiably) and tag it."""
        return self.tag(to_tagger_rate(audio, sample_rate))


def in_groups(forward: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor, unit: int,
              step: int = 1) -> list[torch.Tensor]:
    """``forward`` over consecutive groups of ``rows`` (dim 0) -> its outputs in order; each group is a
    multiple of ``step`` rows (but the last) and its ``unit`` bytes per row are reserved from
    :data:`.budget.BUDGET` while it runs."""
    outputs: list[torch.Tensor] = []
    start = 0
    with budget.BUDGET.tagging():
        while start < len(rows):
            with budget.BUDGET.reserve(unit * step, math.ceil((len(rows) - start) / step)) as steps:
                outputs.append(forward(rows[start:start + steps * step]))
            start += steps * step
    return outputs


def quiet_rows(energies: torch.Tensor, share: float) -> torch.Tensor:
    """In every column of ``energies`` ``[rows, windows]``, the quietest rows whose energies add up to
    less than ``share`` of the column's total -> ``[rows, windows]`` bool (a silent column: none)."""
    order = energies.argsort(dim=0)
    quiet = energies.gather(0, order).cumsum(dim=0) < share * energies.sum(dim=0, keepdim=True)
    return torch.zeros_like(quiet).scatter(0, order, quiet)


def span_energies(audio: torch.Tensor, length: int, count: int) -> torch.Tensor:
    """Sum of squared samples of the first ``count`` back-to-back spans of ``length`` samples of
    ``[batch, n]`` audio (zero past its end) -> ``[batch, count]``."""
    padded = torch.nn.functional.pad(audio, (0, max(0, count * length - audio.shape[-1])))
    return padded[:, :count * length].square().reshape(len(audio), count, length).sum(dim=-1)
