"""Render the bundled audio (test fixtures and the demo example) from a public-domain score.

Provenance script, run once by a developer; its outputs are committed, so neither tests nor users
need it. Needs fluidsynth with the FluidR3_GM soundfont (MIT) and the music21 corpus::

    apt-get install -y fluidsynth fluid-soundfont-gm
    python3 -m venv /tmp/render && /tmp/render/bin/pip install music21 soundfile soxr numpy
    /tmp/render/bin/python scripts/render_examples.py

Score: J. S. Bach, chorale BWV 66.6 (four-part harmonisation, music21 corpus, public domain) at
96 bpm. Drums are a rock groove programmed here (kick, snare, closed hi-hat, a tom fill every fourth
bar). Each stem is rendered alone (reverb and chorus off), so the demo mixture is exactly the sum of
its stems as decoded.

The drum fixture is a separate loop, closer to a recorded rock drummer than the demo's drum stem: at
100 bpm on the FluidR3_GM "Power" kit, with a crash on the phrase start, an open hi-hat, a fill,
small seeded timing/velocity variations (Python's ``random.Random``, whose ``random()`` sequence is
stable across versions) and fluidsynth's reverb on. It is exactly 5 bars, so a tagger that tiles it
to fill a 29 s window hears a seamless loop.

Writes:
    tests/data/drums.flac   12 s drum loop (5 bars at 100 bpm), mono 22.05 kHz 16-bit, peak -1 dBFS
    tests/data/piano.flac   8 s piano phrase (all four chorale voices), same format
    examples/demo/mixture.flac + <source>.flac + manifest.json   piano + bass + drums,
        11 s mono 22.05 kHz 16-bit, under 1 MB in all (true stems beside the mixture, where
        scripts/demo.py looks for them)
"""

from __future__ import annotations

import json
import random
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from music21 import corpus, instrument, midi, note, stream, tempo

REPO = Path(__file__).resolve().parent.parent
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PIECE = "bach/bwv66.6"
BPM = 96
RENDER_RATE = 44100
RATE = 22050  # at 44.1 kHz the mixture plus its three stems would not fit in DEMO_MAX_BYTES
DEMO_SECONDS = 11.0
DEMO_MAX_BYTES = 1_000_000
FIXTURE_SECONDS = 8.0
LOOP_BPM = 100
LOOP_BARS = 5  # 12 s at 100 bpm
LOOP_KIT = 16  # GM percussion program (bank 128): "Power" in FluidR3_GM
LOOP_SEED = 1


def chorale(program: int, octave_shift: int, parts: list[int]) -> stream.Score:
    """The chorale's ``parts`` on GM ``program``, transposed by ``octave_shift`` octaves."""
    score = corpus.parse(PIECE)
    out = stream.Score()
    for index in parts:
        part = score.parts[index].flatten().notesAndRests.stream()
        part = part.transpose(12 * octave_shift) if octave_shift else part
        voice = stream.Part()
        voice.insert(0, instrument.instrumentFromMidiProgram(program))
        voice.insert(0, tempo.MetronomeMark(number=BPM))
        for element in part:
            voice.insert(element.offset, element)
        out.insert(0, voice)
    return out


