"""Spectrogram PNGs of stems, computed from a bounded number of frames (memory flat in length)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

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


def write_spectrogram_png(path: Path, png: Path, title: str) -> Path:
    """Draw the spectrogram of audio file ``path`` (log-frequency, dB) into ``png``; returns ``png``."""
    db, seconds, rate = frame_magnitudes_db(path)
    freqs = np.linspace(0, rate / 2, db.shape[0])
    times = np.linspace(0, seconds, db.shape[1])
    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    try:
        top = float(db.max())
        mesh = ax.pcolormesh(times, freqs[1:], db[1:], shading="auto", vmin=top - 80, vmax=top, cmap="magma")
        ax.set_yscale("log")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (Hz)")
        ax.set_title(title)
        fig.colorbar(mesh, ax=ax, label="dB")
        fig.tight_layout()
        fig.savefig(png)
    finally:
        plt.close(fig)
    return png
