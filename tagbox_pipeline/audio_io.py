"""Reading audio safely and choosing how stems are stored.

Inputs are opened read-only and never modified. Every failure is an :class:`AudioReadError` naming
the file and the cause. :func:`read_info` decodes the whole file once, block by block (memory flat
in file length), so truncated or corrupt data and NaN/Inf samples are found before any work starts;
:func:`read_block` then seeks to just the frames a chunk needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from .errors import AudioReadError, UserError

#: shortest input supported, in s (below this an STFT frame of the priors holds no music)
MIN_SECONDS = 0.1
#: frames decoded per block while validating a file
SCAN_FRAMES = 1 << 16
#: PCM bit depths written as they came in
_PCM_BITS = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
#: libsndfile's log line for a data chunk whose declared size disagrees with the file (WAV, RF64, W64)
_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: declared sizes at or above this are placeholders of streamed WAVs, not truncation
_STREAMING_SIZE = 0x7FFFFFFF
#: channels a FLAC file can hold
FLAC_MAX_CHANNELS = 8


@dataclass(frozen=True)
class AudioInfo:
    """What a validated audio file holds.

    Attributes:
        path: the file.
        sample_rate: in Hz.
        channels: channel count.
        frames: length in samples per channel.
        format: soundfile container name, e.g. ``"WAV"``, ``"FLAC"``.
        subtype: soundfile sample encoding, e.g. ``"PCM_16"``, ``"FLOAT"``.
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Length in s."""
        return self.frames / self.sample_rate


def read_info(path: str | Path) -> AudioInfo:
    """Open ``path`` read-only, decode it completely in blocks and describe it.

    Raises:
        AudioReadError: naming the file, when it is missing, a directory, empty, not audio,
            truncated or corrupt, has zero frames, is shorter than :data:`MIN_SECONDS`, or
            holds NaN/Inf samples (with the time of the first one).
    """
    path = Path(path)
    if not path.exists():
        raise AudioReadError("file not found", path)
    if path.is_dir():
        raise AudioReadError("is a directory, not an audio file", path)
    if path.stat().st_size == 0:
        raise AudioReadError("file is empty (0 bytes)", path)
    try:
        audio = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioReadError(f"not readable as audio ({getattr(exc, 'error_string', exc)})", path) from None
    with audio:
        info = AudioInfo(path, audio.samplerate, audio.channels, audio.frames, audio.format, audio.subtype)
        if info.frames == 0:
            raise AudioReadError("audio has zero frames", path)
        if cut := _TRUNCATED.search(audio.extra_info):
            declared, present = (int(n) for n in cut.groups())
            if present < declared < _STREAMING_SIZE:
                raise AudioReadError(f"truncated: header declares {declared} data bytes, {present} present", path)
        if info.duration < MIN_SECONDS:
            raise AudioReadError(f"audio is {info.duration:.3f} s long; at least {MIN_SECONDS} s is needed", path)
        decoded = 0
        try:
            for block in audio.blocks(SCAN_FRAMES, dtype="float32", always_2d=True):
                finite = np.isfinite(block)
                if not finite.all():
                    first = decoded + int(np.argmin(finite.all(axis=1)))
                    raise AudioReadError(f"NaN or Inf sample at {first / info.sample_rate:.3f} s", path)
                decoded += len(block)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise AudioReadError(f"corrupt or truncated audio data after {decoded} frames "
                                 f"({getattr(exc, 'error_string', exc)})", path) from None
    if decoded != info.frames:
        raise AudioReadError(f"truncated: header says {info.frames} frames, {decoded} could be decoded", path)
    return info


def read_block(path: str | Path, start: int, stop: int) -> np.ndarray:
    """Frames ``[start, stop)`` of ``path`` as float32 ``[channels, stop - start]`` (seeked, not the whole file).

    Raises:
        AudioReadError: when the file cannot be read or holds fewer frames than asked for.
    """
    try:
        data, _ = sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioReadError(f"cannot read frames {start}-{stop} ({exc})", path) from None
    if len(data) != stop - start:
        raise AudioReadError(f"file changed or truncated: frames {start}-{stop} asked, {len(data)} read", path)
    return np.ascontiguousarray(data.T)


def output_subtype(info: AudioInfo, file_format: str) -> str:
    """The sample encoding of the stems of ``info``'s file, written as ``file_format`` (``wav``/``flac``).

    WAV keeps PCM_16/24/32, FLOAT and DOUBLE as they came in; FLAC inputs, 8-bit and
    compressed/lossy encodings (ADPCM, µ-law, MP3, Vorbis...) become PCM_24 (PCM_16 for 8-bit,
    which already has ample headroom over its own noise floor). FLAC output is PCM_16 for 16-bit
    (or 8-bit) inputs and PCM_24 otherwise (FLAC holds no float or 32-bit samples).

    Raises:
        UserError: for FLAC output of more than :data:`FLAC_MAX_CHANNELS` channels.
    """
    if info.format == "FLAC":
        wav = "PCM_24"
    elif info.subtype in _PCM_BITS or info.subtype in ("FLOAT", "DOUBLE"):
        wav = info.subtype
    elif info.subtype in ("PCM_S8", "PCM_U8"):
        wav = "PCM_16"
    else:
        wav = "PCM_24"
    if file_format == "wav":
        return wav
    if info.channels > FLAC_MAX_CHANNELS:
        raise UserError(f"FLAC holds at most {FLAC_MAX_CHANNELS} channels, input has {info.channels}; use --format wav",
                        info.path)
    return "PCM_16" if wav == "PCM_16" else "PCM_24"


def quantise(audio: np.ndarray, subtype: str) -> np.ndarray:
    """``audio`` rounded and clipped to exactly the values ``subtype`` stores, as float64.

    Writing the result and reading it back gives the same numbers, which lets the residual be
    computed from the stems as they will be read (stems + residual == mixture bit-exactly for PCM).
    """
    bits = _PCM_BITS.get(subtype)
    if subtype == "FLOAT":
        return audio.astype(np.float32).astype(np.float64)
    if bits is None:
        return audio.astype(np.float64)
    scale = float(1 << (bits - 1))
    return np.clip(np.round(audio * scale), -scale, scale - 1) / scale


class SampleReader(Protocol):
    """Where a track's samples come from: a file on disk or an array in memory."""

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` as float32 ``[channels, stop - start]``."""


@dataclass(frozen=True)
class FileSamples:
    """Samples of an audio file, read by seeking (see :func:`read_block`)."""

    path: Path

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` of the file."""
        return read_block(self.path, start, stop)


@dataclass(frozen=True)
class ArraySamples:
    """Samples of an in-memory mixture ``[channels, n]`` (float32)."""

    audio: np.ndarray

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` of the array (a view)."""
        return self.audio[:, start:stop]
