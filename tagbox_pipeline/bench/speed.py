"""Issue 14 bench: the installed ``tagbox separate`` on song-length tracks -> ``bench/results/speed.md``.

Tracks of 1, 3 and 10 minutes (44.1 kHz stereo FLAC, the bench-dev mixtures back to back, repeated)
are separated with 1 and 4 requested sources by the ``tagbox`` console script of this environment,
as a user runs it: a separate process with default settings and no special environment (the
machine's allocator and thread settings are the program's own). Wall time and peak RSS are those
of that process, measured from outside (``os.wait4``).

The reference is the HTDemucs architecture (``demucs==4.1.0``, ``HTDemucs(channels=48, depth=4,
t_layers=5)``, random weights, ``apply_model(split=True, overlap=0.25)``), installed with
``--no-deps`` into a throw-away folder and timed on the 3-minute track in the same run, with the same
2 threads. Random weights are enough for timing; no quality follows from them.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..config import load_settings
from ..separation import Separator
from . import machine_line, write_result
from .separation import THREADS, load_clips, table

#: track lengths in minutes
MINUTES = (1, 3, 10)
#: requested source sets
REQUESTS = (["drums"], ["drums", "piano", "bass", "guitar"])
#: acceptance of issue 14 (3 minutes, 4 sources): wall time in s, peak RSS in MiB
TARGET_SECONDS, TARGET_RSS_MIB = 180.0, 2048.0
DEMUCS = "demucs==4.1.0"
#: demucs' import-time dependencies that this environment lacks (installed beside it, also --no-deps)
DEMUCS_EXTRAS = ("einops==0.8.2", "tqdm==4.70.1")
_DEMUCS_TIMING = """
import sys, time, torch, soundfile as sf
from demucs.htdemucs import HTDemucs
from demucs.apply import apply_model
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)
audio, rate = sf.read(sys.argv[1], dtype="float32", always_2d=True)
mix = torch.from_numpy(audio.T.copy())[None]
model = HTDemucs(sources=["drums", "bass", "other", "vocals"], channels=48, depth=4, t_layers=5).eval()
started = time.perf_counter()
with torch.no_grad():
    apply_model(model, mix, split=True, overlap=0.25, progress=False)
