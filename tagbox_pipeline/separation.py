"""The engine's library API: a track in, one stem per requested source plus a residual out.

Three phases, shared by the CLI and the Prefect flows:

1. :func:`plan_track` validates the file (decoding it once, block by block), hashes it and cuts it
   into chunks; it holds no audio.
2. :func:`run_chunk` reads one chunk's samples (with margins) and steers all sources at once.
3. :func:`assemble_track` crossfades the chunk results in order and streams the finished regions
   to the stem files, then publishes the folder atomically with its manifest.

:func:`separate_file` chains the three; :func:`separate` does the same for an in-memory array.
Nothing here knows about Prefect.
"""

from __future__ import annotations

import functools
import importlib.metadata
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import chunking, steering
from .assembly import OverlapAdd
from .audio_io import AudioInfo, read_block, read_info
from .config import Settings
from .errors import UserError
from .pipeline.files import sha256_file
from .stems import StemWriter, track_name

#: a track's manifest.json content
Manifest = dict[str, Any]
#: called with the number of (chunk, source) units just finished
Progress = Callable[[int], None]


@dataclass(frozen=True)
class TrackPlan:
    """Everything needed to separate one file, without its audio (small, picklable).

    Attributes:
        path: the input file (absolute).
        name: the track folder name under the output folder.
        sha256: hex digest of the input's bytes.
        info: the input's rate, channels, frames and encoding.
        sources: requested source names, in stem order.
        settings: the run's settings.
        chunks: the chunk plan, in track order.
        created: UTC time the plan was made (ISO 8601).
    """

    path: Path
    name: str
    sha256: str
    info: AudioInfo
    sources: list[str]
    settings: Settings
    chunks: list[chunking.Chunk]
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    @property
    def duration(self) -> float:
        """Track length in s."""
        return self.info.duration


@dataclass
class Stems:
    """In-memory result of :func:`separate`: one float32 array per source and the residual, each ``[channels, n]``."""

    sources: dict[str, np.ndarray]
    residual: np.ndarray
    reports: list[dict[str, Any]]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.residual if name == "residual" else self.sources[name]


def validate_sources(sources: list[str]) -> list[str]:
    """Check source names against the tag vocabulary (unknown or path-like names raise UserError)."""
    from .taggers.vocabulary import resolve_source

    for source in sources:
        resolve_source(source)
    if len(set(sources)) != len(sources):
        raise UserError(f"sources: each source may be requested once, got {', '.join(sources)}")
    return sources


def resolve_device(settings: Settings) -> str:
    """``"cuda"`` when asked for, or on ``auto`` when CUDA is available; else ``"cpu"``."""
    if settings.device != "auto":
        return settings.device
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=2)
def _cached_models(settings_json: str, device: str) -> Any:
    return steering.load_models(Settings.model_validate_json(settings_json), device)


def load_models(settings: Settings) -> Any:
    """``steering.load_models`` on :func:`resolve_device`'s device, loaded once per settings and device."""
    return _cached_models(settings.model_dump_json(), resolve_device(settings))


def _plan_chunks(frames: int, sample_rate: int, settings: Settings) -> list[chunking.Chunk]:
    c = settings.chunk
    return chunking.plan(frames, sample_rate, c.window_seconds, c.overlap_seconds, c.margin_seconds)


def _steer(mix: np.ndarray, sample_rate: int, sources: list[str], settings: Settings, models: Any,
           index: int) -> Any:
    """One chunk through the algorithm; the seed depends on the run's seed and the chunk index."""
    return steering.separate_chunk(torch.from_numpy(mix), sample_rate, sources, settings, models,
                                   settings.seed + index)


def _stems_array(result: Any, chunk: chunking.Chunk, n_sources: int, channels: int) -> np.ndarray:
    stems = result.stems.detach().cpu().numpy() if isinstance(result.stems, torch.Tensor) else result.stems
    expected = (n_sources, channels, chunk.read_stop - chunk.read_start)
    if stems.shape != expected:
        raise ValueError(f"chunk {chunk.index}: stems have shape {stems.shape}, expected {expected}")
    return stems


def plan_track(path: str | Path, sources: list[str], settings: Settings) -> TrackPlan:
    """Validate and hash ``path`` and plan its chunks (no audio is kept).

    Raises:
        AudioReadError: for a missing, unreadable, corrupt or too short file (names the file).
        UserError: for unknown source names; ConfigError for a window too small for its margins.
    """
    validate_sources(sources)
    info = read_info(Path(path).absolute())
    return TrackPlan(info.path, track_name(info.path), sha256_file(info.path), info, list(sources), settings,
                     _plan_chunks(info.frames, info.sample_rate, settings))


def run_chunk(plan: TrackPlan, index: int, models: Any) -> Any:
    """Separate chunk ``index`` of ``plan``: reads just its read region and returns the ChunkResult."""
    chunk = plan.chunks[index]
    mix = read_block(plan.path, chunk.read_start, chunk.read_stop)
    return _steer(mix, plan.info.sample_rate, plan.sources, plan.settings, models, index)


def _versions() -> dict[str, str]:
    names = {"tagbox": "tagbox-pipeline", "torch": "torch", "numpy": "numpy", "prefect": "prefect",
             "soundfile": "soundfile"}
    return {key: importlib.metadata.version(dist) for key, dist in names.items()}


