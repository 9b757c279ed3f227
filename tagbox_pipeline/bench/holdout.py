"""Held-out bench set: 8 rendered multitrack clips from other pieces and another soundfont than bench-dev.

Same recipe and layout as ``shared/data/bench-dev`` (see its README), so that
:func:`tagbox_pipeline.bench.separation.load_clips` reads the folder unchanged:
``<folder>/manifest.json``, ``<folder>/<id>/mixture.flac`` and ``<folder>/<id>/<source>.flac``.

- Scores: music21-corpus pieces that bench-dev does not use (:data:`PLAN`). Each source plays one or more
  score parts, transposed by :attr:`Source.transpose` semitones; notes still outside the instrument's range
  are folded back by octaves. Velocities are humanised with a fixed seed.
- Window: 10 s at the plan's tempo, starting on a full bar: the one where the least busy pitched source
  sounds for the largest share of the window (rounded to 1 %), then with the most note onsets; the
  earliest such bar wins.
- Drums: a General MIDI kit groove on channel 10 in the piece's x/4 metre and tempo: kick on the odd
  beats, snare on the even beats, closed hi-hat on every half beat, an extra kick before the last beat
  of even-numbered bars, a crash at each 4-bar phrase start and a snare/tom fill on the last beat of
  every 4th bar (bar numbers of the score).
- Rendering: every stem alone from its own MIDI file with the fluidsynth CLI and the MuseScore General
  soundfont (reverb and chorus off, gain 0.5, float output at 44.1 kHz), folded to mono, 20 Hz
  high-pass, cut or padded to 10 s, 50 ms fade-out; set to −20 dBFS RMS ± 3 dB (fixed seed) and panned
  with constant-power gains; then one common gain per clip puts the mixture peak at −1 dBFS.
- Files: stems rounded to a 20-bit grid (multiples of 2**-19) and stored as FLAC PCM_24; the mixture is
  the sum of the decoded stems, so it equals that sum exactly.

Needs the Debian packages ``fluidsynth`` and ``musescore-general-soundfont`` and the PyPI packages
``music21`` and ``mido``. ``python -m tagbox_pipeline.bench.holdout [folder]`` renders the set.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfilt

from .conditions import pan

#: bump when anything below changes the rendered files; a folder with another version is re-rendered
RECIPE_VERSION = 1
SAMPLE_RATE = 44100  # Hz
SECONDS = 10.0  # clip length, s
FRAMES = round(SAMPLE_RATE * SECONDS)  # samples per clip
FLUIDSYNTH_GAIN = 0.5
HIGHPASS_HZ = 20.0
FADE_SECONDS = 0.05
STEM_RMS_DBFS = -20.0  # every stem's level before the common gain, ± STEM_RMS_SPREAD_DB
STEM_RMS_SPREAD_DB = 3.0
MIXTURE_PEAK_DBFS = -1.0
GRID_BITS = 20  # stems are multiples of 2**-(GRID_BITS - 1)
SEED = 20240601
TICKS_PER_QUARTER = 480
DRUM_CHANNEL = 9  # 0-based MIDI channel (GM channel 10)
KICK, SNARE, CLOSED_HAT, CRASH, HIGH_TOM, LOW_TOM = 36, 38, 42, 49, 50, 45  # GM kit notes
DRUM_HIT_QL = 0.25  # note length of a drum hit, quarter notes
CRASH_QL = 2.0  # the crash rings longer (a shorter note-off cuts its decay)

#: where the Debian package musescore-general-soundfont puts its soundfont, first found wins
SOUNDFONTS = (
    Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
    Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3"),
    Path("/usr/share/sounds/sf2/MuseScore_General.sf2"),
)
SOUNDFONT_LABEL = "MuseScore_General (Debian package musescore-general-soundfont, MIT licence)"
RENDERER = ("fluidsynth CLI, each stem alone, reverb and chorus off (-R 0 -C 0), gain 0.5, float output; "
            "20 Hz high-pass, 0.05 s fade-out; pan (-1 left .. +1 right) applied as constant-power stereo gains")


@dataclass(frozen=True)
class Instrument:
    """A General MIDI sound: the source class it stands for and its playable range (MIDI note numbers)."""

    cls: str
    gm_program: int | None  # 0-based; None for the drum kit
    low: int
    high: int


#: instrument name -> sound; programs as in bench-dev
INSTRUMENTS = {
    "piano": Instrument("piano", 0, 21, 108),
    "harpsichord": Instrument("harpsichord", 6, 29, 89),
    "organ": Instrument("organ", 19, 36, 96),
    "guitar_nylon": Instrument("guitar", 24, 40, 84),
    "guitar_steel": Instrument("guitar", 25, 40, 84),
    "bass_acoustic": Instrument("bass", 32, 28, 67),
    "bass_finger": Instrument("bass", 33, 28, 67),
    "violin": Instrument("violin", 40, 55, 103),
    "cello": Instrument("cello", 42, 36, 76),
    "harp": Instrument("harp", 46, 24, 103),
    "strings": Instrument("strings", 48, 28, 96),
    "choir_aahs": Instrument("choir", 52, 48, 79),
    "voice_oohs": Instrument("choir", 53, 48, 79),
    "flute": Instrument("flute", 73, 60, 96),
    "synth_saw": Instrument("synth", 81, 36, 96),
    "drums": Instrument("drums", None, 0, 127),
}


@dataclass(frozen=True)
class Source:
    """One stem: an instrument of :data:`INSTRUMENTS` playing score parts (0-based indices; none for drums)."""

    instrument: str
    parts: tuple[int, ...]
    transpose: int  # semitones
    pan: float  # −1 left … +1 right


@dataclass(frozen=True)
class ClipPlan:
    """One clip: a music21-corpus piece at ``bpm`` quarter notes per minute and its sources."""

    id: str
    piece: str
    title: str
    bpm: float
    sources: tuple[Source, ...]


S = Source
PLAN = (
    ClipPlan("h01", "bach/bwv108.6", "Bach, chorale BWV 108.6", 84,
             (S("organ", (1, 2), 0, -0.6), S("flute", (0,), 12, 0.6), S("bass_finger", (3,), -12, 0.0))),
    ClipPlan("h02", "bach/bwv120.6", "Bach, chorale BWV 120.6", 92,
             (S("choir_aahs", (0,), 0, 0.6), S("piano", (1, 2, 3), 0, -0.6), S("drums", (), 0, 0.0))),
    ClipPlan("h03", "mozart/k155/movement1", "Mozart, string quartet K. 155, i", 132,
             (S("violin", (0,), 0, -0.7), S("harpsichord", (1, 2), 0, 0.7), S("bass_finger", (3,), -12, 0.25),
              S("drums", (), 0, -0.25))),
    ClipPlan("h04", "bach/bwv40.8", "Bach, chorale BWV 40.8", 88,
             (S("synth_saw", (0,), 0, 0.6), S("guitar_steel", (1, 2, 3), 0, -0.6), S("drums", (), 0, 0.0))),
    ClipPlan("h05", "haydn/opus1no1/movement1", "Haydn, string quartet op. 1 no. 1, i", 144,
             (S("strings", (0, 1, 2), 0, -0.5), S("cello", (3,), 0, 0.5))),
    ClipPlan("h06", "bach/bwv11.6", "Bach, chorale BWV 11.6", 84,
             (S("voice_oohs", (0,), 0, -0.6), S("harp", (1, 2), 0, 0.6), S("bass_acoustic", (3,), -12, 0.0))),
    ClipPlan("h07", "beethoven/opus18no1/movement1", "Beethoven, string quartet op. 18 no. 1, i", 144,
             (S("violin", (0,), 0, 0.5), S("guitar_nylon", (1, 2, 3), 0, -0.5))),
    ClipPlan("h08", "schubert/Lindenbaum", "Schubert, Der Lindenbaum (Winterreise)", 76,
             (S("flute", (0,), 12, -0.5), S("piano", (1, 2), 0, 0.5))),
)

#: a score note: (start, length) in quarter notes, MIDI note number
ScoreNote = tuple[float, float, int]
#: a note or drum hit to render: (start, length) in quarter notes, MIDI note number, velocity
Note = tuple[float, float, int, int]


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/tagbox/bench-holdout`` (``~/.cache/tagbox/bench-holdout`` without it)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tagbox" / "bench-holdout"


def find_soundfont() -> Path:
    """The installed MuseScore General soundfont; RuntimeError naming the package when it is absent."""
    for path in SOUNDFONTS:
        if path.is_file():
            return path
    raise RuntimeError("MuseScore General soundfont not found: apt-get install musescore-general-soundfont")


def _fluidsynth() -> str:
    """Path of the fluidsynth binary; RuntimeError naming the package when it is absent."""
    binary = shutil.which("fluidsynth")
    if binary is None:
        raise RuntimeError("fluidsynth not found: apt-get install fluidsynth")
    return binary


def _check_tools() -> None:
    """RuntimeError naming the package to install when fluidsynth, music21 or mido is missing."""
    _fluidsynth()
    for module in ("music21", "mido"):
        if importlib.util.find_spec(module) is None:
            raise RuntimeError(f"{module} is not installed: pip install {module}")


def _part_notes(part: Any) -> list[ScoreNote]:
    """(start, length) in quarter notes and MIDI pitch of every sounding note of a score part (ties merged)."""
    return [(float(n.offset), float(n.quarterLength), p.midi)
            for n in part.stripTies().flatten().notes if n.quarterLength > 0 for p in n.pitches]


def _coverage(notes: list[ScoreNote], start: float, stop: float) -> float:
    """Share of ``[start, stop)`` (quarter notes) in which at least one of ``notes`` sounds."""
    covered, reach = 0.0, start
    for onset, length, _ in sorted(notes):
        begin, end = max(onset, reach), min(onset + length, stop)
        if end > begin:
            covered += end - begin
            reach = end
    return covered / (stop - start)


def _in_window(notes: list[ScoreNote], start: float, stop: float) -> list[ScoreNote]:
    """The notes that start in ``[start, stop)`` (quarter notes)."""
    return [n for n in notes if start <= n[0] < stop]


def _choose_window(bars: list[tuple[int, float, float]], full_bar: float, sources: list[list[ScoreNote]],
                   length: float) -> tuple[int, float, int]:
    """Index into ``bars`` of the window start (see module docstring), its minimum coverage and onsets.

    ``bars`` holds (number, offset, length) of every measure, ``full_bar`` and ``length`` are in quarter
    notes; ``sources`` holds the notes of every pitched source.
    """
    end = max(onset + dur for notes in sources for onset, dur, _ in notes)
    best: tuple[int, float, int] | None = None
    for index, (_, offset, bar_length) in enumerate(bars):
        if bar_length != full_bar or offset + length > end:
            continue
        window = [_in_window(notes, offset, offset + length) for notes in sources]
        coverage = min(_coverage(notes, offset, offset + length) for notes in window)
        onsets = sum(len(notes) for notes in window)
        if best is None or (round(coverage, 2), onsets) > (round(best[1], 2), best[2]):
            best = (index, coverage, onsets)
    if best is None or best[1] == 0:
        raise RuntimeError("no bar-aligned window in which every source plays")
    return best


def _groove(bars: list[tuple[int, float, float]], start: float, stop: float, rng: np.random.Generator) -> list[Note]:
    """Drum hits of the x/4 bars (number, offset, length) that start in ``[start, stop)`` (quarter notes)."""
    hits: list[Note] = []
    beat = 1.0  # quarter notes

    def hit(at: float, drum: int, velocity: int) -> None:
        ring = CRASH_QL if drum == CRASH else DRUM_HIT_QL
        hits.append((at, ring, drum, int(np.clip(velocity + rng.integers(-6, 7), 1, 127))))

    for number, offset, length in bars:
        if not start <= offset < stop:
            continue
        beats = round(length / beat)
        if number % 4 == 1:
            hit(offset, CRASH, 100)
        if number % 2 == 0 and beats >= 4:
            hit(offset + (beats - 1.5) * beat, KICK, 90)
        for b in range(beats):
            at = offset + b * beat
            if number % 4 == 0 and b == beats - 1:
                for i, drum in enumerate((SNARE, SNARE, HIGH_TOM, LOW_TOM)):
                    hit(at + i * beat / 4, drum, 88 + 6 * i)
                continue
            hit(at, KICK if b % 2 == 0 else SNARE, 105 if b % 2 == 0 else 98)
            hit(at, CLOSED_HAT, 80)
            hit(at + beat / 2, CLOSED_HAT, 62)
    return [h for h in hits if h[0] < stop]


def _write_midi(path: Path, notes: list[Note], start: float, bpm: float, channel: int, program: int | None) -> None:
    """A one-track MIDI file of ``notes`` shifted so that ``start`` (quarter notes) is time 0."""
    import mido

    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=round(60e6 / bpm))])
    if program is not None:
        track.append(mido.Message("program_change", program=program, channel=channel))
    events = []
    for onset, length, pitch, velocity in notes:
        on = round((onset - start) * TICKS_PER_QUARTER)
        off = max(on + 1, round((onset + length - start) * TICKS_PER_QUARTER))
        events.append((on, 1, mido.Message("note_on", note=pitch, velocity=velocity, channel=channel)))
        events.append((off, 0, mido.Message("note_off", note=pitch, velocity=0, channel=channel)))
    now = 0
    for tick, _, message in sorted(events, key=lambda e: e[:2]):
        track.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_QUARTER)
    midi.tracks.append(track)
    midi.save(path)


def _render(midi: Path, soundfont: Path, scratch: Path) -> np.ndarray:
    """Mono render of a MIDI file: ``FRAMES`` float64 samples at ``SAMPLE_RATE`` Hz, high-passed and faded."""
    wav = midi.with_suffix(".wav")
    subprocess.run([_fluidsynth(), "-n", "-i", "-q", "-o", "synth.dynamic-sample-loading=1", "-R", "0", "-C", "0",
                    "-g", str(FLUIDSYNTH_GAIN), "-r", str(SAMPLE_RATE), "-O", "float", "-T", "wav", "-F", str(wav),
                    str(soundfont), str(midi)], check=True, capture_output=True, cwd=scratch)
    audio, rate = sf.read(wav, dtype="float64", always_2d=True)
    if rate != SAMPLE_RATE:
        raise RuntimeError(f"fluidsynth wrote {rate} Hz, expected {SAMPLE_RATE} Hz")
    mono = sosfilt(butter(2, HIGHPASS_HZ, "highpass", fs=SAMPLE_RATE, output="sos"), audio.mean(axis=1))
    mono = np.pad(mono[:FRAMES], (0, max(0, FRAMES - len(mono))))
    fade = round(FADE_SECONDS * SAMPLE_RATE)
    mono[-fade:] *= np.linspace(1.0, 0.0, fade)
    return mono


def _db(value: float) -> float:
    """A linear amplitude in dBFS, rounded to 0.01 dB."""
    return round(20 * math.log10(value), 2) if value > 0 else -math.inf


def _render_clip(plan: ClipPlan, folder: Path, soundfont: Path, label: str, scratch: Path) -> dict[str, Any]:
    """Render one clip into ``folder/<id>/``; returns its manifest entry."""
    from music21 import corpus

    rng = np.random.default_rng([SEED, zlib.crc32(plan.id.encode())])
    score = corpus.parse(plan.piece)
    time_signature = score.recurse().getElementsByClass("TimeSignature").first()
    bars = [(m.number, float(m.offset), float(m.quarterLength))
            for m in score.parts[0].getElementsByClass("Measure")]
    length = SECONDS * plan.bpm / 60  # quarter notes
    pitched = [src for src in plan.sources if src.parts]
    notes = {src: [n for i in src.parts for n in _part_notes(score.parts[i])] for src in pitched}
    index, coverage, onsets = _choose_window(bars, float(time_signature.barDuration.quarterLength),
                                             list(notes.values()), length)
    start = bars[index][1]
    stop = start + length
    last_bar = max(number for number, offset, _ in bars if offset < stop)

    channels = iter(c for c in range(16) if c != DRUM_CHANNEL)
    entries, mono = [], []
    for src in plan.sources:
        sound = INSTRUMENTS[src.instrument]
        if src.parts:
            voiced: dict[tuple[float, int], float] = {}
            for onset, dur, pitch in _in_window(notes[src], start, stop):
                pitch += src.transpose
                while pitch < sound.low:
                    pitch += 12
                while pitch > sound.high:
                    pitch -= 12
                voiced[onset, pitch] = max(dur, voiced.get((onset, pitch), 0.0))
            events = [(onset, dur, pitch, int(np.clip(80 + rng.integers(-10, 11), 1, 127)))
                      for (onset, pitch), dur in sorted(voiced.items())]
            channel = next(channels)
        else:
            if time_signature.denominator != 4:
                raise ValueError(f"{plan.id}: the drum groove needs an x/4 metre, not {time_signature.ratioString}")
            events, channel = _groove(bars, start, stop, rng), DRUM_CHANNEL
        midi = scratch / f"{plan.id}-{sound.cls}.mid"
        _write_midi(midi, events, start, plan.bpm, channel, sound.gm_program)
        mono.append(_render(midi, soundfont, scratch))
        entry: dict[str, Any] = {
            "name": sound.cls, "class": sound.cls, "instrument": src.instrument, "gm_program": sound.gm_program,
            "gm_program_1based": None if sound.gm_program is None else sound.gm_program + 1,
            "midi_channel": channel + 1, "pan": src.pan,
            "score_parts": [{"index": i, "name": score.parts[i].partName} for i in src.parts],
            "transpose_semitones": src.transpose, "notes_in_clip": len(events),
        }
        if not src.parts:
            entry["groove"] = (f"programmed GM-kit groove in {time_signature.ratioString} at {plan.bpm:g} bpm "
                               "(kick/snare/hi-hat, fills every 4th bar)")
        entries.append(entry)

    targets = STEM_RMS_DBFS + rng.uniform(-STEM_RMS_SPREAD_DB, STEM_RMS_SPREAD_DB, len(mono))
    stems = []
    for signal, target, entry in zip(mono, targets, entries):
        rms = math.sqrt(np.mean(signal ** 2))
        if rms == 0:
            raise RuntimeError(f"{plan.id}: {entry['name']} rendered silent")
        stems.append(pan(signal * (10 ** (target / 20) / rms), entry["pan"]))
    gain = 10 ** (MIXTURE_PEAK_DBFS / 20) / np.abs(np.sum(stems, axis=0)).max()
    step = 2.0 ** -(GRID_BITS - 1)
    out = folder / plan.id
    out.mkdir(parents=True)
    decoded, grid_error = [], 0.0
    for stem, entry in zip(stems, entries):
        gridded = np.round(stem * gain / step) * step
        if np.abs(gridded).max() >= 1.0:
            raise RuntimeError(f"{plan.id}: {entry['name']} clips")
        sf.write(out / f"{entry['name']}.flac", gridded.T, SAMPLE_RATE, subtype="PCM_24", format="FLAC")
        back = sf.read(out / f"{entry['name']}.flac", dtype="float64", always_2d=True)[0].T
        grid_error = max(grid_error, float(np.abs(back - gridded).max()))
        entry["rms_dbfs"] = _db(math.sqrt(np.mean(back ** 2)))
        entry["peak_dbfs"] = _db(float(np.abs(back).max()))
        decoded.append(back)
    total = np.sum(decoded, axis=0)
    sf.write(out / "mixture.flac", total.T, SAMPLE_RATE, subtype="PCM_24", format="FLAC")
    mixture = sf.read(out / "mixture.flac", dtype="float64", always_2d=True)[0].T
    error = float(np.abs(mixture - total).max())
    if error > 1e-6:
        raise RuntimeError(f"{plan.id}: mixture differs from the sum of its stems by {error:.3g}")
    return {
        "id": plan.id, "piece": plan.piece, "piece_title": plan.title, "bpm": float(plan.bpm),
        "time_signature": time_signature.ratioString, "bars": [bars[index][0], last_bar], "offset_ql": start,
        "offset_seconds_at_bpm": round(start * 60 / plan.bpm, 4), "window_min_coverage": round(coverage, 3),
        "window_onsets": onsets, "duration": SECONDS, "sample_rate": SAMPLE_RATE, "channels": 2, "soundfont": label,
        "sources": entries, "sample_grid_bits": GRID_BITS, "stems_decoded_minus_gridded_max_abs": grid_error,
        "mixture_peak_dbfs": _db(float(np.abs(mixture).max())), "mixture_minus_stem_sum_max_abs": error,
    }


def render_holdout(folder: Path, soundfont: Path | None = None, ids: list[str] | None = None) -> Path:
    """Render the clips of :data:`PLAN` (all, or just ``ids``) into ``folder``; returns ``folder``.

    Skips when ``folder/manifest.json`` already holds the same recipe version, soundfont and clips.
    Renders into a temporary sibling folder and renames it at the end, replacing an older holdout set.

    Raises:
        ValueError: an id that is not in :data:`PLAN`.
        RuntimeError: fluidsynth, the soundfont, music21 or mido is missing (the message names the
            package to install), ``folder`` holds something other than a holdout set, or a clip fails a
            check (a silent or clipping stem, a mixture that is not the sum of its stems).
    """
    unknown = set(ids or ()) - {p.id for p in PLAN}
    if unknown:
        raise ValueError(f"unknown clip ids {sorted(unknown)}; the plan has {[p.id for p in PLAN]}")
    plans = [p for p in PLAN if ids is None or p.id in ids]
    label = SOUNDFONT_LABEL if soundfont is None else f"{soundfont.name} (user-supplied)"
    soundfont = soundfont or find_soundfont()
    if not soundfont.is_file():
        raise RuntimeError(f"soundfont {soundfont} not found")
    _check_tools()
    manifest = folder / "manifest.json"
    old = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}
    if (old.get("set") == "holdout" and old.get("recipe_version") == RECIPE_VERSION
            and old.get("soundfont") == label and [c["id"] for c in old["clips"]] == [p.id for p in plans]):
        return folder
    if folder.exists() and any(folder.iterdir()) and old.get("set") != "holdout":
        raise RuntimeError(f"{folder} is not empty and holds no holdout set; not replacing it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with tempfile.TemporaryDirectory() as scratch:
            clips = [_render_clip(plan, tmp, soundfont, label, Path(scratch)) for plan in plans]
        (tmp / "manifest.json").write_text(json.dumps({
            "set": "holdout", "recipe_version": RECIPE_VERSION, "n_clips": len(clips), "sample_rate": SAMPLE_RATE,
            "seconds": SECONDS, "channels": 2, "format": "FLAC PCM_24",
            "source_material": "scores from the music21 corpus (public-domain works), pieces not in bench-dev",
            "soundfont": label, "renderer": RENDERER,
            "levels": "every stem at -20 dBFS RMS +- 3 dB (fixed seed), then one gain per clip: mixture peak -1 dBFS",
            "mixture": "sum of the stems as decoded from their FLAC files, written as FLAC PCM_24",
            "clips": clips,
        }, indent=1) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def main() -> None:
    """Render the holdout set into ``sys.argv[1]`` or :func:`default_folder` and print the folder."""
    print(render_holdout(Path(sys.argv[1]) if len(sys.argv) > 1 else default_folder()))


if __name__ == "__main__":
    main()
