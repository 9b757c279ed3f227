"""The engine's library API: :class:`Separator` owns the settings and the loaded models and turns a
track (a file, or an array in memory) into one stem per requested source plus a residual.

One chunk loop serves both: :meth:`Separator.chunk_results` reads each chunk's samples (with
margins) from a :class:`~tagbox_pipeline.audio_io.SampleReader` and steers all sources at once;
:func:`~tagbox_pipeline.assembly.assemble` crossfades the results, into an array
(:meth:`Separator.separate`) or, through :func:`~tagbox_pipeline.publish.publish_track`, into a
finished stem folder (:meth:`Separator.separate_file`). Nothing here knows about Prefect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import steering
from .allocator import release_free_memory, tune_allocator
from .assembly import assemble
from .audio_io import ArraySamples, FileSamples, SampleReader
from .chunking import Chunk
from .config import Settings
from .detection import detect_sources
from .errors import UserError
from .publish import Published, publish_track
from .settings_check import check_settings
from .stem_folders import folder_for_input
from .steering import ChunkResult, Models
from .track_plan import AUTO, TrackPlan, plan_chunks, plan_track, validate_sources

_log = logging.getLogger(__name__)

#: called with the number of (chunk, source) units just finished
Progress = Callable[[int], None]


@dataclass
class Stems:
    """In-memory result of :meth:`Separator.separate`: one float32 array per source and the residual, each ``[channels, n]``."""

    sources: dict[str, np.ndarray]
    residual: np.ndarray
    reports: list[dict[str, Any]]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.residual if name == "residual" else self.sources[name]


def resolve_device(settings: Settings) -> str:
    """``"cuda"`` when asked for, or on ``auto`` when CUDA is available; else ``"cpu"``."""
    if settings.device != "auto":
        return settings.device
    return "cuda" if torch.cuda.is_available() else "cpu"


class Separator:
    """Settings plus the models they name, loaded once and reused for every track.

    The process's allocator is tuned on first use (:func:`~tagbox_pipeline.allocator.tune_allocator`).

    Args:
        settings: what to separate with (prior, taggers, chunking, post chains...); the names in
            it are checked now (ConfigError), not after a track was separated.
        models: already loaded models to reuse (default: loaded now on :func:`resolve_device`'s device).
    """

    def __init__(self, settings: Settings, models: Models | None = None) -> None:
        tune_allocator()
        self.settings = check_settings(settings)
        self.device = resolve_device(settings) if models is None else models.device
        self.models = steering.load_models(settings, self.device) if models is None else models

    def plan(self, path: str | Path, sources: list[str]) -> TrackPlan:
        """Validate, hash and chunk ``path`` (see :func:`~tagbox_pipeline.track_plan.plan_track`), and
        detect its sources when they are ``["auto"]`` (:meth:`resolve`)."""
        return self.resolve(plan_track(path, sources, self.settings))

    def resolve(self, plan: TrackPlan) -> TrackPlan:
        """``plan`` with its sources detected (:func:`~tagbox_pipeline.detection.detect_sources`) when
        they are ``["auto"]``, with the evidence in ``detected``; otherwise ``plan`` itself.

        Raises:
            UserError: naming the file, when no instrument is detected.
        """
        if plan.sources != [AUTO]:
            return plan
        try:
            found = self.detect(FileSamples(plan.path), plan.chunks, plan.info.sample_rate)
        except UserError as exc:
            raise UserError(exc.cause, plan.path) from None
        return replace(plan, sources=list(found), detected=found)

    def detect(self, reader: SampleReader, chunks: Sequence[Chunk], sample_rate: int) -> dict[str, float]:
        """The instruments detected in a track (Hz: ``sample_rate``) -> evidence, see :func:`detect_sources`."""
        return detect_sources(reader, chunks, sample_rate, self.models.taggers, self.models.only, self.settings)

    def steer(self, mix: np.ndarray, sample_rate: int, sources: list[str], index: int) -> ChunkResult:
        """One chunk ``[channels, samples]`` through the algorithm; the seed is the run's seed + ``index``."""
        return steering.separate_chunk(torch.from_numpy(mix), sample_rate, sources,
                                       self.settings, self.models, self.settings.seed + index)

    def chunk_results(self, reader: SampleReader, chunks: Sequence[Chunk], sample_rate: int, sources: list[str],
                      progress: Progress | None = None) -> Iterator[ChunkResult]:
        """Steer every chunk in order, reading just its read region; ``progress(len(sources))`` after each.

        After each chunk the heap's free pages go back to the kernel, so memory stays flat in track length.
        Requested gradient steps that a request of this many sources does not get are logged as a warning.
        """
        if self.settings.steps and not self.models.prior.steps_for(self.settings.steps, len(sources)):
            _log.warning("tagbox: %d sources requested: no gradient steps (steps = %d runs for requests of at "
                         "most %d sources, [nmf] step_max_sources)", len(sources), self.settings.steps,
                         self.models.prior.max_stepped_sources)
        for chunk in chunks:
            result = self.steer(reader.read(chunk.read_start, chunk.read_stop), sample_rate, sources, chunk.index)
            release_free_memory()
            yield result
            if progress is not None:
                progress(len(sources))

    def run_chunk(self, plan: TrackPlan, index: int) -> ChunkResult:
        """Chunk ``index`` of ``plan`` alone (a Prefect task's unit of work)."""
        return next(self.chunk_results(FileSamples(plan.path), plan.chunks[index: index + 1], plan.info.sample_rate,
                                       plan.sources))

    def separate_file(self, plan: TrackPlan, dest: Path, progress: Progress | None = None,
                      spectrograms: bool = False) -> Published:
        """Separate a planned track into the stem folder ``dest`` (see :func:`publish_track`)."""
        results = self.chunk_results(FileSamples(plan.path), plan.chunks, plan.info.sample_rate, plan.sources,
                                     progress)
        return publish_track(plan, results, dest, self.models, spectrograms=spectrograms)

    def separate(self, audio: np.ndarray, sample_rate: int, sources: list[str]) -> Stems:
        """Separate an in-memory mixture ``audio`` ``[channels, n]`` (float, at ``sample_rate`` Hz).

        Returns stems and residual with the input's shape; residual = audio − sum of stems. With
        ``sources == ["auto"]`` the stems are those of the detected sources.
        """
        validate_sources(sources)
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 2 or not np.isfinite(audio).all():
            raise ValueError("audio must be a finite [channels, samples] array")
        chunks = plan_chunks(audio.shape[1], sample_rate, self.settings)
        if sources == [AUTO]:
            sources = list(self.detect(ArraySamples(audio), chunks, sample_rate))
        stems = np.zeros((len(sources), *audio.shape), dtype=np.float32)

        def sink(start: int, block: np.ndarray) -> None:
            stems[..., start: start + block.shape[-1]] = block

        results = self.chunk_results(ArraySamples(audio), chunks, sample_rate, sources)
        reports = assemble(chunks, results, sink, len(sources), audio.shape[0], sample_rate)
        return Stems(dict(zip(sources, stems)), audio - stems.sum(axis=0), reports)


def separate_file(path: str | Path, out_dir: str | Path, sources: list[str], settings: Settings) -> Published:
    """One file into ``out_dir/<track>/`` with a fresh :class:`Separator` (library convenience).

    The stem folder of the same input is replaced; any other folder of that name is left alone and
    the stems go to ``<track> (n)`` (see :func:`~tagbox_pipeline.stem_folders.folder_for_input`).
    """
    separator = Separator(settings)
    plan = separator.plan(path, sources)
    return separator.separate_file(plan, folder_for_input(Path(out_dir), plan.name, plan.path))
