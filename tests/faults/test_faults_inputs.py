"""Bad inputs, one batch: every kind of broken, odd or hostile file dropped into one inbox beside good
files, and one real `tagbox watch INBOX --once` subprocess (with its ephemeral Prefect server).

Each case then checks, from the disk: where its input went (``processed/``, ``failed/`` with
``<name>.error.txt``, left in place, or gone), that its bytes are unchanged, that its stem folder is
complete and null-sums (or absent), and that nothing was written outside OUT and the inbox's
``processed/``/``failed/`` folders. The whole batch also checks exit code, counts, temp leftovers and
that every socket opened listened on loopback only.

Expected behaviour, decided per case:

| case | expected |
|---|---|
| good WAV, good FLAC | processed; stems null-sum |
| empty file | quarantined: "empty" |
| truncated FLAC (cut real FLAC) | quarantined: "truncated" or "corrupt" |
| WAV cut inside its header | quarantined: "not readable as audio" |
| WAV cut inside its data | quarantined: "truncated" |
| text file named .wav | quarantined: "not readable as audio" |
| PNG named .mp3 | quarantined: "not readable as audio" |
| 0.2 s file | processed (above the 0.1 s minimum); stems 0.2 s long |
| 0.05 s file | quarantined: "at least 0.1 s" |
| float WAV with NaN/Inf | quarantined: "NaN or Inf" with the time |
| 6-channel WAV | processed; 6-channel stems |
| 96 kHz / 24-bit | processed; 96 kHz 24-bit stems |
| 8 kHz mono 8-bit (PCM_U8) | processed; 8 kHz mono 16-bit stems |
| spaces, quotes, non-Latin name | processed; folder keeps the name |
| shell/traversal characters in names | processed or quarantined inside OUT / failed/ only |
| symlink to a file outside the inbox | refused: the link is quarantined, its target untouched |
| directory named x.wav | ignored: left in place |
| file growing for 10 s | processed once complete (never taken half-written) |
| file deleted after detection | logged as vanished; no crash, no output |
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile as sf

from faultkit import (SOURCES, Sampler, changes, empty_file, is_loopback, nan_inf_wav, partial_outputs, png_file,
                      sha256_file, silence, snapshot, stem_folder_problems, text_file, truncated_flac,
                      truncated_wav_header, write_in_pieces)
from support import FAST_TOML, excerpt, null_sum_error, run_cli, start_cli, write_toml
from tagbox_pipeline.files import track_name

pytestmark = pytest.mark.faults

#: null-sum tolerance: the stems are rounded to the output encoding, the residual absorbs the rest
NULL_SUM_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Case:
    """One input of the batch and the behaviour expected of it."""

    key: str
    title: str
    name: str
    expect: str  # processed | quarantined | ignored | gone | refused
    expected: str
    reason: str = ""  # regex the quarantine reason must match
    rate: int | None = None
    channels: int | None = None
    subtype: str | None = None


HOSTILE = "$(touch PWNED); rm -rf ~ `id`.wav"
TRAVERSAL = "x\\..\\..\\escape.wav"
WEIRD = "take \"one\" 'two' – Ñandú 日本語 ёж.wav"

CASES = [
    Case("good_wav", "good 24-bit WAV (control)", "good_a.wav", "processed", "processed; stems null-sum",
         rate=44100, channels=2, subtype="PCM_24"),
    Case("good_flac", "good 16-bit FLAC (control)", "good_b.flac", "processed",
         "processed; 24-bit WAV stems null-sum", rate=44100, channels=2, subtype="PCM_24"),
    Case("empty", "empty file (0 bytes)", "empty.wav", "quarantined", "quarantined: reason says empty",
         r"empty"),
    Case("truncated_flac", "truncated FLAC (real FLAC cut at 60 %)", "truncated.flac", "quarantined",
         "quarantined: reason says truncated/corrupt", r"truncated|corrupt"),
    Case("truncated_header", "WAV cut inside its header (30 bytes)", "truncated_header.wav", "quarantined",
         "quarantined: reason says not readable", r"not readable as audio"),
    Case("truncated_data", "WAV cut inside its data", "truncated_data.wav", "quarantined",
         "quarantined: reason says truncated", r"truncated"),
    Case("text", "text file named .wav", "notes.wav", "quarantined", "quarantined: reason says not readable",
         r"not readable as audio"),
    Case("png", "PNG image named .mp3", "cover.mp3", "quarantined", "quarantined: reason says not readable",
         r"not readable as audio"),
    Case("short", "0.2 s file", "short_0.2s.wav", "processed",
         "processed (minimum is 0.1 s); stems 0.2 s long, null-sum", rate=44100, channels=2, subtype="PCM_16"),
    Case("too_short", "0.05 s file", "blip_0.05s.wav", "quarantined",
         "quarantined: reason says at least 0.1 s", r"at least 0\.1 s"),
    Case("nan", "float WAV with NaN and Inf samples", "nan_inf.wav", "quarantined",
         "quarantined: reason says NaN or Inf, with its time", r"NaN or Inf sample at \d+\.\d+ s"),
    Case("six_channels", "6-channel WAV", "surround_6ch.wav", "processed",
         "processed; 6-channel stems null-sum", rate=44100, channels=6, subtype="PCM_16"),
    Case("hires", "96 kHz / 24-bit WAV", "hires_96k_24bit.wav", "processed",
         "processed; 96 kHz 24-bit stems null-sum", rate=96000, channels=2, subtype="PCM_24"),
    Case("lofi", "8 kHz mono 8-bit (PCM_U8) WAV", "lofi_8k_u8.wav", "processed",
         "processed; 8 kHz mono 16-bit stems null-sum", rate=8000, channels=1, subtype="PCM_16"),
    Case("weird_name", "name with spaces, quotes, non-Latin letters", WEIRD, "processed",
         "processed; folder keeps the name", rate=44100, channels=2, subtype="PCM_24"),
    Case("hostile_name", "name with shell syntax ($(...), ;, backticks)", HOSTILE, "processed",
         "processed into a folder inside OUT; nothing executed", rate=44100, channels=2, subtype="PCM_24"),
    Case("traversal_name", "non-audio named x\\..\\..\\escape.wav", TRAVERSAL, "quarantined",
         "quarantined inside failed/; nothing written elsewhere", r"not readable as audio"),
    Case("symlink", "symlink to a file outside the inbox", "linked.wav", "refused",
         "refused: the link is quarantined (as a link), its target untouched", r"symbolic link"),
    Case("directory", "directory named x.wav", "x.wav", "ignored", "ignored: left in place, not moved"),
    Case("growing", "file still being written (grows for 10 s)", "growing.wav", "processed",
         "taken only when complete: processed, byte-identical", rate=44100, channels=2, subtype="PCM_24"),
    Case("deleted", "file deleted between detection and processing", "zz_deleted.wav", "gone",
         "logged as vanished; no crash, no output, batch goes on"),
]


def _make_originals(shared: Path, folder: Path, outside: Path) -> dict[str, Path]:
    """The input of every case, written into ``folder`` (the growing file's full content included)."""
    folder.mkdir(parents=True)
    made = {
        "good_wav": excerpt(shared, "d01", folder / "good_a.wav"),
        "good_flac": excerpt(shared, "d02", folder / "good_b.flac", subtype="PCM_16"),
        "empty": empty_file(folder / "empty.wav"),
        "truncated_flac": truncated_flac(shared, folder / "truncated.flac"),
        "text": text_file(folder / "notes.wav"),
        "png": png_file(folder / "cover.mp3"),
        "short": excerpt(shared, "d03", folder / "short_0.2s.wav", seconds=0.2, subtype="PCM_16"),
        "too_short": excerpt(shared, "d03", folder / "blip_0.05s.wav", start_s=4.0, seconds=0.05),
        "nan": nan_inf_wav(shared, folder / "nan_inf.wav"),
        "six_channels": excerpt(shared, "d06", folder / "surround_6ch.wav", subtype="PCM_16", channels=6),
        "hires": excerpt(shared, "d07", folder / "hires_96k_24bit.wav", rate=96000),
        "lofi": excerpt(shared, "d08", folder / "lofi_8k_u8.wav", subtype="PCM_U8", rate=8000, channels=1),
        "weird_name": excerpt(shared, "d01", folder / WEIRD, start_s=5.0),
        "hostile_name": excerpt(shared, "d02", folder / HOSTILE, start_s=5.0),
        "traversal_name": text_file(folder / TRAVERSAL),
        "growing": excerpt(shared, "d03", folder / "growing.wav", start_s=5.0),
        "deleted": excerpt(shared, "d05", folder / "zz_deleted.wav", start_s=5.0),
    }
    made["truncated_header"] = truncated_wav_header(made["good_wav"], folder / "truncated_header.wav")
    whole = made["good_wav"].read_bytes()
    (folder / "truncated_data.wav").write_bytes(whole[: len(whole) // 2])
    made["truncated_data"] = folder / "truncated_data.wav"
    made["symlink"] = excerpt(shared, "d04", outside / "secret.wav")
    return made


@pytest.fixture(scope="module")
def batch(shared: Path, fast_toml: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Drop every case into one inbox and run ``tagbox watch INBOX --once`` on it (ephemeral Prefect server)."""
    root = tmp_path_factory.mktemp("batch")
    home = tmp_path_factory.mktemp("batch-prefect-home")
    inbox, out, originals, outside = root / "inbox", root / "out", root / "originals", root / "outside"
    made = _make_originals(shared, originals, outside)
    hashes = {key: sha256_file(path) for key, path in made.items()}
    inbox.mkdir()
    for case in CASES:
        if case.key not in ("symlink", "directory", "growing"):
            shutil.copyfile(made[case.key], inbox / case.name)
    (inbox / "linked.wav").symlink_to(made["symlink"])
    (inbox / "x.wav").mkdir()
    (inbox / "x.wav" / "inside.wav").write_bytes(made["good_wav"].read_bytes())
    before = snapshot(root)

    watcher = start_cli(["watch", str(inbox), "--out", str(out), "--sources", SOURCES, "--config", str(fast_toml),
                         "--once"], home)
    with Sampler(watcher.process.pid).running() as sampler:
        try:
            watcher.wait_for(r"watching .*inbox")
            grower = write_in_pieces(made["growing"], inbox / "growing.wav", seconds=10.0, pieces=20)
            watcher.wait_for(r"stems in", timeout=240)  # a file is done; the rest of its batch is queued
            (inbox / "zz_deleted.wav").unlink()
            grower.join(30)
            code = watcher.finish(timeout=400)
        finally:
            if watcher.process.poll() is None:
                watcher.process.kill()
    return {"root": root, "inbox": inbox, "out": out, "made": made, "hashes": hashes, "code": code,
            "stdout": watcher.stdout, "log": watcher.log(), "before": before, "after": snapshot(root),
            "sockets": sampler.sockets}


def _where(batch: dict, case: Case) -> tuple[str, Path | None]:
    inbox = batch["inbox"]
    for state, path in (("processed", inbox / "processed" / case.name), ("quarantined", inbox / "failed" / case.name),
                        ("in inbox", inbox / case.name)):
        if path.exists() or path.is_symlink():
            return state, path
    return "nowhere", None


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_input_case(batch: dict, case: Case, matrix) -> None:
    matrix.describe(case.title, case.expected)
    state, path = _where(batch, case)
    folder = batch["out"] / track_name(case.name)
    original_sha = batch["hashes"].get(case.key)
    modified = int(path is not None and path.is_file() and not path.is_symlink() and original_sha is not None
                   and sha256_file(path) != original_sha)
    lost = int(state == "nowhere" and case.expect != "gone")
    reason = ""
    if state == "quarantined":
        error_file = path.with_name(path.name + ".error.txt")
        reason = error_file.read_text(encoding="utf-8") if error_file.exists() else ""
    cause = next((line for line in reason.splitlines() if line.startswith("cause:")), "")
    problems = stem_folder_problems(folder) if folder.is_dir() else []
    observed = f"{state}" + (f" ({cause.strip()})" if cause else "") + (f"; stems in {folder.name}/" if folder.is_dir()
                                                                        else "")
    matrix.observe(observed, inputs_modified=modified, partial_outputs=len(problems), lost_files=lost)
    assert batch["code"] == 0, batch["log"][-4000:]
    assert not modified, f"{case.name} changed"
    assert not problems, problems

    if case.expect == "processed":
        assert state == "processed", f"{case.name}: {state}\n{batch['log'][-3000:]}"
        assert folder.is_dir(), f"no stem folder {folder}"
        manifest_files = sorted(p.name for p in folder.glob("*.wav"))
        assert manifest_files == sorted(f"{s}.wav" for s in [*SOURCES.split(","), "residual"])
        info = sf.info(folder / "residual.wav")
        assert (info.samplerate, info.channels, info.subtype) == (case.rate, case.channels, case.subtype)
        assert info.frames == sf.info(path).frames
        error = null_sum_error(folder, path)
        assert error <= NULL_SUM_TOLERANCE, f"stems + residual differ from the input by {error}"
    elif case.expect in ("quarantined", "refused"):
        assert state == "quarantined", f"{case.name}: {state}"
        assert f"file: {case.name}" in reason and re.search(case.reason, cause), reason
        assert not folder.exists(), "no stem folder for a quarantined input"
        if case.expect == "refused":
            assert path.is_symlink() and path.resolve() == batch["made"]["symlink"].resolve()
            assert sha256_file(batch["made"]["symlink"]) == original_sha, "the link's target is untouched"
    elif case.expect == "ignored":
        assert state == "in inbox" and path.is_dir() and (path / "inside.wav").is_file()
        assert not (batch["inbox"] / "failed" / case.name).exists()
    elif case.expect == "gone":
        assert state == "nowhere" and not folder.exists()
        assert re.search(rf"{re.escape(case.name)} vanished", batch["log"]), batch["log"][-3000:]


def test_batch_counts_and_exit(batch: dict, matrix) -> None:
    """The watcher drains the whole batch and reports it; one bad file never stops the others."""
    matrix.describe("whole batch: exit code and counts", "exit 0; every file processed, quarantined or gone")
    expected = {"processed": sum(c.expect == "processed" for c in CASES),
                "failed": sum(c.expect in ("quarantined", "refused") for c in CASES),
                "gone": sum(c.expect == "gone" for c in CASES)}
    line = next((ln for ln in batch["stdout"].splitlines() if ln.startswith("watch:")), "")
    counts = {key: int(n) for n, key in re.findall(r"(\d+) (\w+)", line)}
    matrix.observe(f"exit {batch['code']}; {line}")
    assert batch["code"] == 0 and counts == expected, batch["log"][-3000:]


def test_batch_leaves_no_partial_outputs(batch: dict, matrix) -> None:
    matrix.describe("whole batch: partial outputs", "no temp/hidden files or staging left; every stem folder "
                                                    "complete with its manifest")
    problems = partial_outputs(batch["out"])
    matrix.observe(f"{len(problems)} problem(s)" + (f": {problems[:3]}" if problems else ""),
                   partial_outputs=len(problems))
    assert not problems


def test_batch_writes_only_to_out_and_inbox_folders(batch: dict, matrix) -> None:
    """No file name or symlink makes the pipeline write outside OUT and INBOX/processed|failed."""
    matrix.describe("whole batch: writes outside OUT", "changes only under OUT/, INBOX/processed/, INBOX/failed/ "
                                                       "(and inputs leaving INBOX); no shell command ran")
    changed = changes(batch["before"], batch["after"])
    allowed = ("out", "inbox/processed", "inbox/failed")
    stray = sorted(p for p in changed if not p.startswith(allowed)
                   and not (p.startswith("inbox/") and p.count("/") == 1 and p not in batch["after"]))
    pwned = [p for p in (batch["root"] / "inbox" / "PWNED", batch["root"] / "PWNED", Path.cwd() / "PWNED") if p.exists()]
    matrix.observe(f"{len(stray)} stray change(s), {len(pwned)} PWNED marker(s)", partial_outputs=len(stray))
    assert not stray and not pwned, (stray, pwned)


def test_batch_listens_only_on_loopback(batch: dict, matrix) -> None:
    """Every socket the watcher (and its ephemeral Prefect server) listened on was loopback-only."""
    matrix.describe("security: sockets of `tagbox watch`", "every listening socket on 127.0.0.1/::1")
    sockets = sorted(batch["sockets"])
    exposed = [s for s in sockets if not is_loopback(s[0])]
    matrix.observe(f"{len(sockets)} listening socket(s) seen: {sockets[:4]}; exposed: {exposed}")
    assert sockets, "the ephemeral Prefect server's socket was never seen"
    assert not exposed


def test_ten_minutes_of_digital_silence(shared: Path, prefect_server, tmp_path: Path, matrix) -> None:
    """10 minutes of zeros beside a good file: processed, with silent (all-zero, finite) stems of full length."""
    matrix.describe("10 minutes of digital silence (16 kHz mono)",
                    "processed; stems and residual all zero (no NaN), 600 s long; the good file beside it processed")
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    quiet = silence(tmp_path / "originals" / "silence_10min.wav")
    good = excerpt(shared, "d08", tmp_path / "originals" / "beside.wav")
    hashes = {p.name: sha256_file(p) for p in (quiet, good)}
    inbox.mkdir()
    for path in (quiet, good):
        shutil.copyfile(path, inbox / path.name)
    config = write_toml(tmp_path / "long.toml", FAST_TOML.replace("window_seconds = 3.0", "window_seconds = 60.0"))
    result = run_cli(["watch", str(inbox), "--out", str(out), "--sources", SOURCES, "--config", str(config), "--once"],
                     tmp_path / "home", prefect_server.url)
    folder = out / "silence_10min"
    peaks, frames = {}, {}
    for wav in sorted(folder.glob("*.wav")):
        audio, _ = sf.read(wav, dtype="float32")
        peaks[wav.stem], frames[wav.stem] = float(abs(audio).max()), len(audio)
    moved = {name: (inbox / "processed" / name) for name in hashes}
    modified = sum(p.exists() and sha256_file(p) != hashes[name] for name, p in moved.items())
    problems = partial_outputs(out)
    matrix.observe(f"exit {result.returncode}; stem peaks {peaks}; frames {set(frames.values())}",
                   inputs_modified=modified, partial_outputs=len(problems),
                   lost_files=sum(not p.exists() for p in moved.values()))
    assert result.returncode == 0 and "2 processed" in result.stdout, result.stderr[-3000:]
    assert set(peaks) == {"piano", "drums", "residual"} and all(v == 0.0 for v in peaks.values()), peaks
    assert set(frames.values()) == {600 * 16000}
    assert not modified and not problems and all(p.exists() for p in moved.values())
    assert null_sum_error(out / "beside", moved["beside.wav"]) <= NULL_SUM_TOLERANCE
