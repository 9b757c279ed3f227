"""A track's plan: the validated, hashed input and its chunks, without its audio (small, picklable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import chunking
from .audio_io import AudioInfo, read_info
from .config import Settings
from .errors import UserError
from .files import sha256_file, track_name
from .taggers.vocabulary import resolve_source

#: the source list ``["auto"]`` asks for detection (:mod:`.detection`) instead of naming the sources
AUTO = "auto"


@dataclass(frozen=True)
class TrackPlan:
    """Everything needed to separate one file, without its audio.

    Attributes:
        path: the input file (absolute).
        name: the track folder name under the output folder.
        sha256: hex digest of the input's bytes.
        info: the input's rate, channels, frames and encoding.
        sources: requested source names, in stem order (``["auto"]`` until detection names them,
            see :meth:`~tagbox_pipeline.separation.Separator.resolve`).
        settings: the run's settings.
        chunks: the chunk plan, in track order.
        created: UTC time the plan was made (ISO 8601).
        detected: for ``--sources auto``, each detected source's evidence (p in its most probable
            chunk); None when the sources were named.
    """

    path: Path
    name: str
    sha256: str
    info: AudioInfo
    sources: list[str]
    settings: Settings
    chunks: list[chunking.Chunk]
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    detected: dict[str, float] | None = None

    @property
    def duration(self) -> float:
        """Track length in s."""
        return self.info.duration


def evidence_text(detected: dict[str, float]) -> str:
    """A plan's ``detected`` for logs and the CLI: ``{"drums": 0.93}`` -> ``"drums (p 0.93)"``."""
    return ", ".join(f"{name} (p {p:.2f})" for name, p in detected.items())


def validate_sources(sources: list[str]) -> list[str]:
    """Check source names against the tag vocabulary (unknown or path-like names raise UserError).

    ``["auto"]`` alone is valid: the sources are detected per track (:mod:`.detection`).
    """
    if AUTO in sources:
        if len(sources) > 1:
            raise UserError(f"sources: '{AUTO}' detects the sources and cannot be combined with names, "
                            f"got {', '.join(sources)}")
        return sources
    for source in sources:
        resolve_source(source)
    if len(set(sources)) != len(sources):
        raise UserError(f"sources: each source may be requested once, got {', '.join(sources)}")
    return sources


def plan_chunks(frames: int, sample_rate: int, settings: Settings) -> list[chunking.Chunk]:
    """The chunks of a track of ``frames`` samples at ``sample_rate`` Hz under ``settings.chunk``."""
    c = settings.chunk
    return chunking.plan(frames, sample_rate, c.window_seconds, c.overlap_seconds, c.margin_seconds)


def plan_track(path: str | Path, sources: list[str], settings: Settings) -> TrackPlan:
    """Validate and hash ``path`` and plan its chunks (no audio is kept).

    Raises:
        AudioReadError: for a missing, unreadable, corrupt or too short file (names the file).
        UserError: for unknown source names; ConfigError for a window too small for its margins.
    """
    validate_sources(sources)
    info = read_info(Path(path).absolute())
    return TrackPlan(info.path, track_name(info.path), sha256_file(info.path), info, list(sources), settings,
                     plan_chunks(info.frames, info.sample_rate, settings))
