"""The spatial refinement of the warm start: components go to the source that sits where they sit."""

import math

import torch

from tagbox_pipeline.priors.panning import directions, refine_by_direction


def _stereo(angles_degrees):
    """Channel gains ``[2, K]`` of components panned at the given angles (0 = left, 90 = right)."""
    radians = torch.tensor(angles_degrees, dtype=torch.float32) * math.pi / 180
    return torch.stack([torch.cos(radians), torch.sin(radians)])


def test_directions_are_unit_vectors_in_the_order_of_the_pan():
    d = directions(_stereo([10, 45, 80]) * torch.tensor([3.0, 0.2, 7.0]))
    assert torch.allclose(d.norm(dim=1), torch.ones(3))
    assert d[0, 0] > d[1, 0] > d[2, 0]  # leftmost has the largest left component


def test_an_ambiguous_component_joins_the_source_on_its_side():
    # components 0-2 on the left, 3-5 on the right; tags name 0, 1 as A and 3, 4 as B; 2 and 5 are ambiguous
    gains = _stereo([20, 22, 25, 65, 68, 70])
    tags = torch.tensor([[3.0, 3.0, 0.0, -3.0, -3.0, 0.0],  # source A
                         [-3.0, -3.0, 0.0, 3.0, 3.0, 0.0],  # source B
                         [0.0] * 6])[:, :, None]  # rest row
    refined = refine_by_direction(tags, directions(gains), torch.ones(6), weight=1.0, min_spread_degrees=5.0,
                                  rounds=5)
    shares = torch.softmax(refined, dim=0)[:, :, 0]
    assert shares[0, 2] > 2 * shares[1, 2]
    assert shares[1, 5] > 2 * shares[0, 5]
    assert torch.equal(refined[-1], tags[-1])  # the residual's logits are not touched
    before = torch.softmax(tags, dim=0)[:, :, 0]
    assert torch.allclose(before[0, 2], before[1, 2])


def test_mono_equal_directions_or_zero_weight_change_nothing():
    tags = torch.randn(3, 5, 2)
    same_place = directions(_stereo([45.0] * 5))
    assert torch.allclose(refine_by_direction(tags, same_place, torch.ones(5), 1.0, 5.0, 5), tags)
    mono = directions(torch.ones(1, 5))
    assert torch.equal(refine_by_direction(tags, mono, torch.ones(5), 1.0, 5.0, 5), tags)
    spread = directions(_stereo([10, 20, 45, 70, 80]))
    assert torch.equal(refine_by_direction(tags, spread, torch.ones(5), 0.0, 5.0, 5), tags)
