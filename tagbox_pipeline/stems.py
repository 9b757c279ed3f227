"""Writing one track's stem files: ``<source>.wav`` per source and ``residual.wav``.

They are written block by block into a (hidden, staging) folder and fsynced; publishing that
folder is :mod:`tagbox_pipeline.publish`'s job. Stems keep the input's rate, channel count and
length; the sample encoding follows
:func:`~tagbox_pipeline.audio_io.output_subtype`. The residual is the mixture minus the stems *as
they are stored* (after rounding to the output encoding), so the files null-sum exactly for PCM.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import numpy as np
import soundfile as sf

from .audio_io import AudioInfo, output_subtype, quantise

#: name of the file holding what the stems do not explain
RESIDUAL = "residual"


def _os_cause(handle: sf.SoundFile, exc: sf.LibsndfileError) -> str:
    """The OS reason of a failed libsndfile write (e.g. "No space left on device", "File too large").

    soundfile only says "System error."; libsndfile keeps the OS message per open file (sf_strerror).
    """
    try:
        return sf._ffi.string(sf._snd.sf_strerror(handle._file)).decode(errors="replace")
    except (AttributeError, TypeError):  # a soundfile without these internals: its own message
        return str(exc)


class StemWriter:
    """Writes a track's stems and residual block by block into ``folder``.

    Use as a context manager; leaving it closes the files (the caller removes a folder left
    unfinished by an error). :meth:`close` makes the files durable (fsync).

    Args:
        folder: an existing (staging) folder.
        info: the input, whose rate and channel count the stems keep.
        sources: source names, one file each, in the order of the stem blocks.
        file_format: ``"wav"`` or ``"flac"``.
    """

    def __init__(self, folder: Path, info: AudioInfo, sources: list[str], file_format: str) -> None:
        self.subtype = output_subtype(info, file_format)
        self.folder = folder
        self.paths = [folder / f"{source}.{file_format}" for source in [*sources, RESIDUAL]]
        self._files = [sf.SoundFile(p, "w", info.sample_rate, info.channels, self.subtype, format=file_format.upper())
                       for p in self.paths]

    def write(self, stems: np.ndarray, mix: np.ndarray) -> None:
        """Append the next block: ``stems`` ``[S, channels, n]`` and the mixture ``[channels, n]`` it came from."""
        stored = quantise(stems, self.subtype)
        residual = quantise(mix.astype(np.float64) - stored.sum(axis=0), self.subtype)
        for handle, path, block in zip(self._files, self.paths, [*stored, residual]):
            try:
                handle.write(block.T)
            except sf.LibsndfileError as exc:
                raise OSError(f"cannot write stem {path.name} ({_os_cause(handle, exc)})") from exc

    def close(self) -> None:
        """Close every file and fsync it."""
        for handle, path in zip(self._files, self.paths):
            handle.close()
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def __enter__(self) -> StemWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        for handle in self._files:
            handle.close()
