"""``--sources auto``: the instruments of a real mix are detected, get their stems, and are named
in the manifest with their evidence; a request where nothing is detected fails naming the file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tagbox_pipeline.audio_io import ArraySamples
from tagbox_pipeline.config import load_settings
from tagbox_pipeline.detection import detect_sources
from tagbox_pipeline.errors import UserError
from tagbox_pipeline.files import sha256_file
from tagbox_pipeline.pipeline.sweep import up_to_date
from tagbox_pipeline.separation import Separator, separate_file
from tagbox_pipeline.track_plan import plan_chunks
from support import FAST_TOML, assert_stems_null_sum, run_cli, write_toml

#: the suite's cheap settings with the offline taggers detection reads (and no sota weights)
CHEAP_TOML = FAST_TOML.replace('taggers = ["musicnn-mtat"]', 'taggers = ["MTT_musicnn", "spectral"]')


@pytest.fixture(scope="module")
def song(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bench-dev d05 (synth, piano, bass, drums): its first 6 s as a 24-bit WAV."""
    audio, rate = sf.read(shared / "data" / "bench-dev" / "d05" / "mixture.flac", frames=6 * 44100)
    path = tmp_path_factory.mktemp("auto") / "song.wav"
    sf.write(path, audio, rate, subtype="PCM_24")
    return path


@pytest.fixture(scope="module")
def auto_run(song: Path, tmp_path_factory: pytest.TempPathFactory):
    """`tagbox separate song.wav --sources auto` with cheap settings: (process, stem folder, config)."""
    assert "MTT_musicnn" in CHEAP_TOML, "FAST_TOML no longer names the tagger replaced above"
    root = tmp_path_factory.mktemp("auto-run")
    config = write_toml(root / "cheap.toml", CHEAP_TOML)
    done = run_cli(["separate", song, "--sources", "auto", "--out", root / "out", "--config", config])
    return done, root / "out" / "song", config


def test_auto_writes_a_stem_for_every_detected_instrument_with_its_evidence(song: Path, auto_run) -> None:
    done, folder, config = auto_run
    assert done.returncode == 0, done.stderr
    manifest = json.loads((folder / "manifest.json").read_text())
    detected = manifest["detected"]
    settings = load_settings(config)
    assert detected and list(detected) == list(manifest["sources"]), manifest["sources"]
    assert set(detected) <= set(settings.rivals.candidates)
    assert all(p >= settings.detection.threshold for p in detected.values())
    assert set(detected) & {"synth", "piano", "bass", "drums"}, f"d05 plays none of {detected}"
    # the manifest's keys are sorted (as every JSON the pipeline writes); the log names them most probable first
    line = next(line for line in done.stderr.splitlines() if line.startswith(f"{song}: detected "))
    logged = re.findall(r"(\w+) \(p ([0-9.]+)\)", line.split(": detected ", 1)[1])
    assert [name for name, _ in logged] == sorted(detected, key=detected.get, reverse=True), line
    assert [float(p) for _, p in logged] == pytest.approx(sorted(detected.values(), reverse=True), abs=0.005)
    info = sf.info(song)
    assert_stems_null_sum(folder, song, [*detected, "residual"], info.samplerate, info.channels, "PCM_24")


def test_stems_are_up_to_date_only_for_the_sources_they_were_asked_for(song: Path, auto_run, tmp_path: Path
                                                                      ) -> None:
    """The sweep's skip check: a folder made for other sources (or by detection) is not up to date."""
    _, folder, config = auto_run
    settings = load_settings(config)
    digest, sha256 = settings.digest(), sha256_file(song)
    detected = list(json.loads((folder / "manifest.json").read_text())["detected"])
    assert up_to_date(folder, sha256, digest, ["auto"])
    assert not up_to_date(folder, sha256, digest, detected), "named sources are not a detection"
    named = separate_file(song, tmp_path, ["piano", "drums"], settings).folder
    assert up_to_date(named, sha256, digest, ["piano", "drums"]) and up_to_date(named, sha256, digest,
                                                                                 ["drums", "piano"])
    for other in (["piano"], ["piano", "drums", "bass"], ["auto"]):
        assert not up_to_date(named, sha256, digest, other), other


def test_in_memory_auto_separates_what_detection_finds(song: Path) -> None:
    settings = load_settings(None, {"taggers": ["MTT_musicnn", "spectral"], "nmf.components": 8,
                                    "nmf.nmf_iterations": 10})
    audio, rate = sf.read(song, dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(audio.T)
    separator = Separator(settings)
    found = detect_sources(ArraySamples(audio), plan_chunks(audio.shape[1], rate, settings), rate,
                           separator.models.taggers, separator.models.only, settings)
    stems = separator.separate(audio, rate, ["auto"])
    assert list(stems.sources) == list(found)
    assert np.allclose(sum(stems.sources.values()) + stems.residual, audio, atol=1e-5)


def test_nothing_detected_fails_naming_the_file_and_writes_nothing(song: Path, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "strict.toml", CHEAP_TOML + "[detection]\nthreshold = 1.0\n")
    done = run_cli(["separate", song, "--sources", "auto", "--out", tmp_path / "out", "--config", config])
    assert done.returncode == 1, done.stderr
    assert f"failed: {song}: --sources auto: no instrument detected" in done.stderr, done.stderr
    assert "most probable: " in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "song").exists()


def test_auto_is_not_combined_with_names(song: Path, tmp_path: Path) -> None:
    done = run_cli(["separate", song, "--sources", "auto,drums", "--out", tmp_path / "out"])
    assert done.returncode == 2 and "'auto' detects the sources" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="cannot be combined"):
        Separator(load_settings()).separate(np.zeros((1, 44100), np.float32), 44100, ["auto", "piano"])
