"""The prior interface: what the steering loop moves, and how it turns into stems.

A prior is built once per chunk from the mixture. It owns the parameters being optimised (NMF
gates, Jukebox latents) and renders one estimate per requested source. Model weights inside a
prior never change. Implementations: :mod:`.nmf` (CPU default), :mod:`.jukebox` (GPU).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal, Protocol

import torch


class SourceScorer(Protocol):
    """Scores a batch of mono estimates ``[B, samples]`` at the chunk's rate and returns, per estimate and
    time block, the log-probability of each requested source ``[B, blocks, n_sources]`` (no gradient
    needed for warm starts). The number of blocks is the scorer's choice (equal blocks over the chunk).

    ``skip`` (0 for all) says the batch is parts of one mixture and lets the taggers leave out the
    quietest parts of each window (see :func:`..objective.source_probabilities`); ``context``, an
    optional ``[samples]`` signal at the same rate, is added to every row as it is heard.
    """

    def __call__(self, audio: torch.Tensor, skip: float = 0.0,
                 context: torch.Tensor | None = None) -> torch.Tensor: ...


class Prior(ABC):
    """A restrictive model of the stems of one chunk, and how the steering loop should move it.

    Attributes:
        name: registry name.
        learning_rate: Adam learning rate of :meth:`parameters`.
        loss: ``"two-sided"`` (each estimate tagged as its source and its complement not) or
            ``"multi-hot"`` (the seed code's BCE of every estimate to its multi-hot target).
        complements: whether the two-sided loss scores the complements too (else the estimates alone).
        max_stepped_sources: the steering steps run only for requests of at most this many sources
            (None: always).
    """

    name: str
    learning_rate: float
    loss: Literal["two-sided", "multi-hot"] = "two-sided"
    complements: bool = True
    max_stepped_sources: int | None = None

    def steps_for(self, steps: int, sources: int) -> int:
        """The steering steps a request of ``sources`` sources gets: ``steps``, or none when it has more
        than :attr:`max_stepped_sources`."""
        limit = self.max_stepped_sources
        return steps if limit is None or sources <= limit else 0

    @abstractmethod
    def fit(self, mix: torch.Tensor, sample_rate: int, n_sources: int, seed: int = 0) -> Any:
        """Build the per-chunk state from the mixture.

        Args:
            mix: ``[channels, samples]`` float32 at ``sample_rate`` Hz (the chunk, all channels).
            sample_rate: in Hz, the input's own rate.
            n_sources: number of requested sources S (a residual/"rest" share is implicit).
            seed: seeds every random choice of the prior, so the same seed gives the same stems.
        """

    def score_blocks(self, seconds: float) -> int:
        """How many equal time blocks the warm-start scorer scores a chunk of ``seconds`` s in (default 1)."""
        return 1

    def warm_start(self, state: Any, score: SourceScorer, bias: torch.Tensor | None = None,
                   trust: torch.Tensor | None = None, percussive: torch.Tensor | None = None) -> None:
        """Optionally initialise the parameters from tagger scores before steering (default: nothing).

        Args:
            bias: ``[S]`` added to each source's share-out logits (a rival's below 0: it takes only
                what is clearly its own).
            trust: ``[S]`` in [0, 1], how far each source's own other cues (where and how its share
                sounds) may be relied on (a rival's below 1: it holds only part of its instrument);
                default all 1.
            percussive: ``[S]`` bool, the sources that are drum kits (default none).
        """

    @abstractmethod
    def parameters(self, state: Any) -> list[torch.Tensor]:
        """Leaf tensors the optimiser moves (``requires_grad=True``)."""

    @abstractmethod
    def estimates(self, state: Any) -> torch.Tensor:
        """Differentiable mono estimates ``[S, samples]`` at the chunk's rate, fed to the taggers."""

    @abstractmethod
    def stems(self, state: Any) -> torch.Tensor:
        """Final stems ``[S, channels, samples]``: masks applied to every channel of the mixture (no grad).

        Their sum must not exceed the mixture's energy share: the rest is the residual.
        """

    def final(self, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`estimates` and :meth:`stems` of the final parameters, without gradients (a prior may
        share their work, e.g. decode once)."""
        with torch.no_grad():
            return self.estimates(state), self.stems(state)

    def weights_sha256(self) -> dict[str, str]:
        """sha256 of every weights file the prior loaded (empty for weight-free priors)."""
        return {}
