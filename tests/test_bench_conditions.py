"""The quality bench's set variants (issue 12): the studio remix and the mono fold of a clip."""

import math

import numpy as np

from tagbox_pipeline.bench.conditions import mono_fold, pan, studio, studio_pans
from tagbox_pipeline.bench.separation import Clip

RATE = 44100


def clip(sources: list[str]) -> Clip:
    """A 2 s stereo clip: one decaying tone per source, each at its own wide position."""
    t = np.arange(2 * RATE) / RATE
    stems = {}
    for i, source in enumerate(sources):
        tone = (np.sin(2 * np.pi * 110 * (i + 1) * t) * np.exp(-t)).astype(np.float32)
        stems[source] = np.stack([tone * (i % 2), tone * (1 - i % 2)]).astype(np.float32)
    return Clip("c", RATE, np.sum(list(stems.values()), axis=0), stems)


def test_studio_pans_follow_the_recipe():
    assert studio_pans(["flute", "guitar", "bass"]) == {"flute": 0.1, "guitar": -0.35, "bass": 0.0}
    assert studio_pans(["choir", "guitar", "bass", "drums"]) == {"choir": 0.0, "guitar": -0.35, "bass": 0.0,
                                                                  "drums": 0.0}
    assert studio_pans(["synth", "piano", "bass", "drums"]) == {"synth": 0.1, "piano": -0.35, "bass": 0.0,
                                                                 "drums": 0.0}
    assert studio_pans(["violin", "harpsichord", "cello"])["cello"] == 0.35


def test_constant_power_pan_keeps_the_centre_at_unity_and_the_power():
    tone = np.ones(4)
    assert np.allclose(pan(tone, 0.0), 1.0)
    for position in (-0.35, 0.1, 0.6):
        left, right = pan(tone, position)[:, 0]
        assert math.isclose(left ** 2 + right ** 2, 2.0)
        assert (right > left) == (position > 0)


def test_studio_mixture_is_the_sum_of_its_stems_with_reverb_on_all_but_bass_and_drums():
    original = clip(["piano", "bass", "drums"])
    remix = studio(original)
    assert np.allclose(remix.mixture, sum(remix.stems.values()), atol=1e-6)
    for source in ("bass", "drums"):  # dry: exactly the panned, scaled mono fold
        dry = 0.7 * pan(original.stems[source].mean(axis=0), 0.0)
        assert np.allclose(remix.stems[source], dry, atol=1e-6)
    piano = 0.7 * pan(original.stems["piano"].mean(axis=0), 0.1)
    tail = remix.stems["piano"] - piano
    assert np.abs(tail).max() > 1e-3  # the reverb send is there, in the piano's own stem


def test_mono_fold_puts_the_same_signal_on_both_channels():
    folded = mono_fold(clip(["flute", "guitar"]))
    for stem in folded.stems.values():
        assert np.array_equal(stem[0], stem[1])
    assert np.allclose(folded.mixture, sum(folded.stems.values()), atol=1e-6)
