"""The cue refinement of the warm start: components go to the source that sits where, and sounds as, they do."""

import math

import torch

from prior_support import stereo_gains
from tagbox_pipeline.config import NMFSettings
from tagbox_pipeline.priors.consistency import Cue, refine_by_cues
from tagbox_pipeline.priors.nmf import NMFPrior
from tagbox_pipeline.priors.panning import directions, spatial_cue
from tagbox_pipeline.priors.timbre import HARMONICS, envelope, harmonic_profile, register, timbre_cues
from tagbox_pipeline.stft import stft


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
    assert timbre_cues(torch.rand(1025, 5), 44100, 2048, 0.0, 0.0, 0.0) == []


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


def _mean_spectrum(audio: torch.Tensor, rate: int) -> torch.Tensor:
    """The time-averaged STFT magnitude of a mono signal (2048-point, hop 512), ``[F, 1]``."""
    return stft(audio[None], 2048, 512).abs()[0].mean(dim=-1)[:, None]


def _falling(power: int) -> torch.Tensor:
    """The harmonic profile of partials falling as 1/h**power, as :func:`harmonic_profile` centres it."""
    log_amplitude = -power * torch.log(torch.arange(1.0, HARMONICS + 1))
    return (log_amplitude - log_amplitude.mean()) / math.sqrt(HARMONICS)


def test_harmonic_profile_reads_the_partials_at_any_pitch_and_rate():
    """The profile is that of the tone's partials from 55 Hz to 1 kHz, at 22.05 and 44.1 kHz: the fundamental
    is found (not a subharmonic that a window's leakage would fake), and an octave up keeps the profile."""
    for rate in (22050, 44100):
        for f0 in (55.0, 110.0, 440.0, 1000.0):
            bright = harmonic_profile(_mean_spectrum(_tone(f0, rate, True), rate), rate, 2048)[0]
            assert bright.shape == (HARMONICS,)
            assert float((bright - _falling(1)).abs().max()) < 0.05, (rate, f0)
            if f0 >= 110:  # (a dull 55 Hz tone's upper partials, 2.6 bins apart at 44.1 kHz, sit in their
                # neighbours' main lobes)
                dull = harmonic_profile(_mean_spectrum(_tone(f0, rate, False), rate), rate, 2048)[0]
                assert float((dull - _falling(3)).abs().max()) < 0.15, (rate, f0)  # (its 8th partial: −54 dB)
    # on NMF components of real tones: a bright tone two octaves up is nearer a bright tone than a dull one
    # is, in the harmonics cue; the envelope cue (absolute frequencies) says the opposite
    rate = 22050
    low, high, dull = (_spectra(_tone(f0, rate, bright), rate) for f0, bright in ((110.0, True), (440.0, True),
                                                                                   (110.0, False)))
    distance = lambda feature: (float((feature(low) - feature(high)).pow(2).sum()),
                                float((feature(low) - feature(dull)).pow(2).sum()))
    same, other = distance(lambda w: harmonic_profile(w, rate, 2048))
    assert same < other / 5
    same, other = distance(lambda w: envelope(w, rate, 2048))
    assert same > other


def test_harmonic_profile_above_the_nyquist_frequency_is_the_floor():
    """At 16 kHz a 1.5 kHz tone has 5 partials below 8 kHz: harmonics 6-8 read as silent, none is made up."""
    rate = 16000
    profile = harmonic_profile(_mean_spectrum(_tone(1500.0, rate, True), rate), rate, 2048)[0] * math.sqrt(HARMONICS)
    assert torch.isfinite(profile).all()
    assert torch.allclose(profile[5:], profile[5:].min().expand(3))
    assert bool((profile[:5] > profile[5] + 3).all())


def test_the_harmonics_cue_splits_a_register_two_timbres_share():
    """Ambiguous components in one register go to the source whose harmonic profile they have."""
    rate = 22050
    bright = [_mean_spectrum(_tone(f0, rate, True), rate) for f0 in (220.0, 247.0, 262.0)]
    dull = [_mean_spectrum(_tone(f0, rate, False), rate) for f0 in (233.0, 208.0, 277.0)]
    spectra = torch.cat([*bright, *dull], dim=1)  # components 0-2 bright, 3-5 dull; 2 and 5 ambiguous by tags
    cues = timbre_cues(spectra, rate, 2048, 0.0, 0.0, 1.5)
    assert len(cues) == 1
    shares = torch.softmax(refine_by_cues(_ambiguous_tags(), cues, torch.ones(6), 5), dim=0)[:, :, 0]
    assert shares[0, 2] > 2 * shares[1, 2]
    assert shares[1, 5] > 2 * shares[0, 5]


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
