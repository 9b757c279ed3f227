"""Render the bundled demo example (provenance script; the rendered files are committed).

Music: the "Ode to Joy" theme from Beethoven's Symphony No. 9 (1824, public domain), arranged here
as a melody with triads (piano), a root-note bass line (GM fingered bass) and a rock groove (GM
drums), 4 bars at 112 bpm. Rendered part by part with FluidSynth and the FluidR3_GM soundfont (MIT
licence), so the true stems are known and the mixture is exactly their sum.

Needs: ``apt-get install fluidsynth fluid-soundfont-gm`` and ``pip install mido`` (script-only
dependencies, not the project's). Writes ``examples/demo/mixture.flac`` and
``examples/demo/stems/<source>.flac``: mono, 22.05 kHz, 16-bit (kept under 1 MB together).

Usage: ``python scripts/render_examples.py [--soundfont PATH]``
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

RATE = 22050
BPM = 112
TICKS = 480  # per quarter note
OUT = Path(__file__).resolve().parents[1] / "examples" / "demo"

C, D, E, F, G = 60, 62, 64, 65, 67
#: (pitch, length in quarters) of the theme, 4 bars
MELODY = [(E, 1), (E, 1), (F, 1), (G, 1), (G, 1), (F, 1), (E, 1), (D, 1),
          (C, 1), (C, 1), (D, 1), (E, 1), (E, 1.5), (D, 0.5), (D, 2)]
CHORDS = [(48, 52, 55), (43, 47, 50), (48, 52, 55), (43, 47, 50)]  # C G C G, one per bar
BASS_ROOTS = [36, 31, 36, 31]


def _track(notes: list[tuple[float, float, int, int]], channel: int, program: int | None) -> mido.MidiFile:
    """A one-track MIDI file from (start quarter, length quarters, pitch, velocity) notes."""
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(BPM)))
    if program is not None:
        track.append(mido.Message("program_change", channel=channel, program=program))
    events = []
    for start, length, pitch, velocity in notes:
        events.append((round(start * TICKS), 1, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
        events.append((round((start + length) * TICKS), 0, mido.Message("note_off", channel=channel, note=pitch)))
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    return midi


def parts() -> dict[str, mido.MidiFile]:
    """The three parts of the arrangement."""
    melody, start = [], 0.0
    for pitch, length in MELODY:
        melody.append((start, length, pitch, 96))
        start += length
    piano = melody + [(bar * 4 + beat, 1, p, 64) for bar, chord in enumerate(CHORDS) for beat in (0, 2) for p in chord]
    bass = [(bar * 4 + beat, 0.9, root, 100) for bar, root in enumerate(BASS_ROOTS) for beat in range(4)]
    drums = [(i * 0.5, 0.25, 42, 70) for i in range(32)]  # closed hi-hat eighths
    drums += [(bar * 4 + beat, 0.5, 36, 110) for bar in range(4) for beat in (0, 2)]  # kick
    drums += [(bar * 4 + beat, 0.5, 38, 100) for bar in range(4) for beat in (1, 3)]  # snare
    return {"piano": _track(piano, 0, 0), "bass": _track(bass, 1, 33), "drums": _track(drums, 9, None)}


def render(midi: mido.MidiFile, soundfont: Path, folder: Path, name: str) -> np.ndarray:
    """Render one part with FluidSynth (reverb and chorus off) to mono float64 at :data:`RATE`."""
    mid, wav = folder / f"{name}.mid", folder / f"{name}.wav"
    midi.save(mid)
    subprocess.run(["fluidsynth", "-ni", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(RATE), "-F", str(wav),
                    str(soundfont), str(mid)], check=True, capture_output=True)
    audio, _ = sf.read(wav, dtype="float64", always_2d=True)
    return audio.mean(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soundfont", type=Path, default=Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"))
    args = parser.parse_args()
    seconds = 4 * 4 * 60 / BPM
    with tempfile.TemporaryDirectory() as tmp:
        stems = {name: render(midi, args.soundfont, Path(tmp), name) for name, midi in parts().items()}
    length = int(seconds * RATE)
    stems = {name: np.pad(a, (0, max(0, length - len(a))))[:length] for name, a in stems.items()}
    scale = 10 ** (-1 / 20) / np.abs(sum(stems.values())).max()  # mixture peaks at -1 dBFS
    quantised = {name: np.round(a * scale * 32767).astype(np.int16) for name, a in stems.items()}
    (OUT / "stems").mkdir(parents=True, exist_ok=True)
    for name, pcm in quantised.items():
        sf.write(OUT / "stems" / f"{name}.flac", pcm, RATE, subtype="PCM_16")
    mixture = sum(pcm.astype(np.int32) for pcm in quantised.values())
    sf.write(OUT / "mixture.flac", mixture.astype(np.int16), RATE, subtype="PCM_16")
    print(f"wrote {OUT} ({seconds:.1f} s, {RATE} Hz mono)")


if __name__ == "__main__":
    main()
