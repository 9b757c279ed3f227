"""Pipeline building blocks on real files: ledger, intake rules, stability, moves, post chains, PNGs."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tagbox_pipeline.config import PluginSpec
from tagbox_pipeline.settings_check import load_checked_settings
from tagbox_pipeline.errors import ConfigError
from tagbox_pipeline.files import move_no_overwrite, sha256_file
from tagbox_pipeline.pipeline.inbox import StabilityTracker, candidates, is_ignored
from tagbox_pipeline.pipeline.ledger import Ledger
from tagbox_pipeline.post import apply_chains, build_board
from tagbox_pipeline.spectrogram import write_spectrogram_png


def _claim_and_hold(path: str, held: multiprocessing.Event, release: multiprocessing.Event) -> None:
    Ledger(Path(path)).claim("ab" * 32, "x.wav", Path("x.wav"), "digest")
    held.set()
    release.wait(30)


def test_ledger_claims_each_content_once_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite"
    ctx = multiprocessing.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_claim_and_hold, args=(str(db), held, release))
    other.start()
    assert held.wait(60)
    assert not Ledger(db).claim("ab" * 32, "copy.wav", Path("copy.wav"), "digest"), "claimed by a live process"
    release.set()
    other.join(30)
    assert Ledger(db).claim("ab" * 32, "copy.wav", Path("copy.wav"), "digest"), "its owner died: reclaimable"
    ledger = Ledger(db)
    assert ledger.claim("cd" * 32, "a.wav", tmp_path / "a.wav", "d1")
    assert not ledger.claim("cd" * 32, "renamed.wav", tmp_path / "renamed.wav", "d1"), "held by this live process"
    ledger.finish("cd" * 32, "done", tmp_path / "processed" / "a.wav", tmp_path / "out" / "a")
    assert not ledger.claim("cd" * 32, "again.wav", tmp_path / "again.wav", "d1"), "done content is never redone"
    entry = ledger.get("cd" * 32)
    assert entry is not None and entry.status == "done" and entry.attempts == 1
    reopened = Ledger(db).get("cd" * 32)  # another connection, as after a restart
    assert reopened is not None and reopened.status == "done" and reopened.stems_path == str(tmp_path / "out" / "a")
    ledger.claim("ef" * 32, "bad.wav", tmp_path / "bad.wav", "d1")
    ledger.finish("ef" * 32, "failed", None, error="boom")
    assert ledger.claim("ef" * 32, "bad.wav", tmp_path / "bad.wav", "d1"), "a failed content may be retried"
    assert ledger.get("ef" * 32).attempts == 2


def test_ignored_names_and_candidates(tmp_path: Path) -> None:
    for name in ["song.wav", ".hidden.wav", "song.wav.part", "~$lock.wav", ".DS_Store", "x.crdownload", "b.flac"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.wav").mkdir()
    assert [p.name for p in candidates(tmp_path)] == ["b.flac", "song.wav"]
    assert is_ignored("Thumbs.db") and not is_ignored("take 1 (final).wav")


def test_stability_waits_for_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "growing.wav"
    path.write_bytes(b"a" * 10)
    tracker = StabilityTracker(stable_seconds=0.4)
    tracker.add(path)
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:  # keeps growing: never ready
        with open(path, "ab") as handle:
            handle.write(b"b" * 10)
        assert tracker.ready() == []
        time.sleep(0.1)
    time.sleep(0.2)
    assert tracker.ready() == []  # last change seen < 0.4 s ago
    time.sleep(0.4)
    assert tracker.ready() == [path]
    assert not tracker.pending


def test_moves_never_overwrite_and_keep_bytes(tmp_path: Path) -> None:
    dest = tmp_path / "processed"
    names = []
    for content in [b"one", b"two", b"three"]:
        src = tmp_path / "take.wav"
        src.write_bytes(content)
        names.append(move_no_overwrite(src, dest))
    assert [p.name for p in names] == ["take.wav", "take (1).wav", "take (2).wav"]
    assert [p.read_bytes() for p in names] == [b"one", b"two", b"three"]


def test_unknown_plugin_or_parameter_is_a_config_error_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "post.toml"
    config.write_text('[[post.drums]]\nplugin = "Compresor"\n')
    with pytest.raises(ConfigError, match="Compresor"):
        load_checked_settings(config)
    config.write_text('[[post.drums]]\nplugin = "Compressor"\nparams = { ratoi = 4.0 }\n')
    with pytest.raises(ConfigError, match="ratoi"):
        load_checked_settings(config)
    config.write_text('[[post.drums]]\nplugin = "Compressor"\nparams = { ratio = 4.0 }\n'
                      '[[post.drums]]\nplugin = "Limiter"\n')
    assert [s.plugin for s in load_checked_settings(config).post["drums"]] == ["Compressor", "Limiter"]


def test_post_chain_streams_in_blocks_and_keeps_raw(shared: Path, tmp_path: Path) -> None:
    clip = shared / "data" / "bench-dev" / "d01"
    track = tmp_path / "track"
    track.mkdir()
    for name in ["drums", "piano"]:
        audio, rate = sf.read(clip / f"{name}.flac", dtype="float32")
        sf.write(track / f"{name}.wav", audio, rate, subtype="PCM_24")
    before = {name: sha256_file(track / f"{name}.wav") for name in ["drums", "piano"]}
    chain = [PluginSpec(plugin="Compressor", params={"ratio": 4.0, "threshold_db": -24.0}),
             PluginSpec(plugin="Limiter", params={"threshold_db": -6.0})]
    applied = apply_chains(track, {"drums": chain}, ".wav")
    assert applied == {"drums": ["Compressor", "Limiter"]}
    assert sha256_file(track / "raw" / "drums.wav") == before["drums"], "raw stem kept unaltered"
    assert sha256_file(track / "piano.wav") == before["piano"] and not (track / "raw" / "piano.wav").exists()
    raw, rate = sf.read(track / "raw" / "drums.wav", dtype="float32", always_2d=True)
    done, rate2 = sf.read(track / "drums.wav", dtype="float32", always_2d=True)
    info = sf.info(track / "drums.wav")
    assert rate2 == rate and done.shape == raw.shape and info.subtype == "PCM_24"
    whole = build_board(chain).process(raw.T.copy(), rate).T  # one buffer, for comparison
    assert np.max(np.abs(done - whole)) < 2e-4  # equal up to 24-bit quantisation
    assert np.max(np.abs(done - raw)) > 1e-2  # the chain did change the stem


def test_spectrogram_png(shared: Path, tmp_path: Path) -> None:
    png = write_spectrogram_png(shared / "data" / "bench-dev" / "d01" / "piano.flac", tmp_path / "p.png", "piano")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_chunk_cache_key_covers_every_component() -> None:
    from tagbox_pipeline.pipeline.track import chunk_cache_key

    base = ("a" * 64, 3, ["drums", "piano"], "d" * 64, {"fcn-mtat": "1" * 64, "nmf": "none"})
    variants = [("b" * 64, *base[1:]), (base[0], 4, *base[2:]), (*base[:2], ["drums"], *base[3:]),
                (*base[:3], "e" * 64, base[4]), (*base[:4], {"fcn-mtat": "2" * 64, "nmf": "none"})]
    keys = {chunk_cache_key(*base)} | {chunk_cache_key(*v) for v in variants}
    assert len(keys) == 6
    same = (base[0], 3, list(base[2]), base[3], dict(reversed(base[4].items())))  # equal values, other objects
    assert chunk_cache_key(*same) == chunk_cache_key(*base), "weights listed in another order: same key"


def test_first_ctrl_c_stops_the_watcher_gracefully_second_aborts() -> None:
    import os
    import signal
    import threading

    from tagbox_pipeline.pipeline.inbox import stop_on_signals

    before = signal.getsignal(signal.SIGINT)
    stop = threading.Event()
    with pytest.raises(KeyboardInterrupt):
        with stop_on_signals(stop):
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.wait(5), "the first Ctrl-C sets stop instead of raising"
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the second signal raises here
    assert signal.getsignal(signal.SIGINT) is before
