"""`tagbox separate --prior jukebox` end to end in a real subprocess, with the official-format random checkpoint.

A 2 s stereo 48 kHz PCM_24 file (real rendered piano left, drums right) goes through the resampling path
(48 -> 44.1 kHz into the VQ-VAE, back to 48 kHz for the masks) and two steering steps. The stems must
keep the engine's invariants, the licence notice must be printed once, and the manifest must record the
Jukebox weights' sha256.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from tagbox_pipeline.files import sha256_file
from tagbox_pipeline.priors.jukebox.checkpoint import WEIGHTS_ENV
from tagbox_pipeline.priors.jukebox.prior import LICENCE_NOTICE
from support import assert_stems_null_sum, cli_env, run_cli

DATA = Path(__file__).parent / "data"
RATE = 48000
SECONDS = 2


@pytest.fixture(scope="module")
def weights(shared: Path) -> Path:
    return shared / "reference" / "jukebox" / "vqvae_random_5b.pth.tar"


def stereo_input(folder: Path) -> Path:
    """Piano left, drums right (22.05 kHz fixtures resampled to 48 kHz), 4 s, written as 24-bit WAV."""
    channels = []
    for name in ("piano", "drums"):
        audio, native = sf.read(DATA / f"{name}.flac", dtype="float32", always_2d=True)
        channels.append(soxr.resample(audio[:, 0], native, RATE)[: SECONDS * RATE])
    path = folder / "mix48k.wav"
    sf.write(path, np.stack(channels, axis=1) * 0.8, RATE, subtype="PCM_24")
    return path


def test_separate_with_jukebox_prior_keeps_the_engine_invariants(weights: Path, tmp_path: Path) -> None:
    mix_path = stereo_input(tmp_path)
    before = sha256_file(mix_path)
    env = cli_env()
    env.pop(WEIGHTS_ENV, None)  # --weights must be what is used
    env.pop("OMP_NUM_THREADS")  # every core: the decoder is the slow part
    out = tmp_path / "out"
    result = run_cli(["separate", mix_path, "--sources", "piano", "--prior", "jukebox", "--weights", weights,
                      "--steps", "2", "--device", "cpu", "--out", out], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(LICENCE_NOTICE) == 1, result.stderr
    assert "may not be used commercially" in result.stderr

    track = out / "mix48k"
    assert sorted(p.name for p in track.iterdir()) == ["manifest.json", "piano.wav", "residual.wav"]
    mix = assert_stems_null_sum(track, mix_path, ["piano", "residual"], RATE, 2, "PCM_24")
    piano = sf.read(track / "piano.wav", dtype="float64", always_2d=True)[0]
    assert 0 < np.sum(piano ** 2) < np.sum(mix ** 2), "the stem holds part of the mixture, not none or all"
    assert sha256_file(mix_path) == before, "input unchanged"

    manifest = json.loads((track / "manifest.json").read_text())
    assert manifest["models"]["prior"] == "jukebox"
    assert manifest["weights_sha256"]["jukebox-5b-vqvae"] == sha256_file(weights)
    assert manifest["settings"]["prior"] == "jukebox" and manifest["settings"]["steps"] == 2
    assert manifest["input"]["sha256"] == before
