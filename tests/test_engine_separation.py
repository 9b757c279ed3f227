"""The separation engine end to end on real rendered audio: files in, stem folders out."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch


from tagbox_pipeline.audio_io import read_block
from tagbox_pipeline.config import Settings, load_settings
from tagbox_pipeline.errors import AudioReadError, UserError
from tagbox_pipeline.files import sha256_file
from tagbox_pipeline.files import default_mode
from tagbox_pipeline.publish import publish_track
from tagbox_pipeline.separation import Separator, separate_file
from tagbox_pipeline.track_plan import plan_track
from support import assert_stems_null_sum, peak_rss_mib, run_cli

SOURCES = ["drums", "piano"]
#: cheap steering: short windows (several chunks per clip), a small factorisation, warm start only
CHEAP = {"steps": 0, "taggers": ["musicnn-mtat"], "device": "cpu", "chunk.window_seconds": 1.5,
         "chunk.overlap_seconds": 0.25, "chunk.margin_seconds": 0.25, "nmf.components": 4, "nmf.nmf_iterations": 10}


def fast_settings(**overrides) -> Settings:
    """Cheap settings: short windows (several chunks per clip) and few steps."""
    return load_settings(None, {**CHEAP, **overrides})


@pytest.fixture(scope="module")
def clip(shared: Path) -> tuple[np.ndarray, int]:
    """bench-dev d05 (bass, drums, piano, synth): first 6 s, 44.1 kHz stereo float32 [channels, n]."""
    audio, rate = sf.read(shared / "data" / "bench-dev" / "d05" / "mixture.flac", dtype="float32",
                          always_2d=True, frames=6 * 44100)
    return np.ascontiguousarray(audio.T), rate


def write_input(folder: Path, name: str, audio: np.ndarray, rate: int, new_rate: int, channels: int,
                subtype: str) -> Path:
    """A test input made from real audio: resampled, down/up-mixed to ``channels``, stored as ``subtype``."""
    data = soxr.resample(audio.T, rate, new_rate) if new_rate != rate else audio.T
    if channels == 1:
        data = data.mean(axis=1, keepdims=True)
    elif channels > 2:  # surround-like: L, R, centre, LFE (low-passed mid), and delayed copies
        mid = data.mean(axis=1)
        lfe = np.convolve(mid, np.ones(64) / 64, mode="same")
        extra = [np.roll(data[:, 0], 441), np.roll(data[:, 1], 882)]
        data = np.stack([data[:, 0], data[:, 1], mid, lfe, *extra][:channels], axis=1) * 0.8
    path = folder / name
    sf.write(path, data, new_rate, subtype=subtype)
    return path


@pytest.mark.parametrize(("name", "new_rate", "channels", "subtype", "stored"), [
    ("cd.wav", 44100, 2, "PCM_16", "PCM_16"),
    ("studio.wav", 48000, 2, "PCM_24", "PCM_24"),
    ("mono.wav", 22050, 1, "FLOAT", "FLOAT"),
    ("surround.wav", 44100, 6, "PCM_24", "PCM_24"),
    ("lossless.flac", 44100, 2, "PCM_16", "PCM_24"),
])
def test_stems_keep_rate_channels_length_depth_and_null_sum(clip, tmp_path: Path, name: str, new_rate: int,
                                                           channels: int, subtype: str, stored: str) -> None:
    audio, rate = clip
    path = write_input(tmp_path, name, audio[:, : 2 * rate], rate, new_rate, channels, subtype)
    before = sha256_file(path)
    published = separate_file(path, tmp_path / "out", SOURCES, fast_settings())
    manifest, track = published.manifest, tmp_path / "out" / Path(name).stem
    assert published.folder == track and published.files == [track / f"{s}.wav" for s in [*SOURCES, "residual"]]
    assert sorted(p.name for p in track.iterdir()) == ["drums.wav", "manifest.json", "piano.wav", "residual.wav"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [track.name], "no staging folder left"
    modes = {p.name: p.stat().st_mode & 0o777 for p in [track, *track.iterdir()]}
    assert modes == {p.name: default_mode(p.is_dir()) for p in [track, *track.iterdir()]}, \
        "folder and files get the umask's modes like any plain write (not tempfile's private 0700/0600)"
    mix = assert_stems_null_sum(track, path, ["drums", "piano", "residual"], new_rate, channels, stored)
    drums = sf.read(track / "drums.wav", dtype="float64", always_2d=True)[0]
    assert 1e-4 < np.sum(drums ** 2) / np.sum(mix ** 2) < 1.0, "a stem holds part of the mixture, not all"
    assert sha256_file(path) == before, "input unchanged"
    assert manifest == json.loads((track / "manifest.json").read_text())
    assert manifest["input"]["sha256"] == before and manifest["output"]["subtype"] == stored
    assert len(manifest["chunks"]) >= 2 and manifest["chunks"][-1]["stop_s"] == pytest.approx(2.0, abs=1e-3)
    assert set(manifest["sources"]) == set(SOURCES) and manifest["settings"]["steps"] == 0
    assert "musicnn-mtat:drums" in manifest["sources"]["drums"] and manifest["models"]["taggers"] == ["musicnn-mtat"]
    assert len(manifest["weights_sha256"]["musicnn-mtat"]) == 64
    assert all(0 <= c["report"]["piano"]["p_tag"] <= 1 and c["report"]["piano"]["seconds"] >= 0
               for c in manifest["chunks"])
    assert set(manifest["versions"]) >= {"tagbox", "torch", "numpy", "prefect"}
    assert manifest["kind"] == "tagbox-stems" and manifest["post"] == {} and manifest["raw_dir"] is None


def test_flac_output_format(clip, tmp_path: Path) -> None:
    audio, rate = clip
    path = write_input(tmp_path, "in.wav", audio[:, : 2 * rate], rate, rate, 2, "FLOAT")
    separate_file(path, tmp_path / "out", SOURCES, fast_settings(format="flac"))
    for stem in ["drums", "piano", "residual"]:
        assert sf.info(tmp_path / "out" / "in" / f"{stem}.flac").subtype == "PCM_24"


def test_same_seed_same_stems_weights_unchanged_and_phases_match_separate_file(clip, tmp_path: Path) -> None:
    audio, rate = clip
    path = write_input(tmp_path, "song.wav", audio[:, : 2 * rate], rate, rate, 2, "PCM_16")
    settings = fast_settings(seed=3, steps=1)
    separator = Separator(settings)
    taggers = separator.models.taggers
    weights = {f"{t.name}.{k}": v.clone() for t in taggers for k, v in t.state_dict().items()}
    separate_file(path, tmp_path / "a", SOURCES, settings)
    plan = separator.plan(path, SOURCES)
    publish_track(plan, (separator.run_chunk(plan, i) for i in range(len(plan.chunks))), tmp_path / "b" / "song",
                  separator.models)
    assert all(torch.equal(v, weights[f"{t.name}.{k}"]) for t in taggers for k, v in t.state_dict().items()), \
        "tagger weights unchanged by steering"
    for stem in ["drums.wav", "piano.wav", "residual.wav"]:
        assert sha256_file(tmp_path / "a" / "song" / stem) == sha256_file(tmp_path / "b" / "song" / stem)


def test_in_memory_separate_matches_shapes_and_sums(clip) -> None:
    audio, rate = clip
    separator = Separator(fast_settings())
    for data in [audio[:, : 2 * rate], audio[:1, : 2 * rate], np.zeros((2, rate // 2), dtype=np.float32)]:
        stems = separator.separate(data, rate, SOURCES)
        assert set(stems.sources) == set(SOURCES)
        for name in [*SOURCES, "residual"]:
            assert stems[name].shape == data.shape and np.isfinite(stems[name]).all()
        total = stems["drums"] + stems["piano"] + stems["residual"]
        assert np.abs(total - data).max() <= 1e-6
    assert np.abs(stems["drums"]).max() == 0.0, "silence in, silence out"


def test_silent_short_input_gives_quiet_finite_stems(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((int(0.5 * 44100), 2)), 44100, subtype="PCM_16")
    separate_file(path, tmp_path / "out", SOURCES, fast_settings())
    for stem in ["drums", "piano", "residual"]:
        data = sf.read(tmp_path / "out" / "silence" / f"{stem}.wav")[0]
        assert data.shape == (int(0.5 * 44100), 2) and np.abs(data).max() == 0.0


def test_bad_input_and_bad_source_fail_before_any_output(tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioReadError, match="broken.wav"):
        separate_file(broken, tmp_path / "out", SOURCES, fast_settings())
    with pytest.raises(UserError, match="kazoo"):
        separate_file(broken, tmp_path / "out", ["kazoo"], fast_settings())
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_ours_is_never_replaced(clip, tmp_path: Path) -> None:
    """The input's own folder, and a user's folder of the track's name, are left alone: stems go to `name (n)`."""
    audio, rate = clip
    home = tmp_path / "out" / "song"
    home.mkdir(parents=True)
    path = write_input(home, "song.wav", audio[:, :rate], rate, rate, 2, "PCM_16")
    (home / "my_bounce.wav").write_bytes(path.read_bytes())
    before = {p.name: sha256_file(p) for p in home.iterdir()}
    published = separate_file(path, tmp_path / "out", SOURCES, fast_settings())
    assert published.folder == tmp_path / "out" / "song (1)"
    assert {p.name: sha256_file(p) for p in home.iterdir()} == before, "the user's folder is untouched"
    again = separate_file(path, tmp_path / "out", SOURCES, fast_settings())
    assert again.folder == published.folder, "our own stem folder of that name is replaced"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["song", "song (1)"]


