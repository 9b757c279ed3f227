"""The KL-NMF prior on real bench-dev audio (3 s excerpts of d02: flute, guitar, bass)."""

import pytest
import soundfile as sf
import torch

from tagbox_pipeline.config import load_settings
from tagbox_pipeline.priors.nmf import NMFPrior, kl_nmf
from tagbox_pipeline.taggers.registry import get_tagger

SECONDS = 3
RATE = 44100


@pytest.fixture(scope="module")
def clip(shared):
    folder = shared / "data" / "bench-dev" / "d02"
    read = lambda name: torch.from_numpy(sf.read(folder / f"{name}.flac", dtype="float32",
                                                 frames=SECONDS * RATE)[0].T.copy())
    return {name: read(name) for name in ("mixture", "flute", "guitar", "bass")}


@pytest.fixture(scope="module")
def prior():
    return NMFPrior(load_settings(overrides={"nmf.components": 16, "nmf.nmf_iterations": 40}).nmf)


def _kl(v, approx):
    return float((v * torch.log(v / approx) - v + approx).sum())


def test_kl_nmf_fits_the_real_spectrogram_better_with_more_iterations(clip, prior):
    magnitude = torch.stft(clip["mixture"].mean(0), 2048, 512, window=torch.hann_window(2048),
                           return_complex=True).abs() + 1e-10
    errors = []
    for iterations in (1, 10, 50):
        w, h = kl_nmf(magnitude, 16, iterations, torch.Generator().manual_seed(0))
        assert w.min() >= 0 and h.min() >= 0
        errors.append(_kl(magnitude, w @ h + 1e-10))
    assert errors[0] > errors[1] > errors[2]


def test_a_source_given_every_component_gets_the_whole_mix_on_every_channel(clip, prior):
    state = prior.fit(clip["mixture"], RATE, 2, seed=0)
    with torch.no_grad():
        state.logits.fill_(-30.0)
        state.logits[0] = 30.0
    stems = prior.stems(state)
    assert torch.allclose(stems[0], clip["mixture"], atol=1e-4)
    assert stems[1].abs().max() < 1e-4
    estimate = prior.estimates(state)[0]
    assert torch.allclose(estimate, clip["mixture"].mean(0), atol=1e-4)


def test_same_seed_same_factorisation_other_seed_differs(clip, prior):
    a, b = (prior.fit(clip["mixture"], RATE, 2, seed=s).component_masks for s in (0, 0))
    c = prior.fit(clip["mixture"], RATE, 2, seed=1).component_masks
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_warm_start_by_low_band_share_moves_the_low_end_into_the_stem(clip, prior):
    """Gating components by the weight-free 'low' descriptor gives a stem much bassier than the mixture.

    (Its SI-SDRi against the true bass is only about 0 dB here: with one requested source the
    'rest' competitor is weak and mid-low components leak in; see the quality bench.)
    """
    low = get_tagger("spectral", "cpu")
    state = prior.fit(clip["mixture"], RATE, 1, seed=0)
    prior.warm_start(state, lambda audio: torch.log(low.taggram(audio, RATE).mean(1, keepdim=True)
                                                    .clamp_min(1e-6)))
    stem = prior.stems(state)[0].mean(0)
    share = lambda audio: float(low.taggram(audio[None], RATE).mean())
    assert share(stem) > share(clip["mixture"].mean(0)) + 0.1
    assert stem.pow(2).sum() < clip["mixture"].mean(0).pow(2).sum()


def test_gradient_steps_raise_the_tag_probability(clip, prior):
    low = get_tagger("spectral", "cpu")
    state = prior.fit(clip["mixture"], RATE, 1, seed=0)
    optimiser = torch.optim.Adam(prior.parameters(state), lr=0.3)
    p = lambda: low.taggram(prior.estimates(state), RATE).mean()
    before = float(p().detach())
    for _ in range(5):
        loss = -torch.log(p())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert float(p().detach()) > before + 0.05
