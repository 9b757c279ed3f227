"""Gate logits -> shares: the softmax over the sources (and the rest) that makes their masks compete."""

from __future__ import annotations

import torch


def shares(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over axis 0 of ``[S + 1, ...]`` gate logits, so the shares of every component sum to one.

    Written out element-wise rather than ``torch.softmax``: on gate-sized tensors these ops run on one
    thread, so the bits do not depend on the thread count (``torch.softmax`` splits the columns between
    threads and rounds differently with 1 and 2; a resumed or Dask-run track must equal an
    uninterrupted one).
    """
    exp = (logits - logits.max(dim=0, keepdim=True).values).exp()
    return exp / exp.sum(dim=0, keepdim=True)
