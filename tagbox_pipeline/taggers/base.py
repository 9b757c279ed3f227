"""The one tagger interface every tagger implements.

A tagger is a frozen ``torch.nn.Module`` that maps 16 kHz mono audio to per-window tag
probabilities. It is differentiable with respect to its input audio; its weights never change
(``requires_grad=False``, eval mode). :meth:`Tagger.taggram` accepts any sample rate and resamples
differentiably to 16 kHz first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import julius
import torch


class Tagger(torch.nn.Module, ABC):
    """A frozen music tagger.

    Attributes:
        name: registry name, e.g. ``"MTT_musicnn"`` or ``"fcn-mtat"``.
        dataset: tag vocabulary, one of ``"mtat"``, ``"msd"``, ``"jamendo"``.
        sample_rate: input rate in Hz (16000 for every tagger here).
        input_samples: samples at 16 kHz of one analysis window.
        tags: output names, index = output unit.
    """

    name: str
    dataset: str
    sample_rate: int = 16000
    input_samples: int
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

    def taggram(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Resample ``[batch, samples]`` audio at ``sample_rate`` Hz to 16 kHz (differentiably) and tag it."""
        if sample_rate != self.sample_rate:
            audio = julius.resample_frac(audio, sample_rate, self.sample_rate)
        return self(audio)
