"""The weight-free drum detector: the percussive share of a mixture's energy finds the drum kit that
the offline taggers barely hear, for a single request's rivals and for ``--sources auto``.

Real audio: the bundled example (``examples/demo/``: piano, bass and drums with their true stems;
no ``../shared`` needed), with and without its drums.
"""

import pytest
import torch

from tagbox_pipeline.audio_io import ArraySamples
from tagbox_pipeline.config import load_settings
from tagbox_pipeline.detection import detect_sources
from tagbox_pipeline.percussive import percussive_share
from tagbox_pipeline.priors.nmf import NMFPrior
from tagbox_pipeline.rivals import find_rivals
from tagbox_pipeline.separation import Separator
from tagbox_pipeline.track_plan import plan_chunks
from support import example_audio

MIXTURE, RATE = example_audio("mixture")


@pytest.fixture(scope="module")
def mixes() -> dict[str, torch.Tensor]:
    """Mono mixtures of the example ``[samples]``: as it is, without its drums, and the drums alone."""
    piano, bass, drums = (torch.from_numpy(example_audio(name)[0]).mean(dim=0) for name in ("piano", "bass", "drums"))
    return {"with drums": torch.from_numpy(MIXTURE).mean(dim=0), "without drums": piano + bass, "drums": drums}


@pytest.fixture(scope="module")
def separator() -> Separator:
    return Separator(load_settings())


def test_the_share_tells_a_mix_with_drums_from_one_without(mixes):
    threshold = load_settings().rivals.percussive_share
    share = {name: percussive_share(audio, RATE) for name, audio in mixes.items()}
    assert share["without drums"] < threshold < share["with drums"] < share["drums"], share
    assert share["without drums"] < 0.15 and share["with drums"] > 0.25, share
    assert percussive_share(torch.zeros(RATE), RATE) == 0.0


def test_a_drum_kit_the_tags_miss_is_a_rival_of_a_single_request(mixes, separator):
    models, settings = separator.models, load_settings()
    rivals = find_rivals(mixes["with drums"], RATE, ["piano"], models.taggers, models.only, settings.rivals)
    share = percussive_share(mixes["with drums"], RATE)
    assert rivals.get("drums") == pytest.approx(share, abs=1e-4), rivals
    tags_only = load_settings(overrides={"rivals.percussive_share": 1.0}).rivals
    by_tags = find_rivals(mixes["with drums"], RATE, ["piano"], models.taggers, models.only, tags_only)
    assert by_tags.get("drums", 0.0) < settings.rivals.percussive_share, f"the tags alone hear the drums: {by_tags}"
    without = find_rivals(mixes["without drums"], RATE, ["piano"], models.taggers, models.only, settings.rivals)
    assert "drums" not in without, without


def test_auto_detection_finds_the_drums(mixes, separator):
    settings = load_settings()
    found = detect_sources(ArraySamples(MIXTURE), plan_chunks(MIXTURE.shape[1], RATE, settings), RATE,
                           separator.models.taggers, separator.models.only, settings)
    assert "drums" in found and found["drums"] >= settings.rivals.percussive_share, found


def test_the_drums_keep_random_starts_in_the_ntf(mixes):
    """By default ("auto") the NTF starts K × (1 − percussive share) spectra pitched: nearly all of them
    without the drums, about a third fewer with them, a handful on the drums alone."""
    prior = NMFPrior(load_settings().nmf)
    k = prior.settings.components
    stereo = {name: torch.stack([audio, audio]) for name, audio in mixes.items()}
    pitched = {name: prior.pitched_count(audio, RATE) for name, audio in stereo.items()}
    assert pitched["drums"] < pitched["with drums"] < pitched["without drums"] <= k, pitched
    assert pitched["without drums"] >= 0.85 * k and pitched["with drums"] <= 0.75 * k, pitched
    fixed = NMFPrior(load_settings(overrides={"nmf.pitched_start": 48}).nmf)
    assert fixed.pitched_count(stereo["drums"], RATE) == k
