"""Engine plumbing on real rendered audio: reading and validation, chunk plans, overlap-add, stem files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tagbox_pipeline.assembly import OverlapAdd
from tagbox_pipeline.audio_io import AudioInfo, read_block, read_info
from tagbox_pipeline.chunking import plan
from tagbox_pipeline.errors import AudioReadError, ConfigError
from tagbox_pipeline.files import sha256_file, track_name
from tagbox_pipeline.stems import StemWriter


@pytest.fixture(scope="module")
def clip(shared: Path) -> tuple[np.ndarray, int]:
    """bench-dev d05 (bass, drums, piano, synth): 10 s, 44.1 kHz stereo, as float32 [channels, n]."""
    audio, rate = sf.read(shared / "data" / "bench-dev" / "d05" / "mixture.flac", dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T), rate


def _reconstruct(audio: np.ndarray, chunks: list) -> np.ndarray:
    """Identity step through the plan and the streaming overlap-add."""
    out = np.full(audio.shape, np.nan)
    spans = []

    def sink(start: int, block: np.ndarray) -> None:
        spans.append((start, block.shape[-1]))
        out[..., start: start + block.shape[-1]] = block

    accumulator = OverlapAdd(chunks, sink)
    for chunk in chunks:
        accumulator.add(audio[..., chunk.read_start: chunk.read_stop].astype(np.float64))
    assert accumulator.finished
    assert [s for s, _ in spans] == list(np.cumsum([0] + [n for _, n in spans])[:-1]), "regions in order, no gaps"
    return out


@pytest.mark.parametrize(("seconds", "window", "overlap", "margin"), [
    (10.0, 2.0, 0.5, 0.25),   # many chunks
    (10.0, 3.3, 0.3, 0.0),    # no margins, window not dividing the track
    (10.0, 1048576 / 44100, 2.0, 1.0),  # default settings: shorter than one window
    (0.6, 0.25, 0.05, 0.02),  # shorter than 1 s, several chunks
    (0.6, 2.0, 0.5, 0.25),    # shorter than 1 s and than one window
    (5.0, 1.0, 0.0, 0.1),     # hard cuts (no crossfade)
    (2.31, 2.3, 0.5, 0.2),    # one sample over a window: the last window is shifted back
])
def test_identity_step_reconstructs_exactly(clip: tuple[np.ndarray, int], seconds: float, window: float,
                                             overlap: float, margin: float) -> None:
    audio, rate = clip
    audio = audio[:, : round(seconds * rate)]
    chunks = plan(audio.shape[1], rate, window, overlap, margin)
    total = np.zeros(audio.shape[1])
    for chunk in chunks:
        assert chunk.read_stop - chunk.read_start <= round(window * rate)
        assert chunk.read_start <= chunk.start < chunk.stop <= chunk.read_stop
        total[chunk.start: chunk.stop] += chunk.weights()
        interior = chunk.start > 0, chunk.stop < audio.shape[1]
        if interior[0] and chunk.read_start > 0:
            assert chunk.start - chunk.read_start >= round(margin * rate), "left margin discarded"
        if interior[1] and chunk.read_stop < audio.shape[1]:
            assert chunk.read_stop - chunk.stop >= round(margin * rate), "right margin discarded"
    assert np.abs(total - 1.0).max() < 1e-12, "crossfade weights sum to one"
    assert np.abs(_reconstruct(audio, chunks) - audio).max() <= 1e-6


def test_default_window_is_jukebox_context_scaled_to_rate() -> None:
    from tagbox_pipeline.config import Settings

    c = Settings().chunk
    for rate, window in [(44100, 1048576), (48000, 1141307), (22050, 524288)]:
        chunks = plan(20 * 60 * rate, rate, c.window_seconds, c.overlap_seconds, c.margin_seconds)
        assert max(ch.read_stop - ch.read_start for ch in chunks) == window
        assert chunks[-1].stop == 20 * 60 * rate


def test_window_too_small_for_margins_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="chunk.window_seconds"):
        plan(44100, 44100, 1.0, 0.5, 0.3)


def test_read_info_and_seeked_block(clip: tuple[np.ndarray, int], tmp_path: Path) -> None:
    audio, rate = clip
    path = tmp_path / "clip.wav"
    sf.write(path, audio.T, rate, subtype="PCM_24")
    info = read_info(path)
    assert info == AudioInfo(path, rate, 2, audio.shape[1], "WAV", "PCM_24")
    assert info.duration == pytest.approx(10.0)
    block = read_block(path, 12345, 23456)
    assert block.dtype == np.float32 and block.shape == (2, 11111)
    assert np.abs(block - audio[:, 12345:23456]).max() < 2 ** -22


def _bad_inputs(clip: tuple[np.ndarray, int], folder: Path) -> dict[str, tuple[Path, str]]:
    audio, rate = clip
    good = folder / "good.flac"
    sf.write(good, audio.T, rate, subtype="PCM_24")
    cases = {"missing": (folder / "nope.wav", "not found"), "directory": (folder, "directory"),
             "empty": (folder / "empty.wav", "empty"), "not audio": (folder / "notes.wav", "not readable as audio"),
             "truncated": (folder / "cut.flac", "corrupt or truncated"),
             "truncated wav": (folder / "cut.wav", "truncated|corrupt"), "zero frames": (folder / "zero.wav", "zero"),
             "too short": (folder / "short.wav", "at least"), "nan": (folder / "nan.wav", "NaN or Inf sample at 1.000 s")}
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("these are not samples\n" * 100)
    data = good.read_bytes()
    (folder / "cut.flac").write_bytes(data[: len(data) // 2])
    sf.write(folder / "whole.wav", audio.T, rate, subtype="PCM_16")
    data = (folder / "whole.wav").read_bytes()
    (folder / "cut.wav").write_bytes(data[: len(data) // 3])
    sf.write(folder / "zero.wav", np.zeros((0, 2)), rate)
    sf.write(folder / "short.wav", audio[:, :400].T, rate)
    poisoned = audio.T.copy()
    poisoned[rate:, 1] = np.inf
    poisoned[rate + 5, 0] = np.nan
    sf.write(folder / "nan.wav", poisoned, rate, subtype="FLOAT")
    return cases


def test_bad_inputs_raise_audio_read_error_naming_file(clip: tuple[np.ndarray, int], tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    cases = _bad_inputs(clip, folder)
    before = {p: sha256_file(p) for p in folder.iterdir() if p.is_file()}
    for case, (path, cause) in cases.items():
        with pytest.raises(AudioReadError, match=cause) as caught:
            read_info(path)
        assert caught.value.path == path, case
        assert str(path) in str(caught.value), case
    assert before == {p: sha256_file(p) for p in folder.iterdir() if p.is_file()}, "inputs never modified"


def test_track_name_is_safe_and_keeps_non_latin() -> None:
    assert track_name("/music/Bach – Präludium 東京.flac") == "Bach – Präludium 東京"
    assert track_name("../../etc/passwd.wav") == "passwd"
    assert track_name("..wav") == "track"
    assert track_name(".hidden.wav") == "hidden"
    assert track_name("a\nb\x00c.wav") == "a_b_c"


@pytest.mark.parametrize(("subtype", "file_format", "stored"), [
    ("PCM_16", "wav", "PCM_16"), ("PCM_24", "wav", "PCM_24"), ("PCM_32", "wav", "PCM_32"),
    ("FLOAT", "wav", "FLOAT"), ("PCM_U8", "wav", "PCM_16"), ("FLAC", "wav", "PCM_24"),
    ("FLAC", "flac", "PCM_24"), ("PCM_16", "flac", "PCM_16"),
])
def test_stem_writer_null_sums_after_quantisation(clip: tuple[np.ndarray, int], tmp_path: Path, subtype: str,
                                                  file_format: str, stored: str) -> None:
    """Stems written in blocks, read back, plus the residual equal the mixture as stored in the input."""
    audio, rate = clip
    path = tmp_path / ("in.flac" if subtype == "FLAC" else "in.wav")
    sf.write(path, 0.9 * audio.T, rate, subtype="PCM_16" if subtype == "FLAC" else subtype)
    info = read_info(path)
    mix = read_block(path, 0, info.frames)
    # two uneven "stems": a delayed, scaled copy and a smoothed copy, so rounding is exercised
    stems = np.stack([0.3 * np.roll(mix, 7, axis=1), 0.5 * (mix + np.roll(mix, 1, axis=1)) / 2])
    track = tmp_path / "in"
    track.mkdir()
    with StemWriter(track, info, ["a", "b"], file_format) as writer:
        for start in range(0, info.frames, 100_000):
            stop = min(start + 100_000, info.frames)
            writer.write(stems[..., start:stop], mix[:, start:stop])
        writer.close()
    assert sorted(p.name for p in track.iterdir()) == sorted(f"{n}.{file_format}" for n in ["a", "b", "residual"])
    read = {name: sf.read(track / f"{name}.{file_format}", dtype="float64", always_2d=True)[0].T
            for name in ["a", "b", "residual"]}
    for name in read:
        assert sf.info(track / f"{name}.{file_format}").subtype == stored
        assert read[name].shape == mix.shape
    error = read["a"] + read["b"] + read["residual"] - mix
    level = 10 * np.log10(np.sum(error ** 2) / np.sum(mix.astype(np.float64) ** 2) + 1e-300)
    assert level <= -90, f"stems + residual = mixture within {level:.1f} dB"
    if stored.startswith("PCM") and subtype not in ("PCM_32",):
        assert np.abs(error).max() == 0.0, "bit-exact null-sum for PCM"


def test_edge_chunks_keep_all_but_the_inner_margin() -> None:
    """A 3-minute 44.1 kHz track at the default settings takes 9 windows (not 10): the first and last
    cores need no margin on their track-edge side; every chunk reads one full window."""
    from tagbox_pipeline.config import Settings

    c, rate = Settings().chunk, 44100
    chunks = plan(180 * rate, rate, c.window_seconds, c.overlap_seconds, c.margin_seconds)
    window, margin = 1048576, round(c.margin_seconds * rate)
    assert len(chunks) == 9
    assert all(ch.read_stop - ch.read_start == window for ch in chunks)
    assert (chunks[0].start, chunks[0].stop) == (0, window - margin)
    assert chunks[-1].read_stop == chunks[-1].stop == 180 * rate
    assert chunks[-1].start - chunks[-1].read_start >= margin
