"""Groups of components (the warm start tags them beside single components): k-means on the cues."""

import pytest
import torch

from prior_support import RATE, d02_opening, low_or_not, stereo_gains
from tagbox_pipeline.config import load_settings
from tagbox_pipeline.priors.consistency import Cue
from tagbox_pipeline.priors.grouping import group_components
from tagbox_pipeline.priors.nmf import NMFPrior
from tagbox_pipeline.priors.panning import spatial_cue
from tagbox_pipeline.stft import stft

SECONDS = 3


def test_components_that_sit_and_sound_alike_share_a_group():
    # three instruments: left and low, centre and high, right and low (two octaves apart from the centre)
    pans = [10, 12, 14, 45, 47, 43, 80, 78, 82]
    octaves = torch.log2(torch.tensor([100.0, 105.0, 98.0, 400.0, 420.0, 390.0, 101.0, 99.0, 104.0]))[:, None]
    cues = [*spatial_cue(stereo_gains(pans), 1.0, 5.0), Cue(octaves, 0.5, 0.3, 0.5)]
    groups = group_components(cues, torch.ones(9), 3).tolist()
    assert groups[0] == groups[1] == groups[2] and groups[3] == groups[4] == groups[5]
    assert groups[6] == groups[7] == groups[8] and len(set(groups)) == 3
    # by register alone the low ones on both sides are one group
    by_register = group_components([Cue(octaves, 0.5, 0.3, 0.5)], torch.ones(9), 2).tolist()
    assert len({by_register[k] for k in (0, 1, 2, 6, 7, 8)}) == 1 and by_register[3] != by_register[0]


def test_nothing_to_group_by_or_fewer_than_two_components_per_group_gives_no_groups():
    octaves = torch.rand(9, 1)
    assert group_components([Cue(octaves, 0.0, 0.3, 0.5)], torch.ones(9), 3) is None
    assert group_components([], torch.ones(9), 3) is None
    assert group_components([Cue(octaves, 0.5, 0.3, 0.5)], torch.ones(9), 0) is None
    assert group_components([Cue(octaves[:5], 0.5, 0.3, 0.5)], torch.ones(5), 3) is None  # < 2 per group
    assert group_components([Cue(octaves[:6], 0.5, 0.3, 0.5)], torch.ones(6), 3) is not None


@pytest.fixture(scope="module")
def d02(shared):
    return d02_opening(shared, SECONDS)


def test_groups_of_real_components_are_mostly_one_instrument(d02):
    """On d02 (flute, guitar, bass at three pans), a group's energy is more one instrument's than in
    groups of the same sizes drawn at random."""
    prior = NMFPrior(load_settings(overrides={"nmf.components": 16, "nmf.nmf_iterations": 40}).nmf)
    s = prior.settings
    state = prior.fit(d02["mixture"], RATE, 3, seed=0)
    cues = prior.cues(state)
    energies = prior.energies(state)
    truth = stft(torch.stack([d02[n] for n in ("flute", "guitar", "bass")]), s.n_fft, s.hop).abs()
    owned = prior.energies(state, truth)  # [3, K]: each instrument's energy in each component

    def purity(groups: torch.Tensor) -> float:
        per_group = torch.zeros(3, int(groups.max()) + 1).index_add_(1, groups, owned)
        return float(per_group.max(dim=0).values.sum() / per_group.sum())

    groups = group_components(cues, energies, 4)
    generator = torch.Generator().manual_seed(0)
    shuffled = [purity(groups[torch.randperm(len(groups), generator=generator)]) for _ in range(20)]
    assert purity(groups) > max(shuffled), (purity(groups), shuffled)


def test_group_evidence_is_added_alike_to_every_member(d02):
    prior = NMFPrior(load_settings(overrides={"nmf.components": 16, "nmf.nmf_iterations": 40}).nmf)
    state = prior.fit(d02["mixture"], RATE, 2, seed=0)
    groups = torch.tensor([0, 1, 2, 3, 4, 5] * 2 + [0, 1, 2, 3])
    alone = prior.tag_evidence(state, low_or_not)
    added = prior.tag_evidence(state, low_or_not, groups) - alone  # [K, blocks, S]
    for g in range(6):
        members = added[groups == g]
        assert torch.allclose(members, members[:1].expand_as(members), atol=1e-6)
    assert added.abs().max() > 0.05  # (the groups are not all alike to the low-band score)
    off = NMFPrior(load_settings(overrides={"nmf.components": 16, "nmf.nmf_iterations": 40,
                                            "nmf.group_weight": 0.0}).nmf)
    assert torch.equal(off.tag_evidence(state, low_or_not, groups), alone)
