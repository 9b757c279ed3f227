"""Prefect UI artifacts: of a track (summary table, per-chunk progress, stems markdown with
spectrograms) and of a watch or a sweep (running counts)."""

from __future__ import annotations

import base64
import io
import re
import time
from pathlib import Path
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from PIL import Image

from ..spectrogram import spectrogram_name

#: largest PNG embedded in an artifact, in bytes (before base64)
EMBED_MAX_BYTES = 100_000


def artifact_key(kind: str, name: str) -> str:
    """An artifact key (lowercase letters, digits, dashes) such as ``tagbox-stems-my-song``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "track"
    return f"tagbox-{kind}-{slug}"


class ChunkProgress:
    """A progress artifact (0–100 %) of one track, updated each time a chunk finishes."""

    def __init__(self, track: str, total: int) -> None:
        self.total, self.done = max(1, total), 0
        self.id: UUID = create_progress_artifact(0.0, key=artifact_key("progress", track),
                                                 description=f"chunks of {track} done")

    def advance(self) -> None:
        """Count one more finished chunk."""
        self.done += 1
        update_progress_artifact(self.id, 100.0 * self.done / self.total)


def publish_summary(track: str, rows: list[dict]) -> None:
    """Table artifact: one row per source (source, tags, mean p(tag), seconds, real-time factor)."""
    create_table_artifact(rows, key=artifact_key("summary", track), description=f"TagBox separation of {track}")


def embedded_png(png: Path, max_bytes: int = EMBED_MAX_BYTES) -> str:
    """``png`` as a ``data:image/png;base64,...`` URI of at most ``max_bytes`` of PNG (scaled down,
    palette-quantised, until it fits): a browser showing the Prefect UI loads it, unlike a
    ``file://`` link from an http page."""
    with Image.open(png) as image:
        picture = image.convert("RGB")
    width = picture.width
    while True:
        small = picture.resize((width, round(picture.height * width / picture.width)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        small.quantize(colors=128).save(buffer, format="PNG", optimize=True)
        if buffer.tell() <= max_bytes or width <= 160:
            return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        width = int(width * 0.75)


def publish_stems(track: str, folder: Path, stems: list[Path]) -> None:
    """Markdown artifact: the stem folder, each stem's path and its spectrogram, embedded so the UI
    shows it (the full-size PNG stays beside the stem)."""
    lines = [f"# Stems of {track}", "", f"Folder: `{folder}`", "", "| stem | file | spectrogram |", "|---|---|---|"]
    pngs = {stem: stem.with_name(spectrogram_name(stem.name)) for stem in stems}
    lines += [f"| {stem.stem} | `{stem}` | `{png}` |" for stem, png in pngs.items()]
    lines.append("")
    lines += [f"### {stem.stem}\n\n![{stem.stem} spectrogram]({embedded_png(png)})\n" for stem, png in pngs.items()]
    create_markdown_artifact("\n".join(lines), key=artifact_key("stems", track),
                             description=f"stems and spectrograms of {track}")


class RunningCounts:
    """A table artifact of a watch or a sweep (one row per outcome: processed, duplicate,
    quarantined...), published as the counts change: at most once every ``min_seconds`` (s), and
    always by :meth:`close`, so a watcher running for weeks leaves a bounded history of versions."""

    def __init__(self, kind: str, name: str, description: str, min_seconds: float = 5.0) -> None:
        self.key, self.description, self.min_seconds = artifact_key(kind, name), description, min_seconds
        self.last, self.pending = -min_seconds, None

    def update(self, counts: dict[str, int]) -> None:
        """Record the current counts; published now unless the last version is under ``min_seconds`` old."""
        self.pending = dict(counts)
        if time.monotonic() - self.last >= self.min_seconds:
            self.close()

    def close(self) -> None:
        """Publish the last counts recorded (if not yet published)."""
        if self.pending is None:
            return
        rows = [{"outcome": outcome, "files": n} for outcome, n in sorted(self.pending.items())]
        create_table_artifact(rows, key=self.key, description=self.description)
        self.last, self.pending = time.monotonic(), None
