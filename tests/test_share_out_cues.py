"""The cue refinement of the warm start: components go to the source that sits where, and sounds as, they do."""

import math

import torch

from prior_support import stereo_gains
from tagbox_pipeline.config import NMFSettings
from tagbox_pipeline.priors.consistency import Cue, refine_by_cues
from tagbox_pipeline.priors.nmf import NMFPrior
from tagbox_pipeline.priors.panning import directions, spatial_cue
from tagbox_pipeline.priors.timbre import envelope, register, timbre_cues


def _ambiguous_tags():
    """Tags name components 0, 1 as A and 3, 4 as B; 2 and 5 are ambiguous. ``[3, 6, 1]``, last row rest."""
    return torch.tensor([[3.0, 3.0, 0.0, -3.0, -3.0, 0.0],
                         [-3.0, -3.0, 0.0, 3.0, 3.0, 0.0],
                         [0.0] * 6])[:, :, None]


def test_directions_are_unit_vectors_in_the_order_of_the_pan():
    d = directions(stereo_gains([10, 45, 80]) * torch.tensor([3.0, 0.2, 7.0]))
    assert torch.allclose(d.norm(dim=1), torch.ones(3))
    assert d[0, 0] > d[1, 0] > d[2, 0]  # leftmost has the largest left component


def test_an_ambiguous_component_joins_the_source_on_its_side():
    # components 0-2 on the left, 3-5 on the right
    tags = _ambiguous_tags()
    refined = refine_by_cues(tags, spatial_cue(stereo_gains([20, 22, 25, 65, 68, 70]), 1.0, 5.0), torch.ones(6), 5)
    shares = torch.softmax(refined, dim=0)[:, :, 0]
    assert shares[0, 2] > 2 * shares[1, 2]
    assert shares[1, 5] > 2 * shares[0, 5]
    assert torch.equal(refined[-1], tags[-1])  # the residual's logits are not touched
    before = torch.softmax(tags, dim=0)[:, :, 0]
    assert torch.allclose(before[0, 2], before[1, 2])


def test_an_ambiguous_component_joins_the_source_in_its_register():
    # one feature, in octaves: components 0-2 low (about 100 Hz), 3-5 high (about 800 Hz)
    tags = _ambiguous_tags()
    octaves = torch.log2(torch.tensor([100.0, 110.0, 105.0, 800.0, 850.0, 790.0]))[:, None]
    refined = refine_by_cues(tags, [Cue(octaves, 0.5, 0.3, 0.5)], torch.ones(6), 5)
    shares = torch.softmax(refined, dim=0)[:, :, 0]
    assert shares[0, 2] > 2 * shares[1, 2]
    assert shares[1, 5] > 2 * shares[0, 5]
    # and the cues add up: a register that contradicts the pan pulls the other way
    both = refine_by_cues(tags, [*spatial_cue(stereo_gains([20, 22, 65, 25, 68, 70]), 1.0, 5.0),
                                 Cue(octaves, 0.5, 0.3, 0.5)], torch.ones(6), 5)
    component_2 = torch.softmax(both, dim=0)[:2, 2, 0]
    assert abs(float(component_2[0] - component_2[1])) < abs(float(shares[0, 2] - shares[1, 2]))


def test_mono_equal_features_or_zero_weight_change_nothing():
    tags = torch.randn(3, 5, 2)
    same_place = spatial_cue(stereo_gains([45.0] * 5), 1.0, 5.0)
    assert torch.allclose(refine_by_cues(tags, same_place, torch.ones(5), 5), tags)
    assert spatial_cue(torch.ones(1, 5), 1.0, 5.0) == []  # one channel: no direction
    spread = [Cue(torch.randn(5, 1), 0.0, 0.3, 0.5), *spatial_cue(stereo_gains([10, 20, 45, 70, 80]), 0.0, 5.0)]
    assert torch.equal(refine_by_cues(tags, spread, torch.ones(5), 5), tags)
    assert timbre_cues(torch.rand(1025, 5), 44100, 2048, 0.0, 0.0) == []


def _tone(f0: float, rate: int, bright: bool) -> torch.Tensor:
    """2 s of a harmonic tone at ``f0`` Hz: partials falling as 1/h (bright, sawtooth-like) or 1/h³ (dull)."""
    t = torch.arange(2 * rate) / rate
    power = 1 if bright else 3
    partials = [torch.sin(2 * math.pi * f0 * h * t) / h ** power for h in range(1, 16) if f0 * h < rate / 2]
    return 0.1 * torch.stack(partials).sum(dim=0)


def _spectra(audio: torch.Tensor, rate: int) -> torch.Tensor:
    """The spectrum of the loudest of 4 NMF components of a mono signal, ``[F, 1]``."""
    prior = NMFPrior(NMFSettings(components=4))
    state = prior.fit(audio[None], rate, 1)
    return state.factors.spectra[:, prior.energies(state).argmax()][:, None]


def test_register_is_the_octave_of_the_strongest_partial_and_envelope_tells_bright_from_dull():
    rate = 22050
    low, high = _spectra(_tone(110.0, rate, True), rate), _spectra(_tone(880.0, rate, True), rate)
    bin_octaves = math.log2(1 + rate / 2048 / 110)  # one STFT bin at 110 Hz, in octaves
    assert abs(float(register(low, rate, 2048)) - math.log2(110)) <= bin_octaves
    assert abs(float(register(high, rate, 2048)) - math.log2(880)) <= bin_octaves / 8
    bright, dull = envelope(low, rate, 2048), envelope(_spectra(_tone(110.0, rate, False), rate), rate, 2048)
    same = envelope(_spectra(_tone(123.5, rate, True), rate), rate, 2048)  # a bright tone a tone higher
    assert bright.shape == (1, 8)
    assert float((bright - same).pow(2).sum()) < float((bright - dull).pow(2).sum()) / 4


def test_trust_scales_each_sources_cue_terms():
    """A rival of trust 0 keeps its tag logits; one of trust ½ moves half as far as a trusted source."""
    tags = _ambiguous_tags()
    cues = spatial_cue(stereo_gains([20, 22, 25, 65, 68, 70]), 1.0, 5.0)
    full = refine_by_cues(tags, cues, torch.ones(6), 1)
    untrusted = refine_by_cues(tags, cues, torch.ones(6), 1, torch.tensor([1.0, 0.0]))
    half = refine_by_cues(tags, cues, torch.ones(6), 1, torch.tensor([1.0, 0.5]))
    assert torch.equal(untrusted[1], tags[1]) and torch.equal(untrusted[0], full[0])
    assert not torch.equal(full[1], tags[1])
    assert torch.allclose(half[1] - tags[1], (full[1] - tags[1]) / 2)