print(time.perf_counter() - started)
"""


#: where a chunk's seconds go: (label, file name suffix, function name) of the profiled functions
STAGES = (
    ("NTF fit (multiplicative updates, `nmf.nmf_iterations`)", "priors/nmf.py", "kl_ntf"),
    ("components rendered to audio (iSTFT)", "priors/nmf.py", "components"),
    ("taggers on components and estimates (all passes)", "objective.py", "source_probabilities"),
    ("  of which convolutions", "~", "<built-in method torch.conv2d>"),
    ("  of which resampling to 16 kHz", "taggers/base.py", "to_tagger_rate"),
    ("cue refinement", "priors/consistency.py", "refine_by_cues"),
    ("final masks and stems", "priors/base.py", "final"),
)


@dataclass
class Measured:
    """One ``tagbox separate`` run: wall time in s, peak RSS in MiB, exit code."""

    seconds: float
    rss_mib: float
    returncode: int


def write_track(path: Path, minutes: float) -> Path:
    """A ``minutes``-long 44.1 kHz stereo FLAC of the bench-dev mixtures back to back (repeated)."""
    mixture = np.concatenate([clip.mixture for clip in load_clips()], axis=1)
    samples = int(minutes * 60 * 44100)
    reps = -(-samples // mixture.shape[1])
    sf.write(path, np.tile(mixture, (1, reps))[:, :samples].T, 44100, subtype="PCM_24")
    return path


def tagbox_command() -> Path:
    """The ``tagbox`` console script installed beside this interpreter."""
    return Path(sys.executable).with_name("tagbox")


def measure(command: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``command``; wall time and the peak RSS of that process (``ru_maxrss``, KiB on Linux)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        print(process.stderr.read().decode(errors="replace"), file=sys.stderr)
    process.stderr.close()
    return Measured(seconds, usage.ru_maxrss / 1024, process.returncode)


def separate(track: Path, sources: list[str], out: Path) -> Measured:
    """``tagbox separate TRACK --sources ... --out OUT`` as a user runs it (environment unchanged)."""
    return measure([str(tagbox_command()), "separate", str(track), "--sources", ",".join(sources),
                    "--out", str(out)])


def demucs_seconds(track: Path, folder: Path) -> float | None:
    """Seconds the HTDemucs architecture takes on ``track`` (None when demucs cannot be installed)."""
    target = folder / "demucs-packages"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              DEMUCS, *DEMUCS_EXTRAS], capture_output=True, text=True)
    if install.returncode:
        print(f"demucs reference skipped: {install.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", _DEMUCS_TIMING, str(track), str(THREADS)], env=env,
                         capture_output=True, text=True)
    if run.returncode:
        print(f"demucs reference failed: {run.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return float(run.stdout.split()[-1])


def profile_chunk(track: Path, sources: list[str]) -> tuple[float, float, list[list[str]]]:
    """One full chunk (a Jukebox-context window) of ``track`` through :meth:`Separator.steer` in this
    process under cProfile, after a warm-up chunk; returns its seconds, peak RSS in MiB and the
    seconds of each of :data:`STAGES`."""
    torch.set_num_threads(THREADS)
    settings = load_settings()
    window = round(settings.chunk.window_seconds * 44100)
    audio, rate = sf.read(track, dtype="float32", always_2d=True, frames=window)
    mix = np.ascontiguousarray(audio.T)
    separator = Separator(settings)
    separator.steer(mix[:, : rate], rate, sources, 0)
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.runcall(separator.steer, mix, rate, sources, 0)
    seconds = time.perf_counter() - started
    stats = pstats.Stats(profile).stats  # {(file, line, name): (calls, primitive, tottime, cumtime, callers)}
    rows = []
    for label, suffix, name in STAGES:
        cumulative = sum(entry[3] for (file, _, function), entry in stats.items()
                         if function == name and file.endswith(suffix))
        rows.append([label, f"{cumulative:.1f}", f"{100 * cumulative / seconds:.0f} %"])
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rows


def main() -> None:
    """Time every (length, request) pair and the reference; write ``bench/results/speed.md``."""
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="tagbox-speed-") as tmp:
        folder = Path(tmp)
        tracks = {minutes: write_track(folder / f"song-{minutes}min.flac", minutes) for minutes in MINUTES}
        for minutes, track in tracks.items():
            for sources in REQUESTS:
                run = separate(track, sources, folder / f"out-{minutes}-{len(sources)}")
                results[(minutes, len(sources))] = run
                audio = minutes * 60
                rows.append([f"{minutes} min", ", ".join(sources), f"{run.seconds:.0f}",
                             f"{run.seconds / audio / len(sources):.3f}", f"{run.rss_mib:.0f}",
                             "ok" if run.returncode == 0 else f"exit {run.returncode}"])
        reference = demucs_seconds(tracks[3], folder)
        chunk_seconds, chunk_rss, stages = profile_chunk(tracks[3], REQUESTS[1])
    three, ten = results[(3, 4)], results[(10, 4)]
    per_second = {m: results[(m, 4)].seconds / (m * 60) for m in (3, 10)}
    ours = three.seconds / 180 / 4
    lines = [
        f"- 3 min, 4 sources: {three.seconds:.0f} s (target ≤ {TARGET_SECONDS:.0f} s), peak RSS "
        f"{three.rss_mib:.0f} MiB (target ≤ {TARGET_RSS_MIB:.0f}) — "
        f"**{'met' if three.seconds <= TARGET_SECONDS and three.rss_mib <= TARGET_RSS_MIB else 'missed'}**",
        f"- 10 min vs 3 min, 4 sources: peak RSS ×{ten.rss_mib / three.rss_mib:.2f} (target ≤ ×1.10), wall time per "
        f"second of audio ×{per_second[10] / per_second[3]:.2f} (target within ±15 %)",
    ]
    if reference is not None:
        theirs = reference / 180 / 4
        lines.append(f"- HTDemucs architecture (random weights, {THREADS} threads) on the 3-min track: "
                     f"{reference:.0f} s = {theirs:.3f} s per stem per second of audio; tagbox {ours:.3f}: "
                     f"×{ours / theirs:.1f}")
    else:
        lines.append("- HTDemucs reference: not measured (demucs could not be installed or run, see stderr)")
    text = "\n\n".join([
        "# Speed and memory on song-length tracks (issue 14): `tagbox separate` as installed",
        f"Machine: {machine_line()}. Measured from outside the process (`os.wait4`): wall time and peak RSS "
        "of the `tagbox separate` process, default settings, no environment variables set. Tracks: the "
        "bench-dev mixtures back to back (44.1 kHz stereo FLAC, 24 bit). The CPU may be shared with other "
        "jobs: times are upper bounds.",
        "## Targets\n\n" + "\n".join(lines),
        "## Runs\n\n" + table(["track", "sources", "wall s", "s per source per s of audio", "peak RSS MiB",
                                "result"], rows),
        f"## Where a chunk's time goes\n\nOne {load_settings().chunk.window_seconds:.1f} s chunk of the 3-minute "
        f"track, 4 sources, in-process under cProfile (after a warm-up chunk): {chunk_seconds:.1f} s, peak RSS of "
        f"that process {chunk_rss:.0f} MiB (models included). Cumulative seconds per stage (stages nest):\n\n"
        + table(["stage", "s", "share"], stages),
    ]) + "\n"
    write_result("speed", text)
