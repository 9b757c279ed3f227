"""Spectrogram PNGs of stems, computed from a bounded number of frames (memory flat in length)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

#: ending of a stem's spectrogram image, written beside it: ``<stem>.spectrogram.png``
SPECTROGRAM_SUFFIX = ".spectrogram.png"
#: FFT size in samples of each analysed frame
N_FFT = 2048
#: at most this many frames (image columns) are read, evenly spread over the file
MAX_FRAMES = 600


def frame_magnitudes_db(path: Path, n_fft: int = N_FFT, max_frames: int = MAX_FRAMES) -> tuple[np.ndarray, float, int]:
    """Magnitude spectra in dB (``[bins, frames]``) of up to ``max_frames`` Hann-windowed frames.

    Frames are read one at a time at evenly spaced positions (hop = length / frames, ≥ n_fft/4
    samples), channels averaged. Returns the spectra, the duration in s and the sample rate in Hz.
    """
    with sf.SoundFile(path) as reader:
        rate, total = reader.samplerate, reader.frames
        count = int(max(1, min(max_frames, total // max(1, n_fft // 4))))
        starts = np.linspace(0, max(0, total - n_fft), count).astype(int)
        window = np.hanning(n_fft).astype(np.float32)
        columns = np.empty((n_fft // 2 + 1, count), dtype=np.float32)
        for i, start in enumerate(starts):
            reader.seek(int(start))
            frame = reader.read(n_fft, dtype="float32", always_2d=True).mean(axis=1)
            frame = np.pad(frame, (0, n_fft - frame.shape[0]))
            columns[:, i] = np.abs(np.fft.rfft(frame * window))
    db = 20 * np.log10(np.maximum(columns, 1e-7))
    return db, total / rate, rate


#: image rows: log-spaced frequencies from LOWEST_HZ to Nyquist
ROWS = 256
#: lowest frequency shown, in Hz
LOWEST_HZ = 20.0


def write_spectrogram_png(path: Path, png: Path, title: str) -> Path:
    """Draw the spectrogram of audio file ``path`` (log-frequency, dB) into ``png``; returns ``png``.

    The dB spectra are interpolated onto ``ROWS`` log-spaced frequencies and drawn as one image
    (a raster, not a mesh of quads: fast enough to draw per stem in an unattended pipeline), on a
    :class:`matplotlib.figure.Figure` with its own Agg canvas (no pyplot state). matplotlib is
    imported here, not with the module: it adds about 0.5 s to the start of every command, and most
    commands draw no image.
    """
    from matplotlib.figure import Figure

    db, seconds, rate = frame_magnitudes_db(path)
    freqs = np.linspace(0, rate / 2, db.shape[0])
    rows = np.geomspace(LOWEST_HZ, rate / 2, ROWS)
    image = np.stack([np.interp(rows, freqs, column) for column in db.T], axis=1)
    fig = Figure(figsize=(8, 3), dpi=100)
    ax = fig.subplots()
    top = float(db.max())
    shown = ax.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                      extent=(0.0, seconds, 0.0, ROWS), interpolation="nearest")
    ticks = [hz for hz in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if LOWEST_HZ <= hz <= rate / 2]
    ax.set_yticks([ROWS * np.log(hz / LOWEST_HZ) / np.log(rate / 2 / LOWEST_HZ) for hz in ticks],
                  [f"{hz // 1000}k" if hz >= 1000 else str(hz) for hz in ticks])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title)
    fig.colorbar(shown, ax=ax, label="dB")
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.17, top=0.88)
    fig.savefig(png)
    return png


def spectrogram_name(stem_file: str) -> str:
    """File name of the spectrogram PNG of stem file ``stem_file`` (``drums.wav`` → ``drums.spectrogram.png``)."""
    return f"{Path(stem_file).stem}{SPECTROGRAM_SUFFIX}"


def write_spectrograms(track: str, stems: list[Path]) -> list[Path]:
    """Write ``<stem>.spectrogram.png`` beside each stem file (titled ``<track>: <stem>``); returns their paths."""
    return [write_spectrogram_png(stem, stem.with_name(spectrogram_name(stem.name)), f"{track}: {stem.stem}")
            for stem in stems]
