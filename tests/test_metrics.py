"""Separation metrics against closed-form cases and on real bench-dev audio."""

import numpy as np
import pytest
import soundfile as sf

from tagbox_pipeline.bench.metrics import mono, real_time_factor, si_sdr, si_sdr_improvement


def test_si_sdr_matches_the_closed_form_for_orthogonal_noise():
    """estimate = a·s + n with n ⟂ s: SI-SDR = 10 log10(a²|s|² / |n|²), whatever the scale a."""
    t = np.arange(4000)
    reference = np.sin(2 * np.pi * t / 40)  # whole periods: zero mean
    noise = 0.1 * np.sin(2 * np.pi * t / 20)  # orthogonal to the reference, zero mean
    for scale in (1.0, 0.3, 5.0):
        expected = 10 * np.log10(np.sum((scale * reference) ** 2) / np.sum(noise ** 2))
        assert si_sdr(scale * reference + noise, reference) == pytest.approx(expected, abs=1e-6)


def test_mixture_scores_zero_improvement_and_the_true_stem_scores_high(shared):
    folder = shared / "data" / "bench-dev" / "d01"
    read = lambda name: sf.read(folder / f"{name}.flac", dtype="float64", frames=3 * 44100)[0].T
    mix, piano = mono(read("mixture")), mono(read("piano"))
    assert si_sdr_improvement(mix, piano, mix) == pytest.approx(0.0, abs=1e-9)
    assert si_sdr_improvement(piano, piano, mix) > 60
    assert si_sdr(mix - piano, piano) < si_sdr(mix, piano)


def test_real_time_factor_is_per_source():
    assert real_time_factor(60.0, 10.0, 3) == pytest.approx(2.0)
