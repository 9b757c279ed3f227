"""The Jukebox prior on real audio with the official-format random checkpoint: frozen weights, our own
straight-through step, only the steered level decoded, competitive masks on every channel at the input rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from tagbox_pipeline import steering
from tagbox_pipeline.config import load_settings
from tagbox_pipeline.priors.jukebox import JukeboxPrior, load_vqvae
from tagbox_pipeline.priors.jukebox.vqvae import JukeboxVQVAE

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def weights(shared: Path) -> Path:
    return shared / "reference" / "jukebox" / "vqvae_random_5b.pth.tar"


@pytest.fixture(scope="module")
def vqvae(weights: Path) -> JukeboxVQVAE:
    return load_vqvae(weights)


def stereo_mix(rate: int, seconds: float, silent_right: bool = False) -> torch.Tensor:
    """Real rendered audio: piano left, drums right (both 22.05 kHz fixtures resampled to ``rate``)."""
    channels = []
    for name in ("piano", "drums"):
        audio, native = sf.read(DATA / f"{name}.flac", dtype="float32", always_2d=True)
        channels.append(soxr.resample(audio[:, 0], native, rate)[: int(seconds * rate)])
    if silent_right:
        channels[1] = np.zeros_like(channels[1])
    return torch.from_numpy(np.stack(channels).astype(np.float32))


def prior_for(vqvae: JukeboxVQVAE, **jukebox) -> JukeboxPrior:
    return JukeboxPrior(vqvae, load_settings(None, {f"jukebox.{k}": v for k, v in jukebox.items()}).jukebox)


def test_steering_run_leaves_weights_and_codebooks_bit_identical(weights: Path) -> None:
    settings = load_settings(None, {"prior": "jukebox", "jukebox.weights": str(weights), "steps": 2,
                                    "taggers": ["musicnn-mtat"], "device": "cpu"})
    models = steering.load_models(settings, "cpu")
    model = models.prior.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mix = stereo_mix(44100, 1.5)
    state = models.prior.fit(mix, 44100, 2)
    start = [lat.detach().clone() for lat in state.latents]
    result = steering.separate_chunk(mix, 44100, ["piano", "drums"], settings, models, seed=0)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a weight or codebook changed"
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert result.stems.shape == (2, 2, mix.shape[-1]) and torch.isfinite(result.stems).all()
    # and the same run really steered: Adam at lr 10 moved the latents (checked on a fresh fit + 2 steps)
    optimiser = torch.optim.Adam(state.latents, lr=10.0)
    for _ in range(2):
        optimiser.zero_grad()
        models.prior.estimates(state).pow(2).sum().backward()
        optimiser.step()
    assert all((lat.detach() - s).abs().max() > 1.0 for lat, s in zip(state.latents, start))
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_gradient_reaches_the_latents_only(vqvae: JukeboxVQVAE) -> None:
    prior = prior_for(vqvae)
    state = prior.fit(stereo_mix(44100, 0.5), 44100, 3)
    estimates = prior.estimates(state)
    assert estimates.shape == (3, 22050)
    estimates.pow(2).sum().backward()
    (latents,) = state.latents
    assert latents.shape == (3, 64, -(-22050 // 8)) and latents.grad is not None and latents.grad.abs().sum() > 0
    assert all(p.grad is None for p in vqvae.parameters())


def test_only_the_steered_level_is_encoded_and_decoded(vqvae: JukeboxVQVAE) -> None:
    calls: list[str] = []
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: calls.append(name))
             for name, module in [*((f"encoder{i}", e) for i, e in enumerate(vqvae.encoders)),
                                  *((f"decoder{i}", d) for i, d in enumerate(vqvae.decoders))]]
    try:
        prior = prior_for(vqvae, levels=[1])
        state = prior.fit(stereo_mix(44100, 0.5), 44100, 2)
        estimates, stems = prior.estimates(state), prior.stems(state)
        final = prior.final(state)  # what a chunk ends with: both from one decode
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == ["encoder1", "decoder1", "decoder1", "decoder1"]
    assert torch.equal(final[0], estimates.detach()) and torch.equal(final[1], stems)
    assert state.latents[0].shape == (2, 64, -(-22050 // 32))  # padded up to whole frames


def test_stems_keep_the_input_rate_and_channels_and_compete(vqvae: JukeboxVQVAE) -> None:
    mix = stereo_mix(48000, 1.0, silent_right=True)
    prior = prior_for(vqvae)
    state = prior.fit(mix, 48000, 2)
    with torch.no_grad():
        for latents in state.latents:  # make the two sources' decodings differ
            latents[1] *= 0.5
        masks = prior.masks(state, prior.decoded(state))
        stems = prior.stems(state)
    assert set(masks) == {2048, 1024, 512}
    assert all(float(m.sum(dim=0).max()) <= 1 + 1e-6 and float(m.min()) >= 0 for m in masks.values())
    assert stems.shape == (2, 2, 48000) and stems.dtype == torch.float32
    assert float(stems[:, 1].abs().max()) == 0.0, "masks act per channel: a silent channel stays silent"
    energy = stems[:, 0].pow(2).sum(dim=-1) / mix[0].pow(2).sum()
    assert (energy > 0).all() and float(energy.sum()) < 1.0 and not torch.allclose(stems[0], stems[1])


def test_reference_faithful_masks_the_reconstruction_and_steers_with_the_seed_loss(weights: Path) -> None:
    settings = load_settings(None, {"prior": "jukebox", "jukebox.weights": str(weights), "steps": 1,
                                    "taggers": ["musicnn-mtat"], "jukebox.reference_faithful": True,
                                    "jukebox.levels": [2]})
    models = steering.load_models(settings, "cpu")
    prior = models.prior
    mix = 0.25 * stereo_mix(22050, 1.0)
    state = prior.fit(mix, 22050, 1)
    assert prior.levels == [0] and state.scale == pytest.approx(1 / float(mix.mean(dim=0).abs().max()))
    assert state.reference is not None and state.reference.shape == (44100,)
    before = {k: v.clone() for k, v in prior.model.state_dict().items()}
    result = steering.separate_chunk(mix, 22050, ["piano"], settings, models, seed=0)
    assert result.stems.shape == (1, 2, 22050) and torch.equal(result.stems[:, 0], result.stems[:, 1])
    assert all(torch.equal(v, prior.model.state_dict()[k]) for k, v in before.items())
    assert 0 < result.report["piano"]["p_tag"] < 1


@pytest.mark.gpu
def test_cuda_batch_with_bf16_autocast_matches_cpu(vqvae: JukeboxVQVAE, weights: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (none here)")
    mix = stereo_mix(44100, 1.0)
    cpu = prior_for(vqvae)
    gpu = prior_for(load_vqvae(weights, "cuda"), autocast="bf16")
    state_cpu, state_gpu = cpu.fit(mix, 44100, 3), gpu.fit(mix.cuda(), 44100, 3)
    estimates = gpu.estimates(state_gpu)
    assert estimates.device.type == "cuda" and estimates.dtype == torch.float32 and estimates.shape == (3, 44100)
    estimates.sum().backward()
    assert state_gpu.latents[0].grad is not None
    with torch.no_grad():
        reference = cpu.stems(state_cpu)
        error = (gpu.stems(state_gpu).cpu() - reference).abs().max() / reference.abs().max().clamp_min(1e-12)
    assert float(error) < 0.05