def test_chunk_reads_only_its_region(clip, tmp_path: Path) -> None:
    audio, rate = clip
    path = write_input(tmp_path, "song.wav", audio, rate, rate, 2, "PCM_24")
    plan = plan_track(path, SOURCES, fast_settings())
    chunk = plan.chunks[1]
    assert 0 < chunk.read_start and chunk.read_stop < plan.info.frames
    assert read_block(path, chunk.read_start, chunk.read_stop).shape == (2, chunk.read_stop - chunk.read_start)


def tagbox(*args: str | Path, cwd: Path, measure: bool = False) -> subprocess.CompletedProcess:
    """Run `tagbox ARGS...` in a subprocess from ``cwd``; returns its exit code and output."""
    return run_cli(list(args), cwd=cwd, timeout=900, measure=measure)


CHEAP_TOML = """steps = 0
taggers = ["musicnn-mtat"]
device = "cpu"
[nmf]
components = 4
nmf_iterations = 10
[chunk]
window_seconds = 1.5
overlap_seconds = 0.25
margin_seconds = 0.25
"""


def test_cli_several_inputs_one_bad_exit_1_with_summary(clip, tmp_path: Path) -> None:
    audio, rate = clip
    good = write_input(tmp_path, "good.wav", audio[:, : 2 * rate], rate, rate, 2, "PCM_16")
    other = write_input(tmp_path, "Größe 東京.flac", audio[:, rate: 3 * rate], rate, rate, 1, "PCM_24")
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    (tmp_path / "cheap.toml").write_text(CHEAP_TOML)
    done = tagbox("separate", good, bad, other, "--sources", "drums,piano", "--out", tmp_path / "out",
                  "--config", tmp_path / "cheap.toml", "--seed", "1", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"failed: {bad}: not readable as audio" in done.stderr and "1 of 3 inputs failed" in done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Größe 東京", "good"]
    assert sf.info(tmp_path / "out" / "Größe 東京" / "piano.wav").subtype == "PCM_24"
    manifest = json.loads((tmp_path / "out" / "good" / "manifest.json").read_text())
    assert manifest["settings"]["seed"] == 1 and manifest["settings"]["chunk"]["window_seconds"] == 1.5
    again = tagbox("separate", good, "--sources", "drums,piano", "--out", tmp_path / "out", "--config",
                   tmp_path / "cheap.toml", "--format", "flac", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "good").iterdir()) == [
        "drums.flac", "manifest.json", "piano.flac", "residual.flac"], "replaced as a whole"