def _chunk_entry(chunk: chunking.Chunk, sample_rate: int, report: dict[str, Any]) -> dict[str, Any]:
    return {"index": chunk.index, "start_s": chunk.start / sample_rate, "stop_s": chunk.stop / sample_rate,
            "read_start_s": chunk.read_start / sample_rate, "read_stop_s": chunk.read_stop / sample_rate,
            "report": report}


def assemble_track(plan: TrackPlan, chunk_results: Iterable[Any], out_dir: str | Path,
                   models: Any = None) -> Manifest:
    """Crossfade the chunk results (in chunk order) into ``out_dir/<plan.name>/`` and write its manifest.

    Finished regions are written as soon as they are complete, with the residual computed from the
    mixture re-read from the input, so memory stays flat in track length. The folder appears
    atomically; an existing one of that name is replaced (refused when it holds the input). ``models`` (optional) adds the sha256 of
    every weights file used and the device to the manifest.

    Raises:
        UserError: when the input lies inside the track folder that would be replaced.
        ValueError: when results are missing, extra, or of the wrong shape.
    """
    info, settings = plan.info, plan.settings
    if (Path(out_dir) / plan.name).resolve() in plan.path.resolve().parents:
        raise UserError(f"lies inside the output folder {Path(out_dir) / plan.name}, which would be replaced",
                        plan.path)
    reports: list[dict[str, Any]] = []
    with StemWriter(Path(out_dir), plan.name, info, plan.sources, settings.format) as writer:
        accumulator = OverlapAdd(plan.chunks, lambda start, block: writer.write(
            block, read_block(plan.path, start, start + block.shape[-1])))
        for chunk, result in zip(plan.chunks, chunk_results, strict=True):
            accumulator.add(_stems_array(result, chunk, len(plan.sources), info.channels))
            reports.append(_chunk_entry(chunk, info.sample_rate, result.report))
        manifest = {
            "input": {"path": str(plan.path), "sha256": plan.sha256, "sample_rate": info.sample_rate,
                      "channels": info.channels, "frames": info.frames, "format": info.format,
                      "subtype": info.subtype, "duration_s": info.duration},
            "output": {"subtype": writer.subtype, "format": settings.format,
                       "files": [p.name for p in writer.paths]},
            "sources": {source: sorted({tag for r in reports for tag in r["report"].get(source, {}).get("tags", [])})
                        for source in plan.sources},
            "models": {"prior": settings.prior, "taggers": settings.taggers} if models is None else models.describe(),
            "weights_sha256": None if models is None else models.weights_sha256(),
            "settings": settings.model_dump(mode="json"),
            "settings_digest": settings.digest(),
            "chunks": reports,
            "versions": _versions(),
            "started": plan.created,
            "finished": datetime.now(timezone.utc).isoformat(),
        }
        writer.commit(manifest)
    return manifest


def run_track(plan: TrackPlan, out_dir: str | Path, models: Any, progress: Progress | None = None) -> Manifest:
    """Run every chunk of ``plan`` in order and assemble them into ``out_dir/<plan.name>/``.

    Args:
        models: from :func:`load_models` (loaded once, reused across tracks).
        progress: called with ``len(plan.sources)`` after each chunk (for a chunks × sources bar).
    """
    def results() -> Iterable[Any]:
        for index in range(len(plan.chunks)):
            result = run_chunk(plan, index, models)
            if progress is not None:
                progress(len(plan.sources))
            yield result

    return assemble_track(plan, results(), out_dir, models)


def separate_file(path: str | Path, out_dir: str | Path, sources: list[str], settings: Settings,
                  progress: Progress | None = None) -> Manifest:
    """Separate one file into ``out_dir/<track>/``: :func:`plan_track`, then :func:`run_track`."""
    return run_track(plan_track(path, sources, settings), out_dir, load_models(settings), progress)


def separate(audio: np.ndarray, sample_rate: int, sources: list[str], settings: Settings,
             models: Any = None) -> Stems:
    """Separate an in-memory mixture ``audio`` ``[channels, n]`` (float, at ``sample_rate`` Hz).

    Returns stems and residual with the input's shape; residual = audio − sum of stems.
    """
    validate_sources(sources)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or not np.isfinite(audio).all():
        raise ValueError("audio must be a finite [channels, samples] array")
    models = load_models(settings) if models is None else models
    chunks = _plan_chunks(audio.shape[1], sample_rate, settings)
    stems = np.zeros((len(sources), *audio.shape), dtype=np.float32)

    def sink(start: int, block: np.ndarray) -> None:
        stems[..., start: start + block.shape[-1]] = block

    accumulator = OverlapAdd(chunks, sink)
    reports = []
    for chunk in chunks:
        result = _steer(audio[:, chunk.read_start: chunk.read_stop], sample_rate, sources, settings, models,
                        chunk.index)
        accumulator.add(_stems_array(result, chunk, len(sources), audio.shape[0]))
        reports.append(_chunk_entry(chunk, sample_rate, result.report))
    return Stems(dict(zip(sources, stems)), audio - stems.sum(axis=0), reports)
