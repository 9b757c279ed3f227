"""The transient cue: a drum kit's components come in short bursts, and the warm start uses that.

Real audio: the bundled example (``examples/demo/``: piano, bass and drums with their true stems;
no ``../shared`` needed). Which source owns each component is measured, not assumed: its energy
in each true stem's magnitude (:meth:`NMFPrior.energies` with the stem as weights).
"""

import numpy as np
import pytest
import torch

from tagbox_pipeline.bench.metrics import si_sdr_improvement
from tagbox_pipeline.config import load_settings
from tagbox_pipeline.priors.nmf import NMFPrior
from tagbox_pipeline.priors.transients import transience
from tagbox_pipeline.stft import stft
from tagbox_pipeline.taggers.vocabulary import resolve_source
from support import example_audio


@pytest.fixture(scope="module")
def example():
    audio = {name: example_audio(name) for name in ("mixture", "piano", "bass", "drums")}
    return {"rate": audio["mixture"][1], **{name: torch.from_numpy(a) for name, (a, _) in audio.items()}}


@pytest.fixture(scope="module")
def prior():
    return NMFPrior(load_settings().nmf)


@pytest.fixture(scope="module")
def fitted(example, prior):
    """The default factorisation of the example, each component's owner (index into piano, bass, drums) and energy."""
    state = prior.fit(example["mixture"], example["rate"], 2, seed=0)
    s = prior.settings
    owned = torch.stack([prior.energies(state, stft(example[name], s.n_fft, s.hop).abs())
                         for name in ("piano", "bass", "drums")])  # [3, K]
    return state, owned.argmax(dim=0), prior.energies(state)


def test_drum_components_are_transient_and_pitched_ones_are_not(example, fitted, prior):
    state, owner, energy = fitted
    burst = transience(state.factors.activations, example["rate"], prior.settings.hop)
    assert burst.shape == owner.shape and bool(((burst >= 0) & (burst <= 1)).all())
    mean = lambda mask: float((burst[mask] * energy[mask]).sum() / energy[mask].sum())
    drums, pitched = owner == 2, owner != 2
    assert drums.sum() >= 3 and pitched.sum() >= 3
    assert mean(drums) > 0.4, f"drum components: energy-weighted transience {mean(drums):.2f}"
    assert mean(pitched) < 0.2, f"piano and bass components: energy-weighted transience {mean(pitched):.2f}"


def _drums_against_the_rest(example, prior, state, percussive):
    """Warm-start drums (source 0) against one other source with tags that tell nothing apart -> drums SI-SDRi (dB)."""
    prior.warm_start(state, lambda audio, *_: torch.zeros(len(audio), 1, 2), percussive=percussive)
    stem = prior.stems(state)[0].numpy()
    return si_sdr_improvement(stem.sum(axis=0), example["drums"].numpy().sum(axis=0),
                              example["mixture"].numpy().sum(axis=0))


def test_the_warm_start_gives_a_drum_kit_its_transient_components(example, fitted, prior):
    state = fitted[0]
    neutral = _drums_against_the_rest(example, prior, state, None)
    cued = _drums_against_the_rest(example, prior, state, torch.tensor([True, False]))
    assert cued > neutral + 3.0, f"drums with the transient cue {cued:+.2f} dB, without {neutral:+.2f} dB"
    assert cued > 3.0
    # the cue belongs to the percussive source: flagging the other one hands the drums away
    other = _drums_against_the_rest(example, prior, state, torch.tensor([False, True]))
    assert other < neutral


def test_weight_zero_turns_the_cue_off(example, fitted):
    off = NMFPrior(load_settings(overrides={"nmf.transient_weight": 0}).nmf)
    state = fitted[0]
    flagged = _drums_against_the_rest(example, off, state, torch.tensor([True, False]))
    assert np.isclose(flagged, _drums_against_the_rest(example, off, state, None), atol=1e-6)


@pytest.mark.parametrize("name, percussive", [("drums", True), ("Percussion", True), ("drum", True),
                                              ("piano", False), ("bass", False), ("beat", False)])
def test_which_requested_names_are_drum_kits(name, percussive):
    assert resolve_source(name).percussive is percussive