POST_TOML = CHEAP_TOML + """
[[post.drums]]
plugin = "Compressor"
params = { ratio = 4.0, threshold_db = -24.0 }
[[post.drums]]
plugin = "Gain"
params = { gain_db = -6.0 }
"""


def test_cli_applies_post_chains_keeps_raw_and_raw_plus_residual_null_sum(clip, tmp_path: Path) -> None:
    """`tagbox separate --config` runs the settings' post chains, exactly as the flows do (issue 15)."""
    audio, rate = clip
    song = write_input(tmp_path, "song.wav", audio[:, : 2 * rate], rate, rate, 2, "PCM_24")
    (tmp_path / "post.toml").write_text(POST_TOML)
    done = tagbox("separate", song, "--sources", "drums,piano", "--out", tmp_path / "out", "--config",
                  tmp_path / "post.toml", "--spectrograms", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    track = tmp_path / "out" / "song"
    assert sorted(p.relative_to(track).as_posix() for p in track.rglob("*")) == [
        "drums.spectrogram.png", "drums.wav", "manifest.json", "piano.spectrogram.png", "piano.wav", "raw",
        "raw/drums.wav", "residual.spectrogram.png", "residual.wav"]
    manifest = json.loads((track / "manifest.json").read_text())
    assert manifest["post"] == {"drums": ["Compressor", "Gain"]} and manifest["raw_dir"] == "raw"
    raw = sf.read(track / "raw" / "drums.wav", dtype="float64")[0]
    processed = sf.read(track / "drums.wav", dtype="float64")[0]
    assert processed.shape == raw.shape and np.sum(processed ** 2) < 0.5 * np.sum(raw ** 2), "the chain ran"
    (track / "raw" / "piano.wav").hardlink_to(track / "piano.wav")  # the raw set: processed drums replaced by raw
    (track / "raw" / "residual.wav").hardlink_to(track / "residual.wav")
    assert_stems_null_sum(track / "raw", song, ["drums", "piano", "residual"], rate, 2, "PCM_24")


def test_cli_user_errors_exit_2_naming_the_key_or_source(clip, tmp_path: Path) -> None:
    audio, rate = clip
    good = write_input(tmp_path, "good.wav", audio[:, :rate], rate, rate, 2, "PCM_16")
    (tmp_path / "bad.toml").write_text("[chunk]\nwindow_seconds = -1\n")
    (tmp_path / "typo.toml").write_text("stepz = 3\n")
    for config, key in [("bad.toml", "chunk.window_seconds"), ("typo.toml", "stepz")]:
        done = tagbox("separate", good, "--sources", "drums", "--out", tmp_path / "out", "--config",
                      tmp_path / config, cwd=tmp_path)
        assert done.returncode == 2 and key in done.stderr and config in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    done = tagbox("separate", good, "--sources", "drums,../x", "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 2 and "../x" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def _tiled_input(path: Path, audio: np.ndarray, rate: int, seconds: int) -> Path:
    """A long 16-bit WAV made by tiling real audio, written block by block."""
    with sf.SoundFile(path, "w", rate, audio.shape[0], "PCM_16") as out:
        for start in range(0, seconds * rate, audio.shape[1]):
            out.write(audio[:, : min(audio.shape[1], seconds * rate - start)].T)
    return path




@pytest.mark.slow(reason="separates a 10-minute track (about 1.5 min); `make bench` measures the same on 3 and "
                         "10 minutes with the default settings")
def test_ten_minutes_use_no_more_memory_than_one(clip, tmp_path: Path) -> None:
    """Default window (Jukebox context), cheapest steering (weight-free tagger): memory flat in track length."""
    audio, rate = clip
    (tmp_path / "cheap.toml").write_text('steps = 0\ntaggers = ["spectral"]\ndevice = "cpu"\n'
                                         '[nmf]\ncomponents = 2\nnmf_iterations = 1\n')
    peaks = {}
    for minutes in [1, 10]:
        path = _tiled_input(tmp_path / f"long{minutes}.wav", audio, rate, minutes * 60)
        peaks[minutes] = peak_rss_mib(tagbox("separate", path, "--sources", "bass", "--out", tmp_path / "out",
                                             "--config", tmp_path / "cheap.toml", cwd=tmp_path, measure=True))
        path.unlink()
    assert sf.info(tmp_path / "out" / "long10" / "residual.wav").frames == 10 * 60 * rate
    print(f"peak RSS: 1 min {peaks[1]:.0f} MiB, 10 min {peaks[10]:.0f} MiB")
    assert peaks[10] <= 1.5 * peaks[1], peaks
