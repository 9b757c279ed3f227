"""Our Jukebox 5b VQ-VAE against goldens made by OpenAI's own code with an official-format random checkpoint.

The goldens were produced on this CPU with torch's default of 2 threads; oneDNN's float32 convolutions
round differently with 1 thread (≈1e-7 on latents), which flips 6 of 10,752 codes whose two nearest
codebook entries are within ≈2e-6 in squared distance (checked: the golden latents through our
quantiser give the golden codes exactly). So the encoding test runs with 2 threads, like the goldens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tagbox_pipeline.priors.jukebox import load_vqvae
from tagbox_pipeline.priors.jukebox.quantiser import nearest_codes, straight_through

LEVELS = [0, 1, 2]


@pytest.fixture(scope="module")
def reference(shared: Path) -> Path:
    return shared / "reference" / "jukebox"


@pytest.fixture(scope="module")
def goldens(reference: Path) -> dict[str, np.ndarray]:
    with np.load(reference / "goldens.npz") as data:
        return dict(data)


@pytest.fixture(scope="module")
def vqvae(reference: Path):
    return load_vqvae(reference / "vqvae_random_5b.pth.tar")


@pytest.fixture()
def two_threads():
    """The thread count the goldens were made with (see module docstring)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("level", LEVELS)
def test_encoding_reproduces_golden_codes_and_latents(vqvae, goldens, level: int, two_threads) -> None:
    audio = torch.from_numpy(goldens["x"])[:, :, 0]
    with torch.no_grad():
        latents = vqvae.latents(audio, level)
        codes = vqvae.encode(audio, level)
    assert vqvae.config.hop(level) == goldens["hop_lengths"][level]
    assert latents.shape == goldens[f"xs_{level}"].shape
    assert torch.allclose(latents, torch.from_numpy(goldens[f"xs_{level}"]), rtol=0, atol=1e-5)
    golden_codes = goldens[f"zs_{level}"]
    flipped = np.flatnonzero(codes.numpy() != golden_codes)
    assert flipped.size == 0, f"level {level}: {flipped.size} codes differ, first frames {flipped[:5]}"


@pytest.mark.parametrize("level", LEVELS)
def test_golden_latents_quantise_to_golden_codes_and_codebook_vectors(vqvae, goldens, level: int) -> None:
    """Our quantiser alone (no convolutions involved): exact on the golden latents at any thread count."""
    latents = torch.from_numpy(goldens[f"xs_{level}"])
    codes = nearest_codes(latents, vqvae.codebook(level))
    assert np.array_equal(codes.numpy(), goldens[f"zs_{level}"])
    quantised = straight_through(latents, vqvae.codebook(level))
    assert torch.allclose(quantised, torch.from_numpy(goldens[f"xq_{level}"]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("level", LEVELS)
def test_decoding_golden_codes_matches_golden_audio(vqvae, goldens, level: int) -> None:
    with torch.no_grad():
        audio = vqvae.decode(torch.from_numpy(goldens[f"zs_{level}"]), level)
    golden = torch.from_numpy(goldens[f"y_{level}"])[:, :, 0]
    assert audio.shape == golden.shape
    error = (audio - golden).abs().max().item()
    assert error <= 1e-5, f"level {level}: max abs error {error:.2e}"


def test_lengths_floor_per_level_like_the_original(vqvae) -> None:
    """T = 1000 gives 125/31/7 frames and 1000/992/896 samples (README facts of the original)."""
    audio = torch.zeros(1, 1000)
    with torch.no_grad():
        frames = [vqvae.latents(audio, level).shape[-1] for level in LEVELS]
        samples = [vqvae.decode(vqvae.encode(audio, level), level).shape[-1] for level in LEVELS]
    assert frames == [125, 31, 7] and samples == [1000, 992, 896]


def test_model_is_frozen_and_stays_in_eval_mode(vqvae) -> None:
    vqvae.train()
    assert not vqvae.training and not any(m.training for m in vqvae.modules())
    assert not any(p.requires_grad for p in vqvae.parameters())
    assert {name for name, _ in vqvae.named_buffers()} == {f"bottleneck.level_blocks.{i}.k" for i in LEVELS}
