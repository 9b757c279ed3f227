"""Prefect UI artifacts of a track: summary table, per-chunk progress, stems markdown with spectrograms."""

from __future__ import annotations

import re
from pathlib import Path
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from ..stem_folders import spectrogram_name


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


def publish_stems(track: str, folder: Path, stems: list[Path]) -> None:
    """Markdown artifact: the stem folder, each stem's path and its spectrogram image."""
    lines = [f"# Stems of {track}", "", f"Folder: `{folder}`", "", "| stem | file | spectrogram |", "|---|---|---|"]
    pngs = {stem: stem.with_name(spectrogram_name(stem.name)) for stem in stems}
    lines += [f"| {stem.stem} | `{stem}` | `{png}` |" for stem, png in pngs.items()]
    lines.append("")
    lines += [f"### {stem.stem}\n\n![{stem.stem} spectrogram]({png.as_uri()})\n" for stem, png in pngs.items()]
    create_markdown_artifact("\n".join(lines), key=artifact_key("stems", track),
                             description=f"stems and spectrograms of {track}")
