"""Stretch values spread evenly over a chunk (time blocks, tagger windows) to another count of points.

The same result as ``torch.nn.functional.interpolate(mode="linear", align_corners=False)``, built from
a gather and element-wise arithmetic so that its bits do not depend on the thread count (torch's
interpolation kernels round differently with 1 and 2 threads, and a resumed or Dask-run track must
give the same stems as an uninterrupted one).
"""

from __future__ import annotations

import torch


def stretch(values: torch.Tensor, size: int) -> torch.Tensor:
    """``[..., n]`` values at the centres of n equal parts -> ``[..., size]`` by linear interpolation.

    Point j of the output sits at the centre of part j of ``size`` equal parts; beyond the first and
    last input centres the end values are held. One input value is repeated exactly.
    """
    count = values.shape[-1]
    if count == size:
        return values
    position = ((torch.arange(size, dtype=torch.float64) + 0.5) * (count / size) - 0.5).clamp(0, count - 1)
    lower = position.floor().long()
    upper = (lower + 1).clamp(max=count - 1)
    weight = (position - lower).to(values.dtype).to(values.device)
    lower, upper = lower.to(values.device), upper.to(values.device)
    return values[..., lower] * (1 - weight) + values[..., upper] * weight
