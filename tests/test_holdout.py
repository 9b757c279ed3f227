"""The held-out bench set: one clip rendered for real with fluidsynth, read back like bench-dev."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tagbox_pipeline.bench import holdout
from tagbox_pipeline.bench.separation import load_clips

#: four sources, drums among them, every one panned off the centre
CLIP = "h03"


def _missing() -> str | None:
    """Why the set cannot be rendered here, or None."""
    if shutil.which("fluidsynth") is None:
        return "fluidsynth is not installed (apt-get install fluidsynth)"
    for module in ("music21", "mido"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install {module})"
    try:
        holdout.find_soundfont()
    except RuntimeError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    return holdout.render_holdout(tmp_path_factory.mktemp("holdout") / "set", ids=[CLIP])


@pytest.fixture(scope="module")
def entry(folder: Path) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["set"] == "holdout" and [c["id"] for c in manifest["clips"]] == [CLIP]
    return manifest["clips"][0]


def _read(folder: Path, name: str) -> np.ndarray:
    """A clip file as float64 ``[channels, samples]``."""
    return sf.read(folder / CLIP / f"{name}.flac", dtype="float64", always_2d=True)[0].T


def test_every_file_is_10_s_of_44_1_khz_stereo_pcm_24(folder: Path, entry: dict):
    names = [s["name"] for s in entry["sources"]]
    assert sorted(names) == ["bass", "drums", "harpsichord", "violin"]
    for name in ["mixture", *names]:
        info = sf.info(str(folder / CLIP / f"{name}.flac"))
        assert (info.frames, info.channels, info.samplerate, info.subtype) == (441000, 2, 44100, "PCM_24"), name


def test_mixture_is_the_sum_of_the_decoded_stems(folder: Path, entry: dict):
    stems = np.sum([_read(folder, s["name"]) for s in entry["sources"]], axis=0)
    assert np.abs(_read(folder, "mixture") - stems).max() <= 1e-6
    assert entry["mixture_minus_stem_sum_max_abs"] <= 1e-6
    assert entry["mixture_peak_dbfs"] == pytest.approx(-1.0, abs=0.01)


def test_drums_are_not_silent_and_no_stem_is_buried(folder: Path, entry: dict):
    assert np.abs(_read(folder, "drums")).max() > 0.1
    levels = [s["rms_dbfs"] for s in entry["sources"]]
    assert max(levels) - min(levels) < 10


def test_each_stem_is_louder_on_its_manifest_side(folder: Path, entry: dict):
    for source in entry["sources"]:
        assert source["pan"] != 0
        left, right = np.sqrt(np.mean(_read(folder, source["name"]) ** 2, axis=1))
        assert (right > left) == (source["pan"] > 0), source["name"]


def test_load_clips_reads_the_set_and_a_second_render_is_skipped(folder: Path, entry: dict):
    (clip,) = load_clips(folder)
    assert clip.id == CLIP and clip.sample_rate == 44100 and clip.mixture.shape == (2, 441000)
    assert clip.sources == [s["name"] for s in entry["sources"]]
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert holdout.render_holdout(folder, ids=[CLIP]) == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp
