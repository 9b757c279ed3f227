"""Checks shared by the tests that read a written stem folder back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def assert_stems_null_sum(track: Path, mixture: Path, stems: list[str], rate: int, channels: int,
                          subtype: str) -> np.ndarray:
    """Every ``<stem>.wav`` in ``track`` has the given rate (Hz), channels, the mixture's length and
    ``subtype``, holds finite samples, and all of them sum back to the mixture within −90 dB.

    Returns the mixture as float64 ``[samples, channels]``.
    """
    mix = sf.read(mixture, dtype="float64", always_2d=True)[0]
    total = np.zeros_like(mix)
    for stem in stems:
        info = sf.info(track / f"{stem}.wav")
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (rate, channels, len(mix), subtype)
        data = sf.read(track / f"{stem}.wav", dtype="float64", always_2d=True)[0]
        assert np.isfinite(data).all()
        total += data
    error_db = 10 * np.log10(np.sum((total - mix) ** 2) / np.sum(mix ** 2) + 1e-300)
    assert error_db <= -90, f"stems + residual = mixture within {error_db:.1f} dB"
    return mix
