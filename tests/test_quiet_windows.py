"""``nmf.quiet_share``: a tagger leaves out the quietest components of each window, and only those.

Real audio: the NMF components of the bundled example (a rendered chorale: piano, bass, drums), tagged
by the original MTT musicnn from the wheel, with and without skipping.
"""

from __future__ import annotations

import pytest
import torch

from tagbox_pipeline.config import load_settings
from tagbox_pipeline.objective import SourceTags, source_probabilities
from tagbox_pipeline.priors.nmf import NMFPrior
from tagbox_pipeline.taggers.base import TAGGER_RATE, quiet_rows, span_energies, to_tagger_rate
from tagbox_pipeline.taggers.musicnn_tf import HOP, WINDOW_FRAMES
from tagbox_pipeline.taggers.registry import get_tagger
from support import example_audio

SHARE = 0.05
#: one musicnn window, in 16 kHz samples
WINDOW = WINDOW_FRAMES * HOP


@pytest.fixture(scope="module")
def components() -> torch.Tensor:
    """The example's 16 NMF components, mono at 16 kHz ``[16, samples]``."""
    audio, rate = example_audio("mixture")
    prior = NMFPrior(load_settings(overrides={"nmf.components": 16, "nmf.nmf_iterations": 40}).nmf)
    state = prior.fit(torch.from_numpy(audio), rate, 1, seed=0)
    with torch.no_grad():
        return to_tagger_rate(prior.components(state), rate)


@pytest.fixture(scope="module")
def musicnn():
    return get_tagger("MTT_musicnn", "cpu")


def test_only_the_quietest_parts_of_each_window_go_untagged(components, musicnn):
    with torch.no_grad():
        everything = musicnn.tag(components)
        skipping = musicnn.tag(components, SHARE)
    untagged = skipping.isnan().all(dim=2)  # [K, windows]
    assert untagged.shape == everything.shape[:2]
    assert torch.equal(untagged, skipping.isnan().any(dim=2)), "a window is tagged whole or not at all"
    assert untagged.any(), "nothing was skipped: the test proves nothing"
    assert (~untagged).any(dim=0).all(), "every window keeps its loud parts"
    # the windows it did tag carry the same tags as when everything is tagged (other batch, same network)
    assert torch.allclose(skipping[~untagged], everything[~untagged], atol=1e-5)
    # what it left out holds less than SHARE of each window's energy, and is the quietest there
    energy = span_energies(components, WINDOW, untagged.shape[1])
    left_out = (energy * untagged).sum(dim=0)
    assert (left_out < SHARE * energy.sum(dim=0)).all()
    loudest_skipped = torch.where(untagged, energy, torch.zeros_like(energy)).amax(dim=0)
    quietest_tagged = torch.where(untagged, torch.full_like(energy, float("inf")), energy).amin(dim=0)
    assert (loudest_skipped <= quietest_tagged).all()


def test_a_silent_part_is_skipped_and_a_lone_row_never(components, musicnn):
    loudest = components[components.square().sum(dim=1).argsort(descending=True)[:3]]  # none of them quiet throughout
    rows = torch.cat([loudest, torch.zeros_like(components[:1])])
    with torch.no_grad():
        tagged = musicnn.tag(rows, SHARE)
        alone = musicnn.tag(components[:1], 0.5)
    assert tagged[3].isnan().all() and not tagged[:3].isnan().all(dim=2).all(dim=1).any()
    assert not alone.isnan().any(), "a window's only part holds all of its energy"
    assert not quiet_rows(torch.zeros(4, 3), SHARE).any(), "a silent window: nothing to leave out"


def test_skipped_windows_lean_towards_no_source(components, musicnn):
    """In the source probabilities an untagged window gets the tagger's mean over the tagged ones."""
    tags = SourceTags.build(["piano", "drums"], [musicnn])
    with torch.no_grad():
        raw = musicnn.tag(components, SHARE)
        probabilities = source_probabilities(components, TAGGER_RATE, [musicnn], tags, blocks=raw.shape[1],
                                             skip=SHARE)
    assert not probabilities.isnan().any()
    untagged = raw.isnan().all(dim=2)
    piano = tags.indices[0][0]
    mean_piano = raw[..., piano].nanmean(dim=(0, 1)).mean()
    assert torch.allclose(probabilities[..., 0][untagged], mean_piano.expand(int(untagged.sum())), atol=1e-6)