def drum_groove(bars: int) -> stream.Score:
    """Kick on 1 and 3, snare on 2 and 4, closed hi-hat eighths, a tom fill in every fourth bar."""
    part = stream.Part()
    part.insert(0, tempo.MetronomeMark(number=BPM))
    for bar in range(bars):
        for eighth in range(8):
            fill = bar % 4 == 3 and eighth >= 4
            hits = [(45 + 3 * ((eighth - 4) // 2), 100)] if fill else [(42, 70)]
            if eighth in (0, 4):
                hits.append((36, 110))
            if eighth in (2, 6) and not fill:
                hits.append((38, 105))
            for pitch, velocity in hits:
                hit = note.Note(pitch, quarterLength=0.5)
                hit.volume.velocity = velocity
                part.insert(4.0 * bar + 0.5 * eighth, hit)
    score = stream.Score()
    score.insert(0, part)
    return score


def rock_loop(bars: int, bpm: int, kit: int, seed: int) -> stream.Score:
    """A rock beat as a drummer plays it, on GM drum kit ``kit``.

    Kick on 1, 3 and the "and" of 3, snare on 2 and 4, hi-hat eighths (accented on the beat, open on
    the "and" of 4), a crash opening every four-bar phrase, and a snare-tom fill on beat 4 of its last
    bar. Each hit is moved by up to ±10 ms and its velocity by up to ±12 (seeded, so reproducible).
    """
    kick, snare, closed, opened, crash, toms = 36, 38, 42, 46, 49, (50, 47, 41)
    rng = random.Random(seed)
    drummer = instrument.Instrument()
    drummer.midiProgram = kit
    part = stream.Part()
    part.insert(0, drummer)
    part.insert(0, tempo.MetronomeMark(number=bpm))

    def hit(bar: int, beat: float, pitch: int, velocity: int, length: float = 0.25) -> None:
        velocity = min(127, max(1, velocity + round((2 * rng.random() - 1) * 12)))
        shift = round((2 * rng.random() - 1) * 0.010 * bpm / 60 * 480) / 480  # up to ±10 ms, in quarters
        struck = note.Note(pitch, quarterLength=length)
        struck.volume.velocity = velocity
        part.insert(4.0 * bar + beat + (0.0 if bar == beat == 0 else shift), struck)

    for bar in range(bars):
        fill = bar % 4 == 3
        if bar % 4 == 0:
            hit(bar, 0, crash, 105, 1.0)
        for beat, velocity in ((0, 110), (2, 110), (2.5, 95)):
            hit(bar, beat, kick, velocity)
        for beat in (1, 3) if not fill else (1,):
            hit(bar, beat, snare, 110)
        for eighth in range(6 if fill else 8):
            beat = 0.5 * eighth
            if beat == 3.5:
                hit(bar, beat, opened, 85, 0.5)
            elif not (bar % 4 == 0 and beat == 0):  # the crash takes the first hi-hat
                hit(bar, beat, closed, 90 if eighth % 2 == 0 else 65)
        if fill:
            for sixteenth, pitch in enumerate((snare, *toms)):
                hit(bar, 3 + 0.25 * sixteenth, pitch, 100)
    score = stream.Score()
    score.insert(0, part)
    return score


def render(score: stream.Score, drums: bool, seconds: float, work: Path, reverb: bool = False) -> np.ndarray:
    """Render ``score`` with fluidsynth (chorus off; reverb only if asked) to ``seconds`` s of mono at :data:`RATE`."""
    path_mid, path_wav = work / "score.mid", work / "score.wav"
    smf = midi.translate.streamToMidiFile(score)
    if drums:  # General MIDI percussion lives on channel 10
        for track in smf.tracks:
            for event in track.events:
                if event.channel is not None:
                    event.channel = 10
    smf.open(str(path_mid), "wb")
    smf.write()
    smf.close()
    subprocess.run(["fluidsynth", "-ni", "-q", "-R", str(int(reverb)), "-C", "0", "-g", "0.6", "-r", str(RENDER_RATE),
                    "-F", str(path_wav), str(SOUNDFONT), str(path_mid)], check=True)
    audio = sf.read(path_wav, dtype="float64", always_2d=True)[0].mean(axis=1)
    audio = soxr.resample(audio, RENDER_RATE, RATE, quality="HQ")[: int(seconds * RATE)]
    fade = int(0.05 * RATE)
    audio[-fade:] *= np.linspace(1.0, 0.0, fade)
    return audio


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Round to 16-bit integers (raises if it would clip)."""
    scaled = np.round(audio * 32767)
    assert np.abs(scaled).max() <= 32767, "would clip"
    return scaled.astype(np.int16)


def peak_db(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """``audio`` scaled to peak at ``dbfs`` dB."""
    return audio * 10 ** (dbfs / 20) / np.abs(audio).max()


def main() -> None:
    """Render the fixtures and the demo example into the repository."""
    fixtures, demo = REPO / "tests" / "data", REPO / "examples" / "demo"
    fixtures.mkdir(parents=True, exist_ok=True)
    demo.mkdir(parents=True, exist_ok=True)
    bars = int(np.ceil(DEMO_SECONDS * BPM / 60 / 4)) + 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stems = {
            "piano": render(chorale(0, 0, [0, 1, 2, 3]), False, DEMO_SECONDS, work),
            "bass": render(chorale(33, -1, [3]), False, DEMO_SECONDS, work),
            "drums": render(drum_groove(bars), True, DEMO_SECONDS, work),
        }
        loop = render(rock_loop(LOOP_BARS + 1, LOOP_BPM, LOOP_KIT, LOOP_SEED), True, LOOP_BARS * 4 * 60 / LOOP_BPM,
                      work, reverb=True)
    sf.write(fixtures / "drums.flac", to_int16(peak_db(loop, -1.0)), RATE, subtype="PCM_16")
    sf.write(fixtures / "piano.flac", to_int16(peak_db(stems["piano"][: int(FIXTURE_SECONDS * RATE)], -1.0)),
             RATE, subtype="PCM_16")

    levels = {"piano": -20.0, "bass": -23.0, "drums": -20.0}  # dB RMS before the common mix gain
    stems = {name: audio * 10 ** (levels[name] / 20) / np.sqrt(np.mean(audio**2)) for name, audio in stems.items()}
    gain = 10 ** (-1 / 20) / np.abs(sum(stems.values())).max()  # mix peaks at -1 dBFS
    quantised = {name: to_int16(audio * gain) for name, audio in stems.items()}
    mixture = np.sum([q.astype(np.int32) for q in quantised.values()], axis=0)
    for name, samples in quantised.items():
        sf.write(demo / f"{name}.flac", samples, RATE, subtype="PCM_16")
    sf.write(demo / "mixture.flac", to_int16(mixture / 32767), RATE, subtype="PCM_16")
    manifest = {
        "piece": PIECE, "bpm": BPM, "seconds": DEMO_SECONDS, "sample_rate": RATE, "channels": 1,
        "soundfont": "FluidR3_GM (fluid-soundfont-gm, MIT)", "mixture_equals_sum_of_stems": True,
        "sources": [{"name": "piano", "gm_program": 0}, {"name": "bass", "gm_program": 33},
                    {"name": "drums", "gm_program": None}],
    }
    (demo / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    total = sum(path.stat().st_size for path in demo.iterdir())
    assert total <= DEMO_MAX_BYTES, f"demo example is {total} bytes, over {DEMO_MAX_BYTES}"
    print(f"wrote {fixtures} and {demo} ({total} bytes)")


if __name__ == "__main__":
    main()
